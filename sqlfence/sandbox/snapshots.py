"""``SnapshotStore``: one directory per snapshot with a manifest and a SHA-256 of every file.

``<store>/<name>/manifest.json`` says what the snapshot is (backend, tables, row counts,
schema digest, created at, its files or in-server clone) and ``SHA256SUMS`` covers the
manifest and every data file. ``verify`` reads everything back before anything is restored,
so a corrupt or foreign snapshot is refused while the sandbox is still untouched.
Snapshots hold whole databases: their directories are 0700 and their files 0600 from the
moment they exist (``private_files``); backends write data files the same way.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sqlfence.errors import SandboxError, SnapshotCorrupt
from sqlfence.sandbox import private_files

MANIFEST = "manifest.json"
SUMS = "SHA256SUMS"
FORMAT = 1
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


@dataclass(frozen=True)
class Manifest:
    """What a snapshot holds. ``clone`` names an in-server copy; ``files`` are portable data."""

    name: str
    backend: str
    source: str
    created_at: float
    tables: dict[str, int] = field(default_factory=dict)
    schema_digest: str = ""
    files: list[str] = field(default_factory=list)
    clone: str | None = None
    content_digest: str | None = None
    format: int = FORMAT

    @property
    def portable(self) -> bool:
        """True when the data is in files (loadable on another machine)."""
        return self.clone is None


def check_name(name: str) -> str:
    """``name`` when it is a safe directory name (letters, digits, ``_.-``, no leading dot)."""
    if not _NAME.fullmatch(name):
        raise SandboxError(
            f"snapshot name {name!r} must be letters, digits, '_', '.' or '-' (not first)"
        )
    return name


def sha256_file(path: Path) -> str:
    """The hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class SnapshotStore:
    """Snapshots under one directory (a sandbox's own, or a shared one for golden datasets)."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)

    def path(self, name: str) -> Path:
        """The directory of snapshot ``name``."""
        return self.directory / check_name(name)

    def staging(self, name: str) -> Path:
        """A fresh, empty 0700 directory for snapshot ``name``'s files until ``commit``."""
        target = self.path(name)
        if target.exists():
            raise SandboxError(f"snapshot {name!r} already exists in {self.directory}")
        private_files.directory(self.directory)
        staging = self.directory / f".{name}.partial"
        shutil.rmtree(staging, ignore_errors=True)
        return private_files.directory(staging)

    def commit(self, staging: Path, manifest: Manifest) -> Manifest:
        """Write the manifest and checksums, then move the snapshot into place atomically."""
        text = json.dumps(asdict(manifest), indent=2, sort_keys=True)
        private_files.write(staging / MANIFEST, text.encode())
        sums = {entry: sha256_file(staging / entry) for entry in [MANIFEST, *manifest.files]}
        lines = "".join(f"{h}  {entry}\n" for entry, h in sums.items())
        private_files.write(staging / SUMS, lines.encode())
        staging.rename(self.path(manifest.name))
        return manifest

    def abandon(self, staging: Path) -> None:
        """Remove a staging directory after a failed snapshot."""
        shutil.rmtree(staging, ignore_errors=True)

    def verify(self, name: str, backend: str | None = None) -> Manifest:
        """The manifest of snapshot ``name`` after checking every file against SHA256SUMS.

        Raises SandboxError when it does not exist or is for another backend, and
        SnapshotCorrupt when a file is missing, extra, or differs from its checksum.
        """
        where = self.path(name)
        if not (where / SUMS).is_file():
            raise SandboxError(f"no snapshot {name!r} in {self.directory}")
        expected = _read_sums(where / SUMS)
        if MANIFEST not in expected:
            raise SnapshotCorrupt(f"snapshot {name!r}: {SUMS} does not cover {MANIFEST}")
        for entry, digest in expected.items():
            file = where / entry
            if not file.is_file() or sha256_file(file) != digest:
                raise SnapshotCorrupt(
                    f"snapshot {name!r} is corrupt: {entry} does not match its SHA-256 "
                    f"(refusing to restore; the sandbox is unchanged)"
                )
        manifest = _load_manifest(where / MANIFEST)
        if set(manifest.files) | {MANIFEST} != set(expected):
            raise SnapshotCorrupt(f"snapshot {name!r}: manifest and {SUMS} list different files")
        if backend is not None and manifest.backend != backend:
            raise SandboxError(
                f"snapshot {name!r} was made by the {manifest.backend} backend and cannot be "
                f"restored into a {backend} sandbox"
            )
        return manifest

    def manifest(self, name: str) -> Manifest:
        """The manifest of ``name`` without verifying checksums (for listing)."""
        return _load_manifest(self.path(name) / MANIFEST)

    def names(self) -> list[str]:
        """Committed snapshots, oldest first."""
        if not self.directory.is_dir():
            return []
        found = [p for p in self.directory.iterdir() if (p / SUMS).is_file()]
        return [p.name for p in sorted(found, key=lambda p: (p / SUMS).stat().st_mtime_ns)]

    def delete(self, name: str) -> Manifest | None:
        """Remove snapshot ``name``; return its manifest (None when it did not exist)."""
        where = self.path(name)
        if not where.exists():
            return None
        try:
            manifest: Manifest | None = self.manifest(name)
        except SandboxError:
            manifest = None
        shutil.rmtree(where, ignore_errors=True)
        return manifest

    def clear(self) -> list[Manifest]:
        """Remove every snapshot and the directory; return the manifests that were readable."""
        removed = [m for m in (self.delete(name) for name in self.names()) if m is not None]
        shutil.rmtree(self.directory, ignore_errors=True)
        return removed


def new_manifest(name: str, backend: str, source: str, **fields: Any) -> Manifest:
    """A manifest stamped with the current time."""
    return Manifest(name=name, backend=backend, source=source, created_at=time.time(), **fields)


def _read_sums(path: Path) -> dict[str, str]:
    sums: dict[str, str] = {}
    for line in path.read_text().splitlines():
        digest, _, entry = line.partition("  ")
        if not entry or "/" in entry or entry.startswith("."):
            raise SnapshotCorrupt(f"{path}: malformed line {line!r}")
        sums[entry] = digest
    return sums


def _load_manifest(path: Path) -> Manifest:
    try:
        data = json.loads(path.read_text())
        if data.get("format") != FORMAT:
            raise SnapshotCorrupt(f"{path}: unknown snapshot format {data.get('format')!r}")
        return Manifest(**data)
    except (OSError, ValueError, TypeError) as error:
        raise SnapshotCorrupt(f"{path}: unreadable manifest ({error})") from error

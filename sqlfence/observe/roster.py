"""The roster of a directory's chains: every chain ever written there, so a deleted one shows.

A second process writing the same directory gets a chain of its own (``audit.p<pid>``), and
its files and head could be deleted together without a trace in any other chain. So each
writer enrolls its chain in ``<prefix>.chains`` before its first event: one signed line
naming every chain of the directory, replaced atomically under a lock (``<prefix>.chains
.lock``). ``verify`` then fails for a chain the roster names when nothing of it is left,
for a chain not in the roster that says it was enrolled, and for a roster that is missing
or not signed with the key. A writer that finds no roster beside existing chains (logs from
before rosters, or a deleted one) starts one and records in its ``audit.open`` which chains
it found and where each ended, so ``verify`` can tell the two apart: a chain enrolled at or
before that point means the roster was deleted. As with heads, what a roster cannot show is
an older copy put back together with the chains enrolled since deleted.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO

from sqlfence.observe.events import json_text
from sqlfence.observe.integrity import Signer

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no roster lock, one writer per directory
    fcntl = None  # type: ignore[assignment]

SUFFIX = ".chains"
_LABEL = b"sqlfence audit chains\n"
_PER_PROCESS = re.compile(r"\.p\d+$")


class BadRoster(ValueError):
    """A roster file that is not one signed with this key."""


def base_of(chain: str) -> str:
    """The prefix a chain was opened with (``audit.p123`` -> ``audit``)."""
    return _PER_PROCESS.sub("", chain)


def roster_path(directory: Path, base: str) -> Path:
    """Where the roster of the chains opened with prefix ``base`` is kept."""
    return directory / f"{base}{SUFFIX}"


def read_roster(path: Path, signer: Signer) -> frozenset[str] | None:
    """The chains ``path`` lists; None when there is no roster. Raises BadRoster when it is
    not one signed with ``signer``'s key (altered, forged, or another key)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        data = json.loads(raw)
        chains = data["chains"]
        signature = data["sig"]
        if not isinstance(chains, list) or not all(isinstance(c, str) for c in chains):
            raise TypeError("chains is not a list of names")
    except (ValueError, KeyError, TypeError) as error:
        raise BadRoster(f"{path} is not an audit roster ({error})") from None
    if signer.mac(_LABEL + _body(chains)) != signature:
        raise BadRoster(f"{path} is not signed with this key (altered, forged or another key)")
    return frozenset(chains)


def enroll(
    directory: Path, chain: str, signer: Signer, on_disk: Mapping[str, int]
) -> dict[str, object]:
    """Add ``chain`` to its roster. Returns what an ``audit.open`` should record about it:
    the roster's name, and ``roster_missing`` (the chains of its prefix found on disk with
    no roster, each with its last ``seq`` from ``on_disk``; ``chain`` itself included)
    or ``roster_invalid`` (a roster that was not signed with this key, now replaced).
    Raises OSError when the roster cannot be written."""
    path = roster_path(directory, base_of(chain))
    found: dict[str, object] = {"roster": path.name}
    with _locked(path.with_name(path.name + ".lock")):
        try:
            chains = read_roster(path, signer)
        except BadRoster as error:
            found["roster_invalid"] = str(error)
            chains = None
        if chains is None:
            base = base_of(chain)
            ends = {c: seq for c, seq in sorted(on_disk.items()) if base_of(c) == base}
            if ends and "roster_invalid" not in found:
                found["roster_missing"] = ends
            _write(path, sorted(set(ends) | {chain}), signer)
        elif chain not in chains:
            _write(path, sorted(chains | {chain}), signer)
    return found


def _body(chains: list[str]) -> bytes:
    return json_text({"chains": chains}).encode("ascii")


def _write(path: Path, chains: list[str], signer: Signer) -> None:
    body = _body(chains)
    line = b'%s,"sig":"%s"}\n' % (body[:-1], signer.mac(_LABEL + body).encode("ascii"))
    temporary = path.with_name(path.name + ".tmp")
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            if os.write(fd, line) != len(line):
                raise OSError(errno.ENOSPC, "short write of the audit roster")
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, path)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    handle: IO[bytes] = open(os.open(path, os.O_RDWR | os.O_CREAT, 0o600), "rb+")  # noqa: SIM115
    try:
        if fcntl is not None:
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield
    finally:
        handle.close()


def is_being_written(directory: Path, chain: str) -> bool:
    """True when a live writer holds ``chain``'s lock (it may have enrolled and not yet
    written its first line)."""
    if fcntl is None:
        return False
    try:
        fd = os.open(directory / f"{chain}.lock", os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)
    return False

"""The audit log's files: ``<prefix>-<YYYYMMDD>-<NNNNNN>.jsonl``, rotated by size and by day.

File names sort in chain order. One process owns a chain (an advisory lock on
``<prefix>.lock``); a second process writing the same directory gets its own chain,
``<prefix>.p<pid>``, so two writers never interleave one chain.
"""

from __future__ import annotations

import contextlib
import datetime
import itertools
import json
import logging
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from sqlfence.observe.integrity import Signer, split_line, sync_directory

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: one writer per directory is up to the user
    fcntl = None  # type: ignore[assignment]

logger = logging.getLogger("sqlfence.observe")
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
# fdatasync flushes the appended bytes and the size that makes them readable, which is all
# an appended line needs, and skips the timestamps fsync also writes (about twice as fast).
_sync_data = getattr(os, "fdatasync", os.fsync)
_NAME = re.compile(r"^(?P<prefix>[A-Za-z0-9_.]+)-(?P<day>\d{8})-(?P<number>\d{6})\.jsonl$")


def chain_files(directory: Path, prefix: str) -> list[Path]:
    """The files of chain ``prefix`` in ``directory``, oldest first."""
    if not directory.is_dir():
        return []
    found = []
    for path in directory.iterdir():
        match = _NAME.match(path.name)
        if match and match["prefix"] == prefix:
            found.append(path)
    return sorted(found, key=lambda p: p.name)


def chain_of(path: Path) -> str | None:
    """The chain a log file belongs to, from its name (None when it is not a log file)."""
    match = _NAME.match(path.name)
    return match["prefix"] if match else None


def chain_prefixes(directory: Path) -> list[str]:
    """Every chain found in ``directory``."""
    if not directory.is_dir():
        return []
    return sorted({m["prefix"] for p in directory.iterdir() if (m := _NAME.match(p.name))})


def chain_ends(directory: Path) -> dict[str, int]:
    """The last ``seq`` of every chain in ``directory`` (0 for one with no signed line)."""
    ends = {}
    for prefix in chain_prefixes(directory):
        link = _last_link(chain_files(directory, prefix))
        ends[prefix] = link[0] if link is not None else 0
    return ends


def _last_link(files: list[Path]) -> tuple[int, str] | None:
    """``(seq, mac)`` of the newest signed line in ``files`` (oldest first)."""
    for path in reversed(files):
        for line in _lines_backwards(path):
            link = link_of(line)
            if link is not None:
                return link
    return None


def _today() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d")


@dataclass(frozen=True)
class Resumed:
    """Where an existing chain ended: its last ``seq`` and MAC, and bytes of a torn last line."""

    seq: int
    mac: str
    torn_bytes: int = 0


class FileSink:
    """Appends signed lines to the newest file of a chain, rotating by size and UTC day.

    Writes go straight to the file descriptor, whole batches of whole lines: when the disk
    refuses part of a batch, the file is cut back to where the batch began before the
    error is raised, so a retry never duplicates or splices a line. With ``sync`` every
    write is on stable storage before ``write`` returns (fdatasync, and an fsync of the
    directory when a write started a new file).
    """

    def __init__(
        self,
        directory: Path,
        prefix: str,
        *,
        max_bytes: int,
        rotate_daily: bool,
        sync: bool,
    ) -> None:
        # The log holds every statement's text: only its owner may read it (a directory
        # that already existed keeps the mode its owner gave it).
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.directory = directory
        self._max_bytes = max_bytes
        self._rotate_daily = rotate_daily
        self._sync = sync
        self._lock_handle = _lock(directory / f"{prefix}.lock")
        if self._lock_handle is None:
            prefix = f"{prefix}.p{os.getpid()}"
            self._lock_handle = _lock(directory / f"{prefix}.lock")
        self.prefix = prefix
        self._fd: int | None = None
        self._path: Path | None = None
        self._day = ""
        self._size = 0  # where the last whole write ended: the file is never longer

    @property
    def current(self) -> str:
        """The name of the file written last ("" before the first write)."""
        return self._path.name if self._path is not None else ""

    # -- writing --------------------------------------------------------------------------

    def write(self, lines: list[bytes]) -> bool:
        """Append ``lines`` whole, or raise OSError leaving the file as it was.

        True when this started a new file (a chance to purge).
        """
        rotated = False
        joined = b"".join(lines)
        if (
            self._fd is None
            or (self._rotate_daily and _today() != self._day)
            or (self._size and self._size + len(joined) > self._max_bytes)
        ):
            rotated = self._open_next(len(joined))
        fd = self._fd
        assert fd is not None
        start = self._size
        data = memoryview(joined)
        try:
            while data:
                data = data[os.write(fd, data) :]
            if self._sync:
                _sync_data(fd)
        except OSError:
            self._cut_back(fd, start)
            raise
        self._size = start + len(joined)
        if self._size >= self._max_bytes:
            self._close_file()  # the next write opens the next file
        return rotated

    def _cut_back(self, fd: int, size: int) -> None:
        """Remove a partial batch; if even that fails, the next open cuts the torn tail."""
        try:
            os.ftruncate(fd, size)
        except OSError:
            logger.exception("audit file %s: cannot cut a partial write back", self._path)
            self._close_file()

    def _open_next(self, incoming: int) -> bool:
        """Continue the newest file when it is today's and has room for ``incoming`` bytes
        (or is empty), else start a new one: no file grows past ``max_bytes`` but by a batch
        larger than that on its own."""
        self._close_file()
        day = _today()
        files = chain_files(self.directory, self.prefix)
        number = 1
        if files:
            match = _NAME.match(files[-1].name)
            assert match is not None
            _cut_torn_tail(files[-1])
            last_size = files[-1].stat().st_size
            if match["day"] == day and (not last_size or last_size + incoming <= self._max_bytes):
                self._attach(files[-1], day)
                return False
            number = int(match["number"]) + 1 if match["day"] == day else 1
        self._attach(self.directory / f"{self.prefix}-{day}-{number:06d}.jsonl", day)
        return bool(files)

    def _attach(self, path: Path, day: str) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | _CLOEXEC, 0o600)
        size = os.fstat(fd).st_size
        if self._sync and size == 0:
            sync_directory(self.directory)  # the new file's name must survive a crash too
        self._fd = fd
        self._path = path
        self._day = day
        self._size = size

    def _close_file(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    def close(self) -> None:
        """Close the current file and give up the chain's lock."""
        self._close_file()
        lock, self._lock_handle = self._lock_handle, None
        if lock is not None:
            lock.close()

    # -- resuming and purging -------------------------------------------------------------

    def resume(self) -> Resumed | None:
        """The end of the existing chain. A torn last line (a crash mid-write) is cut off."""
        files = chain_files(self.directory, self.prefix)
        torn = 0
        for path in reversed(files):
            torn += _cut_torn_tail(path)
            link = _last_link([path])
            if link is not None:
                return Resumed(link[0], link[1], torn)
        return Resumed(0, "", torn) if torn else None

    def purge(self, retention_days: float, signer: Signer) -> Purged:
        """Delete files whose newest event is more than ``retention_days`` old (never the
        newest file), oldest first, stopping at the first file kept.

        A file is purged only when it is a whole piece of the chain: every line signed with
        this key, each following the one before it, and the next file's first event following
        its last (its ``prev`` is that event's MAC). The age is the signed time of that last
        event. A file's name and time can be set back and signed lines of another chain or
        directory copied in, but none of that makes such a piece. The purge event records
        the first ``seq`` kept and the MAC its first event must follow, so that ``verify``
        can tell the log that was kept from one put in its place.
        """
        cutoff = time.time() - retention_days * 86400
        files = chain_files(self.directory, self.prefix)
        removed = []
        vouched: set[str] = set()  # chains the purged events named: the purge names them again
        for path, following in itertools.pairwise(files):
            if path.stat().st_mtime >= cutoff:
                break  # written since: no need to read it
            named: set[str] = set()
            written = _age_of_piece(path, following, signer, named)
            if written is None or written >= cutoff:
                break
            path.unlink()
            removed.append(path.name)
            vouched |= named
        kept = chain_files(self.directory, self.prefix)
        first = _first_link(kept[0]) if kept else None
        first_seq, first_prev = first if first is not None else (None, None)
        return Purged(removed, first_seq, first_prev, sorted(vouched - {self.prefix}))

    def follows(self, seq: int, mac: str, signer: Signer) -> str | None:
        """Why the files do not go on from the event (``seq``, ``mac``) a head records, or
        None when they do: that event is in them and every line after it follows it.

        A reopened chain goes on from its files only then. Otherwise the lines past the
        head were put there (another chain's or directory's signed lines, copied in), and
        going on from them would make them part of the chain.
        """
        after: list[tuple[int, str, str]] = []  # (seq, prev, mac) of the lines past the head
        for path in reversed(chain_files(self.directory, self.prefix)):
            for line in _lines_backwards(path):
                signed = _signed_event(line, signer)
                if signed is None:
                    continue  # not a line of this key: verify reports it where it is
                event, line_mac = signed
                line_seq, prev = event.get("seq"), event.get("prev")
                if not isinstance(line_seq, int) or not isinstance(prev, str):
                    continue
                if line_seq < seq:
                    return f"the files hold no event seq {seq}, the one the head records"
                if line_seq == seq:
                    if line_mac != mac:
                        return f"event seq {seq} of the files is not the one the head records"
                    return _unlinked(seq, mac, after[::-1])
                after.append((line_seq, prev, line_mac))
        return f"the files hold no event seq {seq}, the one the head records"


def _unlinked(seq: int, mac: str, after: list[tuple[int, str, str]]) -> str | None:
    """Why the lines ``after`` (in file order) do not each follow the one before, from
    (``seq``, ``mac``); None when they do."""
    for line_seq, prev, line_mac in after:
        if line_seq != seq + 1 or prev != mac:
            return f"event seq {line_seq} after the head's event seq {seq} does not follow it"
        seq, mac = line_seq, line_mac
    return None


@dataclass(frozen=True)
class Purged:
    """What a retention purge removed, and where the kept log starts: the first ``seq`` and
    the MAC its first event follows (``prev``)."""

    files: list[str]
    first_seq: int | None
    first_prev: str | None
    chains: list[str]  # the other chains the purged events vouched for


def _age_of_piece(path: Path, following: Path, signer: Signer, named: set[str]) -> float | None:
    """The signed time of ``path``'s last event when ``path`` is a whole piece of the chain
    that ``following``'s first event goes on from; None otherwise. The chains its events
    vouch for are added to ``named``."""
    last: tuple[dict[str, object], str] | None = None
    with path.open("rb") as handle:
        for line in handle:
            signed = _signed_event(line, signer)
            if signed is None:
                return None
            if last is not None and not _goes_on(last, signed[0]):
                return None
            last = signed
            named.update(_vouched_in(signed[0]))
    first = _first_line(following)
    after = None if first is None else _signed_event(first, signer)
    if last is None or after is None or not _goes_on(last, after[0]):
        return None
    try:
        stamp = str(last[0]["timestamp"])
        return datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    except (ValueError, KeyError):
        return None


def _vouched_in(event: dict[str, object]) -> list[str]:
    """The chains an ``audit.open``, ``audit.chains`` or ``audit.purge`` event names."""
    details = event.get("details")
    if not isinstance(details, dict) or event.get("event_type") not in _VOUCHING:
        return []
    names = []
    for key in ("roster_chains", "chains_on_disk", "chains"):
        listed = details.get(key)
        if isinstance(listed, list):
            names += [name for name in listed if isinstance(name, str)]
    return names


_VOUCHING = frozenset({"audit.open", "audit.chains", "audit.purge"})


def _goes_on(before: tuple[dict[str, object], str], event: dict[str, object]) -> bool:
    """Does ``event`` follow ``before`` (event, MAC) in a chain?"""
    return event.get("prev") == before[1] and event.get("seq") == _seq_after(before[0])


def _seq_after(event: dict[str, object]) -> int | None:
    seq = event.get("seq")
    return seq + 1 if isinstance(seq, int) else None


def _signed_event(line: bytes, signer: Signer) -> tuple[dict[str, object], str] | None:
    """(event, MAC) of a line signed with ``signer``'s key; None for any other line."""
    split = split_line(line)
    if split is None or signer.mac(split[0]) != split[1]:
        return None
    with contextlib.suppress(ValueError):
        event = json.loads(split[0])
        if isinstance(event, dict):
            return event, split[1]
    return None


def _first_line(path: Path) -> bytes | None:
    with path.open("rb") as handle:
        for line in handle:
            if line.strip():
                return line
    return None


def _lock(path: Path) -> IO[bytes] | None:
    handle = os.fdopen(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600), "ab")
    if fcntl is None:
        return handle
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        return None
    return handle


def _cut_torn_tail(path: Path) -> int:
    """Truncate ``path`` after its last newline; the number of bytes cut."""
    size = path.stat().st_size
    if size == 0:
        return 0
    with path.open("rb+") as handle:
        handle.seek(size - 1)
        if handle.read(1) == b"\n":
            return 0
        keep = 0
        position = size
        while position > 0:
            step = min(65536, position)
            position -= step
            handle.seek(position)
            chunk = handle.read(step)
            newline = chunk.rfind(b"\n")
            if newline >= 0:
                keep = position + newline + 1
                break
        handle.truncate(keep)
    logger.warning("audit file %s ended in a torn line; %d bytes cut", path, size - keep)
    return size - keep


def _lines_backwards(path: Path, block: int = 65536) -> Iterator[bytes]:
    """The complete lines of ``path``, newest first (reads only as far back as is asked)."""
    with path.open("rb") as handle:
        handle.seek(0, os.SEEK_END)
        position = handle.tell()
        tail = b""
        while position > 0:
            step = min(block, position)
            position -= step
            handle.seek(position)
            tail = handle.read(step) + tail
            parts = tail.split(b"\n")
            tail = parts[0]
            yield from reversed([p for p in parts[1:] if p])
        if tail:
            yield tail


def link_of(line: bytes) -> tuple[int, str] | None:
    """``(seq, mac)`` of a signed line; None when it has no MAC or no integer ``seq``."""
    split = split_line(line)
    if split is None:
        return None
    with contextlib.suppress(ValueError):
        seq = json.loads(split[0]).get("seq")
        if isinstance(seq, int):
            return seq, split[1]
    return None


def _first_link(path: Path) -> tuple[int, str] | None:
    """(``seq``, ``prev``) of the first event in ``path``."""
    with path.open("rb") as handle:
        for line in handle:
            split = split_line(line)
            if split is None:
                continue
            with contextlib.suppress(ValueError, AttributeError):
                event = json.loads(split[0])
                seq, prev = event.get("seq"), event.get("prev")
                if isinstance(seq, int) and isinstance(prev, str):
                    return seq, prev
    return None

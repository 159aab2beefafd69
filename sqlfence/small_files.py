"""Small files: reading one that someone else may have made hostile (policy files, tools
and tokens files, the audit key), and replacing one whole (the audit head and roster).

``read_small`` reads at most ``limit + 1`` bytes (so ``/dev/zero`` or a 50 MB file cannot
take memory), refuses a directory, and waits at most ``wait_s`` for a pipe or FIFO to give
its bytes (a FIFO nobody writes to would otherwise block for ever, already at ``open``).
``replace_small`` writes a temporary file and renames it over the old one, so a reader
sees the old bytes or the new, never a part.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import stat
import time
from pathlib import Path


class NotReadable(OSError):
    """The file cannot be read as a small file: a directory, or a pipe that did not finish
    in time. ``str()`` says which."""


def read_small(path: Path, limit: int, wait_s: float = 2.0) -> bytes:
    """Up to ``limit + 1`` bytes of ``path`` (the caller refuses more than ``limit``).

    Raises FileNotFoundError, NotReadable, or the OSError of the read.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise NotReadable(f"{path} is a directory")
        if stat.S_ISREG(mode) or stat.S_ISCHR(mode):
            return _read_up_to(fd, limit + 1)
        return _read_pipe(fd, path, limit + 1, wait_s)  # a FIFO, a pipe, a socket
    finally:
        os.close(fd)


def _read_up_to(fd: int, size: int) -> bytes:
    chunks: list[bytes] = []
    left = size
    while left > 0:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _read_pipe(fd: int, path: Path, size: int, wait_s: float) -> bytes:
    deadline = time.monotonic() + wait_s
    chunks: list[bytes] = []
    left = size
    while left > 0:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
            raise NotReadable(f"{path} gave no end of file within {wait_s:g} s (a pipe or FIFO)")
        try:
            chunk = os.read(fd, min(left, 1 << 20))
        except BlockingIOError:
            continue
        if not chunk:  # end of file
            break
        chunks.append(chunk)
        left -= len(chunk)
    if not chunks:  # a FIFO nobody writes to reads as empty: not a file's content
        raise NotReadable(f"{path} is a pipe or FIFO that gave nothing")
    return b"".join(chunks)


def replace_small(path: Path, data: bytes, *, sync: bool = False) -> None:
    """Replace ``path`` with ``data`` atomically (mode 0600); ``sync`` puts the bytes on
    stable storage before the rename. Raises OSError and leaves the old file."""
    temporary = path.with_name(path.name + ".tmp")
    try:
        fd = os.open(
            temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0), 0o600
        )
        try:
            if os.write(fd, data) != len(data):  # a few hundred bytes: short on a full disk
                raise OSError(errno.ENOSPC, f"short write of {path.name}")
            if sync:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, path)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise

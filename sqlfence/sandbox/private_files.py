"""Files and directories only their owner can read: registry records, snapshots, namespaces.

Snapshots hold whole databases and records name servers, so everything sqlfence writes under
a sandbox root is made 0600 in directories made 0700, by the call that creates it (an
``os.open`` / ``os.mkdir`` mode, which the umask can only narrow), never made wide and
narrowed afterwards. Child programs that write files (pg_dump) run with ``CHILD_UMASK``.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path
from typing import BinaryIO

FILE_MODE = 0o600
DIRECTORY_MODE = 0o700
CHILD_UMASK = 0o077


def directory(path: Path, tighten: bool = True) -> Path:
    """``path`` as a directory, made 0700 (and any missing parents too) when it is missing.

    ``tighten`` narrows an existing directory to 0700 (one an older version made 0755);
    a sandbox root that already existed is left as its owner made it (it may be shared).
    """
    try:
        os.mkdir(path, DIRECTORY_MODE)
    except FileNotFoundError:
        directory(path.parent, tighten=False)
        with contextlib.suppress(FileExistsError):
            os.mkdir(path, DIRECTORY_MODE)
    except FileExistsError:
        if not path.is_dir():
            raise
        if tighten:
            _narrow(path, DIRECTORY_MODE)
        return path
    # A umask that takes away the owner's own bits would leave a directory we cannot use.
    os.chmod(path, DIRECTORY_MODE)
    return path


def create(path: Path) -> BinaryIO:
    """A new file at ``path``, 0600 from the moment it exists, open for writing.

    An existing file is replaced only after it is narrowed to 0600 (never written while wide).
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)  # an existing file keeps its mode through O_CREAT
        return os.fdopen(fd, "wb")
    except BaseException:
        os.close(fd)
        raise


def write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` as a 0600 file."""
    with create(path) as handle:
        handle.write(data)


def reserve(path: Path) -> Path:
    """An empty 0600 file at ``path`` for another writer (SQLite) to fill; it keeps the mode."""
    write(path, b"")
    return path


def _narrow(path: Path, mode: int) -> None:
    with contextlib.suppress(PermissionError):  # not ours: leave it to its owner
        if stat.S_IMODE(path.stat().st_mode) & ~mode:
            os.chmod(path, mode)

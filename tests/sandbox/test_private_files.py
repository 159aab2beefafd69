"""Files and directories under a sandbox root are the owner's only, from the moment they exist."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from sqlfence.sandbox import private_files


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_umask() -> Iterator[None]:
    """umask 0: whatever is not made private by its creating call comes out world-writable."""
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


@pytest.mark.usefixtures("open_umask")
def test_missing_directories_are_made_0700_parents_too(tmp_path: Path) -> None:
    """A directory and its missing parents are 0700 even with umask 0."""
    leaf = private_files.directory(tmp_path / "a" / "b" / "c")
    assert [_mode(p) for p in (leaf, leaf.parent, leaf.parent.parent)] == [0o700] * 3


def test_an_existing_directory_is_narrowed_unless_told_not_to(tmp_path: Path) -> None:
    """An older version's 0755 directory becomes 0700; a root that existed is left alone."""
    (tmp_path / "old").mkdir(mode=0o755)
    os.chmod(tmp_path / "old", 0o755)
    private_files.directory(tmp_path / "old")
    assert _mode(tmp_path / "old") == 0o700
    (tmp_path / "root").mkdir()
    os.chmod(tmp_path / "root", 0o755)
    private_files.directory(tmp_path / "root", tighten=False)
    assert _mode(tmp_path / "root") == 0o755


@pytest.mark.usefixtures("open_umask")
def test_new_files_are_0600(tmp_path: Path) -> None:
    """write() and reserve() make 0600 files even with umask 0."""
    private_files.write(tmp_path / "data", b"secret")
    private_files.reserve(tmp_path / "empty")
    assert (_mode(tmp_path / "data"), _mode(tmp_path / "empty")) == (0o600, 0o600)
    assert (tmp_path / "data").read_bytes() == b"secret"


def test_an_existing_wide_file_is_narrowed_before_it_is_written(tmp_path: Path) -> None:
    """Rewriting a 0644 file leaves it 0600 with only the new bytes."""
    path = tmp_path / "old"
    path.write_bytes(b"old contents")
    os.chmod(path, 0o644)
    with private_files.create(path) as handle:
        assert _mode(path) == 0o600  # before a byte is written
        handle.write(b"new")
    assert path.read_bytes() == b"new"

"""Small files someone may have made hostile (policies, tools, tokens, the audit key): read
within a byte limit, a directory refused, a FIFO nobody writes to refused without hanging."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import sqlfence
from sqlfence.observe.audit import AuditLog
from sqlfence.observe.settings import AuditSettings
from sqlfence.small_files import NotReadable, read_small


def test_a_regular_file_is_read_up_to_the_limit(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"x" * 100)
    assert read_small(path, 1000) == b"x" * 100
    assert len(read_small(path, 10)) == 11  # one byte more tells the caller it is too big


def test_dev_zero_stops_at_the_limit() -> None:
    assert len(read_small(Path("/dev/zero"), 1000)) == 1001


def test_a_directory_and_a_silent_fifo_are_refused(tmp_path: Path) -> None:
    with pytest.raises(NotReadable, match="directory"):
        read_small(tmp_path, 10)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(NotReadable, match="FIFO"):
        read_small(fifo, 10, wait_s=0.2)


def test_a_fifo_policy_file_is_a_policy_error(tmp_path: Path) -> None:
    """`sqlfence policy lint` on a FIFO nobody writes to: one line, exit 2, no hang."""
    fifo = tmp_path / "p.yaml"
    os.mkfifo(fifo)
    with pytest.raises(sqlfence.PolicyError, match=r"p\.yaml"):
        sqlfence.load_policy(fifo)
    done = subprocess.run(
        [sys.executable, "-m", "sqlfence.cli", "policy", "lint", str(fifo)],
        capture_output=True, text=True, timeout=60, check=False, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert done.returncode != 0
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("kind", ["dev_zero", "fifo", "directory", "dangling", "huge"])
def test_a_hostile_audit_key_file_is_refused(tmp_path: Path, kind: str) -> None:
    """An audit key that is /dev/zero, a FIFO, a directory, a broken link or huge is a
    ConfigurationError, never memory, a hang or a raw OSError."""
    directory = tmp_path / "audit"
    directory.mkdir()
    key = directory / "audit.key"
    if kind == "dev_zero":
        key.symlink_to("/dev/zero")
    elif kind == "fifo":
        os.mkfifo(key)
    elif kind == "directory":
        key.mkdir()
    elif kind == "dangling":
        key.symlink_to(tmp_path / "nowhere")
    else:
        key.write_bytes(b"k" * 100_000)
    with pytest.raises(sqlfence.ConfigurationError, match="audit key"):
        AuditLog(AuditSettings(directory=directory))


def test_audit_files_are_only_the_owners(tmp_path: Path) -> None:
    """Under any umask, the audit directory sqlfence makes is 0700 and its files 0600."""
    old = os.umask(0)
    try:
        directory = tmp_path / "audit"
        with AuditLog(AuditSettings(directory=directory)) as log:
            log.emit("sandbox.step")
    finally:
        os.umask(old)
    assert directory.stat().st_mode & 0o777 == 0o700
    for path in directory.iterdir():
        assert path.stat().st_mode & 0o077 == 0, path

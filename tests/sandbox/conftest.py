"""Sandbox fixtures: a sandbox root per test that must be empty of namespaces afterwards."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from sqlfence.sandbox import AgentSandbox, reap

REPOSITORY = Path(__file__).parents[2]


def leftovers(root: Path) -> list[str]:
    """Files a sandbox may leave: namespaces, registry records, private snapshots."""
    found = []
    for part in ("sandboxes", "registry", "sandbox-snapshots"):
        where = root / part
        if where.exists():
            found += [str(p.relative_to(root)) for p in where.rglob("*") if p.is_file()]
    return found


def flip_byte(path: Path) -> None:
    """Damage a snapshot file the smallest way: one bit of its middle byte."""
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    path.write_bytes(bytes(raw))


def count_rows(sb: AgentSandbox, table: str = "entities") -> int:
    """The rows of ``table``, counted through a fence connection of ``sb``."""
    with sb.get_connection() as conn:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def signal_when_ready(script: str, *args: str, signum: int = signal.SIGKILL) -> None:
    """Run ``script`` in a fresh interpreter; once it prints ``ready``, send it ``signum``.

    The child gets the signal and is waited for even when it never becomes ready.
    """
    child = subprocess.Popen(
        [sys.executable, "-c", script, *args], stdout=subprocess.PIPE, text=True, cwd=REPOSITORY
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
    finally:
        child.send_signal(signum)
        child.wait()


@pytest.fixture
def root(tmp_path: Path) -> Iterator[Path]:
    """A sandbox root; the test fails if any sandbox file outlives it."""
    home = tmp_path / ".sqlfence"
    yield home
    left = leftovers(home)
    reap(home, everything=True)
    assert left == [], f"sandbox files leaked: {left}"

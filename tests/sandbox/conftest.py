"""Sandbox fixtures: a sandbox root per test that must be empty of namespaces afterwards."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sqlfence.sandbox import reap


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


@pytest.fixture
def root(tmp_path: Path) -> Iterator[Path]:
    """A sandbox root; the test fails if any sandbox file outlives it."""
    home = tmp_path / ".sqlfence"
    yield home
    left = leftovers(home)
    reap(home, everything=True)
    assert left == [], f"sandbox files leaked: {left}"

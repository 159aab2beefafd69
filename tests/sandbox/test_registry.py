"""The registry's own guarantees: what put_soon promises to this process and to others."""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

from sqlfence.sandbox import Owner, Record, Registry

_READ_AGENT = (
    "import sys; from sqlfence.sandbox import Registry; "
    "print(Registry(sys.argv[1]).get(sys.argv[2]).agent_id)"
)


def _record(name: str) -> Record:
    return Record(name=name, backend="sqlite", agent_id="pool", tenant=None,
                  owner=Owner.current(), created_at=time.time(), expires_at=None,
                  location="")  # fmt: skip


def test_put_soon_is_seen_at_once_here_and_within_moments_elsewhere(root: Path) -> None:
    """This process reads a put_soon back at once; another process sees it once written."""
    registry = Registry(root)
    record = _record("AGENT_SOON")
    registry.put(record)
    registry.put_soon(replace(record, agent_id="a1"))
    registry.put_soon(replace(record, agent_id="a2"))  # only the latest counts
    assert Registry(root).get(record.name).agent_id == "a2"  # type: ignore[union-attr]
    deadline = time.monotonic() + 30
    while True:
        reader = [sys.executable, "-c", _READ_AGENT, str(root), record.name]
        seen = subprocess.run(reader, capture_output=True, text=True, check=True).stdout.strip()
        if seen == "a2":
            break
        assert time.monotonic() < deadline, f"another process still sees {seen!r}"
    registry.remove(record.name)


def test_a_remove_after_put_soon_is_not_undone(root: Path) -> None:
    """A pending background write never brings back a record removed after it."""
    registry = Registry(root)
    record = _record("AGENT_GONE")
    registry.put(record)
    registry.put_soon(replace(record, agent_id="a1"))
    registry.remove(record.name)
    time.sleep(0.05)  # room for the background writer, which must have nothing left to write
    assert registry.get(record.name) is None
    assert registry.records() == []

"""``reap()``: remove sandboxes that expired or whose owning process is gone.

What ``sqlfence sandbox gc`` runs. It needs only the sandbox root: each registry record
says which backend and server hold the namespace.
"""

from __future__ import annotations

from pathlib import Path

from sqlfence.sandbox.registry import Record, Registry
from sqlfence.sandbox.registry import reap as _reap
from sqlfence.sandbox.runtimes.base import backend_for
from sqlfence.sandbox.snapshots import SnapshotStore


def reap(root: str | Path | None = None, everything: bool = False) -> list[str]:
    """Drop every expired or orphaned sandbox under ``root`` (default ``.sqlfence``).

    ``everything`` also drops sandboxes of live processes. Returns the names removed;
    a sandbox whose server cannot be reached stays recorded for the next run.
    """
    from sqlfence.sandbox.sandbox import DEFAULT_ROOT, OWN_SNAPSHOTS

    home = Path(root if root is not None else DEFAULT_ROOT).resolve()

    def drop(record: Record) -> None:
        backend = backend_for(record.backend, home, record.server)
        try:
            for clone in record.clones:
                backend.drop_clone(clone)
            backend.drop(record.name)
        finally:
            backend.close()
        SnapshotStore(home / OWN_SNAPSHOTS / record.name).clear()

    return _reap(Registry(home), drop, everything=everything)


def listing(root: str | Path | None = None) -> list[Record]:
    """Every recorded sandbox under ``root`` (what ``sqlfence sandbox list`` shows)."""
    from sqlfence.sandbox.sandbox import DEFAULT_ROOT

    return Registry(Path(root if root is not None else DEFAULT_ROOT).resolve()).records()

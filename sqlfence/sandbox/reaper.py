"""``reap()``: remove sandboxes that expired or whose owning process is gone.

What ``sqlfence sandbox gc`` runs. It needs only the sandbox root: each registry record
says which backend and server hold the namespace, and containers started by the docker
runtime are found by their labels (owner process, sandbox root, expiry).
"""

from __future__ import annotations

from pathlib import Path

from sqlfence.sandbox.registry import Record, Registry
from sqlfence.sandbox.registry import reap as _reap
from sqlfence.sandbox.runtimes.base import drop_recorded
from sqlfence.sandbox.sandbox import OWN_SNAPSHOTS, resolve_root
from sqlfence.sandbox.snapshots import SnapshotStore


def reap(root: str | Path | None = None, everything: bool = False) -> list[str]:
    """Drop every expired or orphaned sandbox under ``root`` (default ``.sqlfence``).

    ``everything`` also drops sandboxes of live processes. Returns the names removed;
    a sandbox whose server cannot be reached stays recorded for the next run.
    """
    home = resolve_root(root)

    def drop(record: Record) -> None:
        if record.runtime == "docker":
            from sqlfence.sandbox.runtimes import docker

            docker.drop_record(home, record.name, record.backend, record.clones)
        else:
            drop_recorded(record.backend, home, record.server, record.name, record.clones)
        SnapshotStore(home / OWN_SNAPSHOTS / record.name).clear()

    registry = Registry(home)
    removed = _reap(registry, drop, everything=everything)
    if _has_engine():
        from sqlfence.sandbox.runtimes import docker

        removed += [
            name
            for name in docker.reap_containers(home, everything=everything)
            if name not in removed
        ]
    return removed


def _has_engine() -> bool:
    # Containers outlive their records when a process dies between the two: look whenever
    # an engine answers. No engine (or no docker SDK) means no containers to reap.
    try:
        from sqlfence.sandbox.runtimes.docker import client

        client()
    except Exception:
        return False
    return True


def listing(root: str | Path | None = None) -> list[Record]:
    """Every recorded sandbox under ``root`` (what ``sqlfence sandbox list`` shows)."""
    return Registry(resolve_root(root)).records()

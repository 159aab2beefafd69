"""``reap()``: remove sandboxes that expired or whose owning process is gone.

What ``sqlfence sandbox gc`` runs. It needs the sandbox root and the admin credentials of
the servers: each registry record says which backend and server address hold the namespace
(never a password: that comes from the environment or ``credentials``), and containers
started by the docker runtime are found by their labels (owner process, root, expiry).
"""

from __future__ import annotations

from pathlib import Path

from sqlfence.sandbox.credentials import Credentials, CredentialsMissing, urls
from sqlfence.sandbox.registry import Record, Registry
from sqlfence.sandbox.registry import reap as _reap
from sqlfence.sandbox.runtimes.base import drop_recorded
from sqlfence.sandbox.sandbox import OWN_SNAPSHOTS, resolve_root
from sqlfence.sandbox.snapshots import SnapshotStore


def reap(
    root: str | Path | None = None, everything: bool = False, credentials: Credentials = None
) -> list[str]:
    """Drop every expired or orphaned sandbox under ``root`` (default ``.sqlfence``).

    ``everything`` also drops sandboxes of live processes. ``credentials`` are admin URLs
    (with passwords) for servers whose password is not in this process's environment.
    Returns the names removed; a sandbox whose server cannot be reached stays recorded for
    the next run. Raises CredentialsMissing, after removing what it could, naming the servers
    it has no admin password for and how to give one.
    """
    home = resolve_root(root)
    registry = Registry(home)
    given = urls(credentials)

    def drop(record: Record) -> None:
        if record.runtime == "docker":
            from sqlfence.sandbox.runtimes import docker

            docker.drop_record(home, record.name, record.backend, record.clones)
        else:
            recovered = list(registry.recovered.values())  # from records an older version wrote
            drop_recorded(
                record.backend, home, record.server, record.name, record.clones, given + recovered
            )
        SnapshotStore(home / OWN_SNAPSHOTS / record.name).clear()

    lacking: CredentialsMissing | None = None
    try:
        removed = _reap(registry, drop, everything=everything)
    except CredentialsMissing as error:
        lacking, removed = error, error.removed
    if _has_engine():
        from sqlfence.sandbox.runtimes import docker

        removed += [
            name
            for name in docker.reap_containers(home, everything=everything)
            if name not in removed
        ]
    if lacking is not None:
        lacking.removed = removed
        raise lacking
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

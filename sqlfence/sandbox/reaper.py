"""``reap()``: remove sandboxes that expired or whose owning process is gone.

What ``sqlfence sandbox gc`` runs. It needs the sandbox root and the admin credentials of
the servers: each registry record says which backend and server address hold the namespace
(never a password: that comes from the environment or ``credentials``), its runtime says
where that server is now, and each runtime sweeps the servers it started that a dead or
expired owner left (docker: containers, by their labels: owner process, root, expiry).
"""

from __future__ import annotations

from pathlib import Path

from sqlfence.sandbox.backends.base import backend_for
from sqlfence.sandbox.credentials import Credentials, CredentialsMissing, urls
from sqlfence.sandbox.registry import Record, Registry, resolve_root
from sqlfence.sandbox.registry import reap as _reap
from sqlfence.sandbox.runtimes import runtime_type, runtime_types
from sqlfence.sandbox.runtimes.base import drop_namespace
from sqlfence.sandbox.sandbox import OWN_SNAPSHOTS
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
        where = runtime_type(record.runtime).reopen(record, home)
        if where.holds_namespaces():
            recovered = list(registry.recovered.values())  # from records an older version wrote
            backend = backend_for(record.backend, home, where.admin_url, given + recovered)
            try:
                drop_namespace(where, backend, record.name, record.clones)
            finally:
                backend.close()
        else:
            where.release()
        SnapshotStore(home / OWN_SNAPSHOTS / record.name).clear()

    lacking: CredentialsMissing | None = None
    try:
        removed = _reap(registry, drop, everything=everything)
    except CredentialsMissing as error:
        lacking, removed = error, error.removed
    # Servers outlive their records when a process dies between the two: each runtime
    # finds its own by their labels.
    for runtime in runtime_types():
        removed += [
            name for name in runtime.sweep(home, everything=everything) if name not in removed
        ]
    if lacking is not None:
        lacking.removed = removed
        raise lacking
    return removed


def listing(root: str | Path | None = None) -> list[Record]:
    """Every recorded sandbox under ``root`` (what ``sqlfence sandbox list`` shows)."""
    return Registry(resolve_root(root)).records()

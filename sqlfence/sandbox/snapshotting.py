"""Taking and restoring a sandbox's snapshots: the fast path of its backend, or portable files.

Files are written to a staging directory and moved into place only when complete, so a
half-written snapshot never exists under its name. Restores verify before they touch data.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlfence.sandbox import naming
from sqlfence.sandbox.snapshots import Manifest, SnapshotStore, check_name, new_manifest

if TYPE_CHECKING:
    from sqlfence.sandbox.sandbox import AgentSandbox


def take(sandbox: AgentSandbox, store: SnapshotStore, name: str, in_server: bool) -> Manifest:
    """Snapshot ``sandbox`` into ``store`` as ``name`` (in-server clone where there is one)."""
    backend = sandbox.backend
    staging = store.staging(check_name(name))
    clone = None
    try:
        contents = backend.contents(sandbox.name)
        where: dict[str, Any]
        if in_server and backend.clones:
            clone = naming.derived(sandbox.name, f"S_{name}")
            where = {"clone": clone, "content_digest": backend.clone(sandbox.name, clone)}
        else:
            where = {"files": backend.export_files(sandbox.name, staging)}
        manifest = new_manifest(
            name,
            backend.name,
            sandbox.name,
            tables=contents.tables,
            schema_digest=contents.schema_digest,
            **where,
        )
        return store.commit(staging, manifest)
    except BaseException:
        store.abandon(staging)
        if clone is not None:
            backend.drop_clone(clone)
        raise


def restore(sandbox: AgentSandbox, store: SnapshotStore, name: str) -> Manifest:
    """Verify snapshot ``name`` of ``store``, then replace ``sandbox``'s data with it."""
    backend = sandbox.backend
    manifest = store.verify(name, backend.name)
    if manifest.clone is not None:
        backend.restore_clone(sandbox.name, manifest.clone, manifest.content_digest or "")
    else:
        backend.import_files(sandbox.name, store.path(name), list(manifest.files))
    return manifest

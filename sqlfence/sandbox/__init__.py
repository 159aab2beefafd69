"""Per-agent sandboxes: a namespace of its own, reachable only through the fence.

``AgentSandbox.create(agent_id=..., backend="sqlite" | "postgres" | "iris", ...)`` as a
context manager; ``SandboxPool`` keeps warm ones ready; ``reap()`` removes what crashed
processes left behind.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlfence.errors import PoolTimeout, SnapshotCorrupt
from sqlfence.lazy import exports

if TYPE_CHECKING:  # imported on first use: the registry alone must stay cheap to import
    from sqlfence.sandbox.backends.base import Backend, Contents, Namespace
    from sqlfence.sandbox.credentials import CredentialsMissing
    from sqlfence.sandbox.limits import Limits
    from sqlfence.sandbox.pool import Lease, SandboxPool
    from sqlfence.sandbox.reaper import listing, reap
    from sqlfence.sandbox.registry import Owner, Record, Registry
    from sqlfence.sandbox.sandbox import AgentSandbox
    from sqlfence.sandbox.snapshots import Manifest, SnapshotStore

_LATER = {
    "Backend": "sqlfence.sandbox.backends.base",
    "Contents": "sqlfence.sandbox.backends.base",
    "Namespace": "sqlfence.sandbox.backends.base",
    "CredentialsMissing": "sqlfence.sandbox.credentials",
    "Limits": "sqlfence.sandbox.limits",
    "Lease": "sqlfence.sandbox.pool",
    "SandboxPool": "sqlfence.sandbox.pool",
    "listing": "sqlfence.sandbox.reaper",
    "reap": "sqlfence.sandbox.reaper",
    "Owner": "sqlfence.sandbox.registry",
    "Record": "sqlfence.sandbox.registry",
    "Registry": "sqlfence.sandbox.registry",
    "AgentSandbox": "sqlfence.sandbox.sandbox",
    "Manifest": "sqlfence.sandbox.snapshots",
    "SnapshotStore": "sqlfence.sandbox.snapshots",
}
__getattr__, __dir__ = exports(__name__, globals(), _LATER)

__all__ = [
    "AgentSandbox",
    "Backend",
    "Contents",
    "CredentialsMissing",
    "Lease",
    "Limits",
    "Manifest",
    "Namespace",
    "Owner",
    "PoolTimeout",
    "Record",
    "Registry",
    "SandboxPool",
    "SnapshotCorrupt",
    "SnapshotStore",
    "listing",
    "reap",
]

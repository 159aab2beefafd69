"""Per-agent sandboxes: a namespace of its own, reachable only through the fence.

``AgentSandbox.create(agent_id=..., backend="sqlite" | "postgres" | "iris", ...)`` as a
context manager; ``SandboxPool`` keeps warm ones ready; ``reap()`` removes what crashed
processes left behind.
"""

from __future__ import annotations

from sqlfence.errors import PoolTimeout, SnapshotCorrupt
from sqlfence.sandbox.backends.base import Backend, Contents, Namespace
from sqlfence.sandbox.credentials import CredentialsMissing
from sqlfence.sandbox.limits import Limits
from sqlfence.sandbox.pool import Lease, SandboxPool
from sqlfence.sandbox.reaper import listing, reap
from sqlfence.sandbox.registry import Owner, Record, Registry
from sqlfence.sandbox.sandbox import AgentSandbox
from sqlfence.sandbox.snapshots import Manifest, SnapshotStore

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

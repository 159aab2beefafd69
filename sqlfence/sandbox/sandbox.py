"""``AgentSandbox``: one agent's own namespace, handed out only through fence connections.

A sandbox is recorded in the registry before its namespace exists and forgotten only after
it is gone, so whatever a crash interrupts, ``reap()`` can finish. ``destroy`` is idempotent.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from sqlfence import exits
from sqlfence.errors import ConfigurationError, QuotaExceeded, SandboxError
from sqlfence.observe.events import SandboxEvent
from sqlfence.observe.observer import NULL_OBSERVER, Observer
from sqlfence.observe.parts import EventSink
from sqlfence.observe.settings import AuditOption, MonitoringOption
from sqlfence.policies.engine import Decision
from sqlfence.policies.model import Policy
from sqlfence.proxy.connect import connect
from sqlfence.proxy.connection import GuardedConnection
from sqlfence.sandbox import lifecycle, naming, snapshotting
from sqlfence.sandbox.backends import postgres_row_security as row_security
from sqlfence.sandbox.backends.base import (
    Backend,
    Namespace,
    backend_for,
    backend_type,
    names_are_public,
)
from sqlfence.sandbox.credentials import Credentials, urls
from sqlfence.sandbox.limits import Limits, build_limits, build_policy
from sqlfence.sandbox.metrics import (
    RESOURCE_INTERVAL_S,
    add_numbers,
    report_resources,
    watches_resources,
)
from sqlfence.sandbox.options import observing
from sqlfence.sandbox.registry import Owner, Record, Registry
from sqlfence.sandbox.registry import (  # re-exported: integrations/mcp.py imports it here
    resolve_root as resolve_root,  # noqa: PLC0414
)
from sqlfence.sandbox.runtimes import runtime_for, runtime_type
from sqlfence.sandbox.runtimes.base import (
    Placement,
    PlacementRequest,
    Runtime,
    RuntimeOptions,
    drop_namespace,
)
from sqlfence.sandbox.snapshots import Manifest, SnapshotStore

SNAPSHOTS = "snapshots"  # shared: golden datasets, load_snapshot(name)
OWN_SNAPSHOTS = "sandbox-snapshots"  # private to one sandbox, removed with it
# Statements that only free space: they run over the disk quota, so the agent can get under.
_FREEING_OPERATIONS = frozenset({"delete", "drop", "truncate"})


class AgentSandbox:
    """A disposable namespace for one agent. Use ``AgentSandbox.create(...)``."""

    def __init__(
        self,
        namespace: Namespace,
        backend: Backend,
        placement: Placement,
        record: Record,
        registry: Registry,
        limits: Limits,
        policy: Policy,
        *,
        monitoring: MonitoringOption = None,
        audit: AuditOption = None,
        on_event: EventSink | None = None,
        observer: Observer | None = None,
    ) -> None:
        self.namespace = namespace
        self.limits = limits
        self.policy = policy
        self._backend = backend
        self._placement = placement
        self._record = record
        self._registry = registry
        self._root = registry.root
        self._audit, self._monitoring = observing(audit, monitoring)
        # its lifecycle's events: on_event, then the audit log (``create`` opens it first)
        self._observer = lifecycle.observer(self._audit, on_event) if observer is None else observer
        self._state = "active"
        self._lock = threading.RLock()
        self._connections: set[GuardedConnection] = set()
        self._closed_metrics: dict[str, float] = {}
        self._over_quota = False
        self._timer: threading.Event | None = None
        self.snapshots = SnapshotStore(self._root / OWN_SNAPSHOTS / namespace.name)
        self.shared_snapshots = SnapshotStore(self._root / SNAPSHOTS)
        # A server in a container can die or be OOM-killed behind our back.
        placement.on_failure(lambda reason: self._emit("container_failed", error=reason))

    # -- life ------------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        agent_id: str,
        tenant: str | None = None,
        backend: str = "sqlite",
        runtime: str | Runtime | None = None,
        *,
        server_url: str | None = None,
        placement: str | None = None,
        image: str | None = None,
        limits: Limits | Mapping[str, Any] | None = None,
        monitoring: MonitoringOption = None,
        access_policy: Policy | Mapping[str, Any] | None = None,
        audit_log: Mapping[str, Any] | None = None,
        audit: AuditOption = None,
        ttl: float | timedelta | None = None,
        root: str | Path | None = None,
        load_snapshot: str | Path | None = None,
        on_event: EventSink | None = None,
    ) -> AgentSandbox:
        """Make a sandbox: a registry record, then its namespace and least-privilege role.

        ``ttl`` (seconds) makes it expire: it then refuses work and ``reap()`` removes it.
        ``load_snapshot`` fills it from a shared snapshot (a golden dataset) or a snapshot
        directory. ``audit`` (or ``audit_log`` when it is enabled) goes to every fence
        connection. ``runtime="docker"`` starts the server in a container: ``placement``
        ``"shared"`` (default) or ``"dedicated"`` (one container per sandbox, ``limits``
        enforced by cgroups), ``image`` overriding the engine's default image. ``audit`` and
        ``monitoring`` are the fence options of those names. Raises SandboxError,
        ConfigurationError (TypeError for an option's wrong shape), or PolicyError.
        """
        audit, monitoring = observing(audit, monitoring, audit_log)  # before anything is made
        settings = build_limits(limits)
        policy = build_policy(access_policy, settings)
        home = resolve_root(root)
        kind = backend_type(backend)
        options = RuntimeOptions(server_url=server_url, placement=placement, image=image)
        chosen = runtime_for(runtime, kind.name, options)
        now = datetime.now(timezone.utc)
        if names_are_public(kind):  # the registry alone maps the name to agent and tenant
            name = naming.opaque_name(secrets.token_hex(8))
        else:
            name = naming.namespace_name(agent_id, tenant, now, token=secrets.token_hex(3))
        if ttl is not None and not isinstance(ttl, (int, float, timedelta)):
            raise ConfigurationError(f"ttl must be seconds or a timedelta, not {ttl!r}")
        seconds = ttl.total_seconds() if isinstance(ttl, timedelta) else ttl
        created = now.timestamp()
        expires_at = None if seconds is None else created + seconds
        labels: dict[str, Any] = {"sqlfence": "sandbox", "agent_id": agent_id, "tenant": tenant}
        if expires_at is not None:
            labels["expires_at"] = expires_at
        record = Record(
            name=name,
            backend=kind.name,
            agent_id=agent_id,
            tenant=tenant,
            owner=Owner.current(),
            created_at=created,
            expires_at=expires_at,
            location="",
            server=server_url if kind.name != "sqlite" else None,  # kept without password
            labels=labels,
            runtime=chosen.name,
        )
        registry = Registry(home)
        request = PlacementRequest(name, kind.name, home, settings, agent_id, tenant, expires_at)
        observer = lifecycle.observer(audit, on_event)
        namespace, database, where, record = lifecycle.make(
            chosen, request, record, registry, policy, observer
        )
        sandbox = cls(
            namespace,
            database,
            where,
            record,
            registry,
            settings,
            policy,
            monitoring=monitoring,
            audit=audit,
            observer=observer,
        )
        exits.register(sandbox, exits.SANDBOXES)
        sandbox._emit("created", location=namespace.location, expires_at=record.expires_at)
        try:
            if load_snapshot is not None:
                sandbox.load_snapshot(load_snapshot)
            sandbox._start_quota_timer()
        except BaseException:
            sandbox.destroy()
            raise
        return sandbox

    def detach(self) -> None:
        """Let this sandbox outlive this process: no clean-up at exit or on SIGTERM.

        Its ttl, ``destroy()`` (also from another process, through ``AgentSandbox.open``) or
        ``sqlfence sandbox gc --all`` end it. Not for container runtimes, whose servers stop
        with the process that started them.
        """
        if not self._placement.outlives_process:
            raise ConfigurationError(
                f"sandbox {self.name} cannot outlive this process: the {self._record.runtime} "
                "runtime's server stops with it"
            )
        exits.unregister(self, exits.SANDBOXES)
        self._update_record(owner=Owner.detached())
        self._emit("detached")

    @classmethod
    def open(
        cls,
        name: str,
        root: str | Path | None = None,
        *,
        credentials: Credentials = None,
        access_policy: Policy | Mapping[str, Any] | None = None,
        limits: Limits | Mapping[str, Any] | None = None,
        monitoring: MonitoringOption = None,
        audit: AuditOption = None,
    ) -> AgentSandbox:
        """A handle on an existing sandbox, made by another process (``sqlfence sandbox create``).

        Snapshots, restores and ``destroy()`` work on every backend; fence connections need
        the namespace's URL, which only SQLite sandboxes can rebuild (a PostgreSQL sandbox's
        role password stays with the process that made it). The registry keeps no admin
        password: it comes from the environment (PGPASSWORD, a password or service file) or
        ``credentials`` (admin URLs). ``access_policy``, ``limits``, ``monitoring`` and
        ``audit`` are for the connections, as in ``create``. Raises SandboxError, and
        CredentialsMissing when the server wants a password this process was not given.
        """
        audit, monitoring = observing(audit, monitoring)
        home = resolve_root(root)
        registry = Registry(home)
        record = registry.get(name)
        if record is None:
            raise SandboxError(f"no sandbox named {name} under {home}")
        settings = build_limits(limits)
        policy = build_policy(access_policy, settings)
        given = [*urls(credentials), *registry.recovered.values()]
        where = runtime_type(record.runtime).reopen(record, home)
        database = backend_for(record.backend, home, where.admin_url, given)
        url = f"sqlite:///{record.location}" if record.backend == "sqlite" else ""
        namespace = Namespace(name, record.backend, url=url, location=record.location)
        return cls(
            namespace,
            database,
            where,
            record,
            registry,
            settings,
            policy,
            monitoring=monitoring,
            audit=audit,
        )

    def destroy(self) -> None:
        """Close every connection, drop the namespace, its role, clones and snapshots.

        Safe to call more than once and from any thread.
        """
        with self._lock:
            if self._state == "destroyed":
                return
            self._state = "destroyed"
        if self._timer is not None:
            self._timer.set()
        self.close_connections()
        try:
            drop_namespace(self._placement, self._backend, self.name, self._record.clones)
            self.snapshots.clear()
            self._registry.remove(self.name)
        finally:
            self._backend.close()
            exits.unregister(self, exits.SANDBOXES)
        self._emit("destroyed")
        self._observer.close()

    def at_exit(self) -> None:
        """Interpreter exit (or SIGTERM): destroy, while the audit log still records."""
        self.destroy()

    def __enter__(self) -> AgentSandbox:
        return self

    def __exit__(self, exc_type: object, exc: object, traceback: object) -> None:
        self.destroy()

    # -- what the agent gets ---------------------------------------------------------

    def get_connection(self, **driver_kwargs: Any) -> GuardedConnection:
        """A fence connection to this namespace, as the sandbox's own role and policy.

        Raises SandboxError when the sandbox is paused, expired or destroyed, and
        QuotaExceeded when ``max_connections`` fence connections are already open.
        """
        if not self.namespace.url:
            raise SandboxError(
                f"sandbox {self.name} was opened by name: its role's password stays with the "
                "process that made it, so connect there (or use a SQLite sandbox)"
            )
        with self._lock:
            self._check_usable()
            self._check_container()
            limit = self.limits.max_connections
            if limit is not None and len(self._connections) >= limit:
                self._emit("connection_refused", reason="max_connections", limit=limit)
                raise QuotaExceeded(
                    f"sandbox {self.name} already has {limit} open connections "
                    f"(limits.max_connections={limit}); close one first"
                )
            connection = connect(
                self.namespace.url,
                policy=self.policy,
                agent_id=self.agent_id,
                tenant=self.tenant,
                audit=self._audit,
                monitoring=self._monitoring,
                sandbox=self.name,
                **driver_kwargs,
            )
            connection._gate = self._gate
            connection.add_close_hook(lambda: self._forget(connection))
            self._connections.add(connection)
        self._emit("connected", connections=len(self._connections))
        return connection

    def get_metrics(self) -> dict[str, Any]:
        """State, size, quota, connections, and the fence metrics summed over connections."""
        summed = dict(self._closed_metrics)
        for connection in list(self._connections):
            add_numbers(summed, connection.get_metrics())
        size = self.size_bytes() if self._state != "destroyed" else 0
        container = self._placement.metrics()
        report_resources(list(self._connections), container, size, self.name)
        return {
            **summed,
            **container,
            "sandbox": self.name,
            "backend": self._backend.name,
            "state": self.state,
            "connections_open": len(self._connections),
            "size_bytes": size,
            "disk_quota_bytes": self.limits.disk_quota_bytes,
            "over_quota": self._over_quota,
            "created_at": self._record.created_at,
            "expires_at": self._record.expires_at,
            "snapshots": len(self.snapshots.names()),
        }

    # -- pause, quota ----------------------------------------------------------------

    def pause(self) -> None:
        """Refuse new statements and connections (the database too, where it can)."""
        with self._lock:
            self._check_usable(allow_paused=True)
            self._state = "paused"
        if not self._placement.pause(True):
            self._backend.set_paused(self.name, True)
        self._emit("paused")

    def resume(self) -> None:
        """Accept statements and connections again."""
        with self._lock:
            if self._state != "paused":
                raise SandboxError(f"sandbox {self.name} is {self._state}, not paused")
            if not self._placement.pause(False):
                self._backend.set_paused(self.name, False)
            self._state = "active"
        self._emit("resumed")

    def size_bytes(self) -> int:
        """The namespace's size on disk."""
        return self._backend.size_bytes(self.name)

    def check_quota(self) -> bool:
        """Measure the namespace against ``disk_quota_mb``; True when it is over.

        Going over fires a ``quota_exceeded`` event (and destroys the sandbox when
        ``on_quota`` is ``terminate``); coming back under fires ``quota_ok``.
        """
        quota = self.limits.disk_quota_bytes
        if quota is None or self._state == "destroyed":
            return False
        size = self.size_bytes()
        over = size > quota
        if over != self._over_quota:
            self._over_quota = over
            self._emit("quota_exceeded" if over else "quota_ok", size_bytes=size, quota=quota)
            if over and self.limits.on_quota == "terminate":
                self.destroy()
        return over

    def healthy(self, probe: bool = True) -> bool:
        """True when the sandbox is active and its server (container) can serve.

        ``probe=False`` only checks what is already known (no engine or server round trip).
        """
        if self.state != "active":
            return False
        return self._placement.healthy() if probe else not self._placement.dead()

    def assign(self, agent_id: str, tenant: str | None = None) -> None:
        """Hand this sandbox to another agent (a pool does, after resetting it).

        The registry learns it from a background write, within moments: who holds a sandbox
        is for listing it, not for finding it after a crash (the owner process is)."""
        self._update_record(soon=True, agent_id=agent_id, tenant=tenant)
        row_security.secure(self._backend, self.name, self.policy, agent_id, tenant)
        self._emit("assigned")

    def close_connections(self) -> None:
        """Close every fence connection this sandbox handed out."""
        for connection in list(self._connections):
            connection.close()

    def _gate(self, decision: Decision) -> None:
        # Called by every fence connection of this sandbox before a statement runs.
        self._check_container()
        if self._state != "active":
            raise SandboxError(f"sandbox {self.name} is {self._state}: statement refused")
        expires = self._record.expires_at
        if expires is not None and time.time() >= expires:
            raise SandboxError(f"sandbox {self.name} expired: statement refused")
        facts = decision.facts
        frees = bool(facts.operations) and set(facts.operations) <= _FREEING_OPERATIONS
        if facts.writes and not frees and self.limits.disk_quota_bytes is not None:
            if self.check_quota():
                raise QuotaExceeded(
                    f"sandbox {self.name} is over its disk quota "
                    f"({self.limits.disk_quota_mb} MB): writes are refused until it is under "
                    "it again; DELETE, DROP and TRUNCATE still run, to make room"
                )
            if self._state == "destroyed":  # terminated by on_quota
                raise QuotaExceeded(f"sandbox {self.name} was destroyed for exceeding its quota")

    def _start_quota_timer(self) -> None:
        """Check the disk quota, and feed resource alert rules, on a timer when asked to."""
        quota = self.limits.quota_check_interval_s is not None and (
            self.limits.disk_quota_bytes is not None
        )
        resources = watches_resources(self._monitoring)
        if not quota and not resources:
            return
        interval = self.limits.quota_check_interval_s or RESOURCE_INTERVAL_S
        stop = threading.Event()
        self._timer = stop

        def run() -> None:
            while not stop.wait(interval):
                try:
                    if quota:
                        self.check_quota()
                    if resources:
                        self.get_metrics()  # reports cpu, memory and disk to the monitor
                except Exception:
                    continue

        threading.Thread(target=run, name=f"sqlfence-quota-{self.name}", daemon=True).start()

    # -- snapshots -------------------------------------------------------------------

    def create_snapshot(self, name: str, shared: bool = False) -> Manifest:
        """Snapshot the namespace as ``name``; ``shared`` makes it a portable golden dataset.

        On PostgreSQL an own snapshot is an in-server ``TEMPLATE`` clone, which needs every
        session to the database closed: while this sandbox has open connections, the snapshot
        is taken as files instead (``pg_dump``, slower), so no open connection is cut.
        """
        self._check_usable(allow_paused=True)
        store = self.shared_snapshots if shared else self.snapshots
        in_server = not shared and not self._connections
        manifest = snapshotting.take(self, store, name, in_server=in_server)
        if manifest.clone:
            self._update_record(clones=(*self._record.clones, manifest.clone))
        self._emit("snapshot_created", snapshot=name, shared=shared, tables=manifest.tables)
        return manifest

    def restore_snapshot(self, name: str) -> Manifest:
        """Replace the namespace's data with own snapshot ``name`` after verifying it.

        Raises SnapshotCorrupt (a SandboxError) for a corrupt or foreign snapshot; the
        sandbox's data is then unchanged.
        """
        return self._restore(self.snapshots, name, "snapshot_restored")

    def load_snapshot(self, name: str | Path) -> Manifest:
        """Fill the namespace from a shared snapshot name or a snapshot directory."""
        if isinstance(name, Path) or "/" in str(name):
            where = Path(name)
            return self._restore(SnapshotStore(where.parent), where.name, "snapshot_loaded")
        return self._restore(self.shared_snapshots, str(name), "snapshot_loaded")

    def list_snapshots(self) -> list[Manifest]:
        """This sandbox's own snapshots, oldest first."""
        return [self.snapshots.manifest(name) for name in self.snapshots.names()]

    def delete_snapshot(self, name: str) -> None:
        """Remove own snapshot ``name`` (and its in-server clone)."""
        manifest = self.snapshots.delete(name)
        if manifest is not None and manifest.clone:
            self._backend.drop_clone(manifest.clone)
            self._update_record(clones=tuple(c for c in self._record.clones if c != manifest.clone))
        self._emit("snapshot_deleted", snapshot=name)

    def _restore(self, store: SnapshotStore, name: str, event: str) -> Manifest:
        self._check_usable(allow_paused=True)
        if self.backend.clones:
            # Replacing a PostgreSQL database ends every session to it: close this sandbox's
            # connections first, so that they say closed (get new ones afterwards).
            self.close_connections()
        try:
            manifest = snapshotting.restore(self, store, name)
            row_security.secure(self._backend, self.name, self.policy, self.agent_id, self.tenant)
        except SandboxError as error:
            self._emit("snapshot_refused", snapshot=name, error=str(error))
            raise
        self._emit(event, snapshot=name, tables=manifest.tables)
        return manifest

    # -- plumbing --------------------------------------------------------------------

    @property
    def name(self) -> str:
        """The namespace name (AGENT_..., TENANT_..._AGENT_..., or SANDBOX_... on PostgreSQL)."""
        return self.namespace.name

    @property
    def agent_id(self) -> str:
        """The agent this sandbox belongs to."""
        return self._record.agent_id

    @property
    def tenant(self) -> str | None:
        """The agent's tenant."""
        return self._record.tenant

    @property
    def backend(self) -> Backend:
        """The database backend holding the namespace."""
        return self._backend

    @property
    def state(self) -> str:
        """active, paused, expired or destroyed."""
        expires = self._record.expires_at
        if self._state == "active" and expires is not None and time.time() >= expires:
            return "expired"
        return self._state

    @property
    def expires_at(self) -> float | None:
        """When the TTL runs out (epoch seconds), or None."""
        return self._record.expires_at

    def _check_usable(self, allow_paused: bool = False) -> None:
        state = self.state
        if state == "active" or (allow_paused and state == "paused"):
            return
        raise SandboxError(f"sandbox {self.name} is {state}")

    def _check_container(self) -> None:
        failure = self._placement.failure()
        if failure is not None:
            raise SandboxError(f"sandbox {self.name}: {failure}; refused")

    def _update_record(self, soon: bool = False, **changes: Any) -> None:
        # The registry too: other processes (open, gc) read it.
        with self._lock:
            self._record = replace(self._record, **changes)
            if soon:
                self._registry.put_soon(self._record)
            else:
                self._registry.put(self._record)

    def _forget(self, connection: GuardedConnection) -> None:
        with self._lock:
            if connection in self._connections:
                self._connections.discard(connection)
                add_numbers(self._closed_metrics, connection.get_metrics())

    def _emit(self, kind: str, error: str | None = None, **details: Any) -> None:
        """Hand the lifecycle event of step ``kind`` to the sandbox's observer (never raises)."""
        if self._observer is not NULL_OBSERVER:
            at = self._record
            backend = self._backend.name
            self._observer.record(
                SandboxEvent(kind, self.name, at.agent_id, at.tenant, backend, details, error)
            )

    def __repr__(self) -> str:
        return f"<AgentSandbox {self._backend.name}:{self.name} {self.state}>"

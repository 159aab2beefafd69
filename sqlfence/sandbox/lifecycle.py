"""The life of a sandbox's namespace: made in an order a crash cannot break.

A sandbox is recorded in the registry before its server is placed and its namespace made,
and a failed create undoes what it made before it forgets the record, so whatever a crash
interrupts, ``reap()`` can finish.

Every step (created, connected, paused, snapshot, quota, destroyed ...) is one typed event,
``sqlfence.observe.events.SandboxEvent``, which the sandbox hands to its observer
(``Pipeline.record``): an event of the observer pipeline like any other, to the caller's
``on_event`` (``observe.parts.CallbackPart``, the event as a dict) and then the audit log's
``AuditPart`` (a ``sandbox.*`` line), given as an ``AuditLog`` or as settings. A failing
part is counted and logged, never raised into the sandbox. Sandboxes still alive at
interpreter exit are destroyed in the ``SANDBOXES`` stage of ``sqlfence.exits``, before the
audit log closes, so these events are still recorded.
"""

from __future__ import annotations

from dataclasses import replace

from sqlfence.errors import NothingMade
from sqlfence.observe.fanout import build_observer
from sqlfence.observe.observer import Observer
from sqlfence.observe.parts import CallbackPart, EventSink
from sqlfence.observe.settings import AuditOption
from sqlfence.policies.model import Policy
from sqlfence.sandbox.backends.base import Backend, Namespace, backend_for
from sqlfence.sandbox.credentials import CredentialsMissing
from sqlfence.sandbox.registry import Record, Registry
from sqlfence.sandbox.runtimes.base import Placement, PlacementRequest, Runtime, drop_namespace


def observer(audit: AuditOption, on_event: EventSink | None) -> Observer:
    """The observer of a sandbox's lifecycle: ``on_event`` and ``audit``'s log (the null
    observer when neither is given). Monitoring and telemetry are its connections'."""
    parts = [CallbackPart(on_event)] if on_event is not None else ()
    return build_observer(audit, monitoring=False, telemetry=False, parts=parts)


def make(
    runtime: Runtime,
    request: PlacementRequest,
    record: Record,
    registry: Registry,
    policy: Policy,
    observing: Observer,
) -> tuple[Namespace, Backend, Placement, Record]:
    """Record the sandbox, place it on a server, make its namespace there, record where.

    Raises what the runtime or the backend raised, after undoing what was made and closing
    ``observing`` (the sandbox's observer, opened first: a log that cannot open makes none).
    """
    try:
        return _make(runtime, request, record, registry, policy)
    except BaseException:
        observing.close()
        raise


def _make(
    runtime: Runtime, request: PlacementRequest, record: Record, registry: Registry, policy: Policy
) -> tuple[Namespace, Backend, Placement, Record]:
    registry.put(record)  # first, so a crash from here on is found by the reaper
    try:
        where = runtime.place(request)
    except BaseException:
        registry.remove(record.name)  # a server that half started carries labels for gc
        raise
    database: Backend | None = None
    try:
        database = backend_for(request.kind, request.root, where.admin_url, managed=where.managed)
        namespace = database.create(record.name, request.limits, policy, record.labels)
        record = replace(record, location=namespace.location)
        registry.put(record)
    except BaseException as error:
        _undo(where, database, registry, record.name, error)
        raise
    return namespace, database, where, record


def _undo(
    where: Placement, database: Backend | None, registry: Registry, name: str, error: BaseException
) -> None:
    """After a failed create: drop what it made, then forget the record. A drop that fails
    keeps the record, for gc to try again, unless the create never reached its server."""
    try:
        if database is not None and not isinstance(error, (NothingMade, CredentialsMissing)):
            drop_namespace(where, database, name, ())
        else:
            where.release()
    except Exception:
        return  # the namespace may exist: the record is how gc finds it
    finally:
        if database is not None:
            database.close()
    registry.remove(name)

"""The life of a sandbox's namespace: made in an order a crash cannot break, and an event
for each step.

A sandbox is recorded in the registry before its server is placed and its namespace made,
and a failed create undoes what it made before it forgets the record, so whatever a crash
interrupts, ``reap()`` can finish.

Every step (created, connected, paused, snapshot, quota, destroyed ...) is one typed event,
``sqlfence.observe.events.SandboxEvent``, handed by ``Lifecycle.send`` to the sandbox's
*parts*, each with the observer pipeline's small interface (``name``, ``handle``, ``flush``,
``close``; ``observe/steps.py``'s ``Part``): ``CallbackPart`` gives the caller's ``on_event``
the event as a dict (``SandboxEvent.as_dict()``), and ``AuditLogPart`` writes it to the
sandbox's ``AuditLog`` as a ``sandbox.*`` line (``SandboxEvent.audit_event()``). One loop, one
``try`` per part: a failing part is counted and logged, never raised into the sandbox.
Sandboxes still alive at interpreter exit are destroyed in the ``SANDBOXES`` stage of
``sqlfence.exits``, before the audit log closes, so these events are still recorded.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Any, Protocol

from sqlfence.errors import NothingMade
from sqlfence.observe.audit import AuditLog
from sqlfence.observe.events import SandboxEvent
from sqlfence.observe.settings import AuditOption
from sqlfence.policies.model import Policy
from sqlfence.sandbox.backends.base import Backend, Namespace, backend_for
from sqlfence.sandbox.credentials import CredentialsMissing
from sqlfence.sandbox.registry import Record, Registry
from sqlfence.sandbox.runtimes.base import Placement, PlacementRequest, Runtime, drop_namespace

logger = logging.getLogger("sqlfence.sandbox")

EventSink = Callable[[dict[str, Any]], None]
"""A caller's ``on_event``: called with each lifecycle event as a dict
(``SandboxEvent.as_dict()``: ``event``, ``at``, ``sandbox``, ``agent_id``, ``tenant``,
``backend``, the step's own fields)."""


class LifecyclePart(Protocol):
    """One destination of a sandbox's events: the pipeline's part interface, for
    ``SandboxEvent``."""

    name: str  # its key in the failure counts

    def handle(self, event: SandboxEvent) -> None:
        """Act on one event."""

    def flush(self, timeout: float | None = None) -> None:
        """Wait until what it was handed reached its destination."""

    def close(self) -> None:
        """The sandbox is done with it."""


class CallbackPart:
    """A caller's callable (``on_event``) as a part: called with each event as a dict, on
    the thread of the step."""

    def __init__(self, function: EventSink, name: str = "on_event") -> None:
        self.function = function
        self.name = name

    def handle(self, event: SandboxEvent) -> None:
        """Call the function with the event's dict."""
        self.function(event.as_dict())

    def flush(self, timeout: float | None = None) -> None:
        """Nothing held back."""

    def close(self) -> None:
        """Nothing to close: the callable is the caller's."""


class AuditLogPart:
    """The sandbox's ``AuditLog``: each event as its ``sandbox.*`` line (a fail-closed log
    that cannot take it raises AuditError, which the loop counts)."""

    name = "audit"

    def __init__(self, log: AuditLog) -> None:
        self.log = log

    def handle(self, event: SandboxEvent) -> None:
        """Queue the event's line."""
        self.log.submit(event.audit_event())

    def flush(self, timeout: float | None = None) -> None:
        """Wait until the lines queued so far are written."""
        self.log.flush(timeout)

    def close(self) -> None:
        """Nothing to do: the log is the caller's (or its connections'), closed by them."""


class Lifecycle:
    """Hands a sandbox's events to its parts, in order: one loop, one ``try`` per part."""

    def __init__(self, parts: tuple[LifecyclePart, ...] = ()) -> None:
        self.parts = parts
        self.failures = {part.name: 0 for part in parts}

    @classmethod
    def build(cls, audit: AuditOption, on_event: EventSink | None) -> Lifecycle:
        """The caller's ``on_event`` first, then ``audit`` when it is an ``AuditLog``."""
        parts: list[LifecyclePart] = []
        if on_event is not None:
            parts.append(CallbackPart(on_event))
        if isinstance(audit, AuditLog):
            parts.append(AuditLogPart(audit))
        return cls(tuple(parts))

    def send(self, event: SandboxEvent) -> None:
        """``event`` to every part; a failing part never breaks the sandbox."""
        for part in self.parts:
            try:
                part.handle(event)
            except Exception as error:
                count = self.failures[part.name] = self.failures.get(part.name, 0) + 1
                if count == 1 or count % 1000 == 0:
                    logger.error(
                        "sandbox %s: the %s part failed (%d times) on %s: %r",
                        event.sandbox, part.name, count, event.event_type, error,
                    )  # fmt: skip

    def close(self) -> None:
        """The sandbox is done: close every part."""
        for part in self.parts:
            try:
                part.close()
            except Exception:
                logger.exception("closing the %s part failed", part.name)

    def __bool__(self) -> bool:
        return bool(self.parts)


def make(
    runtime: Runtime, request: PlacementRequest, record: Record, registry: Registry, policy: Policy
) -> tuple[Namespace, Backend, Placement, Record]:
    """Record the sandbox, place it on a server, make its namespace there, record where.

    Raises what the runtime or the backend raised, after undoing what was made.
    """
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

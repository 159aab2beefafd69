"""The one hook object the guarded cursor calls; it fans out to audit, telemetry and monitor.

The proxy knows only this interface. ``Observer`` itself does nothing, so a connection with
nothing to record pays for a few empty method calls and no more.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlfence.observe.events import SandboxEvent
    from sqlfence.policies.engine import Decision

_connection_ids = itertools.count(1)


@dataclass(frozen=True)
class Session:
    """Who is connected to what: the correlation fields of every event of one connection."""

    system: str  # OpenTelemetry db.system.name: sqlite, postgresql, intersystems_iris
    agent_id: str | None = None
    tenant: str | None = None
    namespace: str | None = None  # db.namespace: database file, database name, IRIS namespace
    server_address: str | None = None
    server_port: int | None = None
    sandbox: str | None = None
    # What the login may do beyond SQL (superuser, pg_execute_server_program...): recorded.
    privileges: tuple[str, ...] = ()
    # The name a client gave for itself (MCP clientInfo): recorded, never trusted.
    client_name: str | None = None
    connection_id: int = field(default_factory=lambda: next(_connection_ids))


class Observer:
    """Receives every step of a connection's life. Subclasses override what they record.

    Hooks must not raise: an observer failure never breaks the host application's query.
    ``started`` returns a token that the cursor hands back to ``finished`` and ``fetched``.
    """

    def connected(self, session: Session) -> None:
        """A fence connection was opened."""

    def disconnected(self, session: Session) -> None:
        """A fence connection was closed (called once)."""

    def denied(self, session: Session, sql: str, decision: Decision) -> None:
        """The fence refused ``sql``; ``decision.reasons`` says why. Nothing reached the driver."""

    def started(self, session: Session, sql: str, decision: Decision, params: Any) -> object:
        """``decision.sql`` is about to go to the driver. Returns a token for ``finished``
        (whatever the observer likes; the cursor only hands it back)."""
        return None

    def finished(
        self, session: Session, token: object, rowcount: int, error: BaseException | None
    ) -> None:
        """The driver call returned (``error`` is None) or raised ``error``."""

    def fetched(self, session: Session, token: object, rows: int, truncated: bool) -> None:
        """The statement's result set is done: ``rows`` were returned to the caller."""

    def record(self, event: SandboxEvent) -> None:
        """A step of a sandbox's life (created, connected, destroyed ...). Must not raise."""

    def metrics(self, session: Session) -> dict[str, Any]:
        """Live metrics for ``get_metrics()``; empty when nothing is measured."""
        return {}

    def flush(self, timeout: float | None = None) -> None:
        """Wait until what was recorded so far reached its destinations."""

    def close(self) -> None:
        """Flush whatever is buffered. Called when the owner of the observer is done."""


NULL_OBSERVER = Observer()

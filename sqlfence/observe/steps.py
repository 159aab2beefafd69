"""What flows through the observer's pipeline (``pipeline.py``): the events, the token the
cursor hands back between hooks, and the interface of a part.

Statements are the hot events, so they are not wrapped: a ``StatementRecord`` (or, when no
part records statements, the connection's ``Counted``) goes through the loop at each of its
phases. A step of a sandbox's life is a ``SandboxEvent`` (``events.py``), handed in through
``Pipeline.record``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from sqlfence.observe.alerts import Alert
from sqlfence.observe.events import SandboxEvent
from sqlfence.observe.records import DenialRecord, StatementRecord

if TYPE_CHECKING:
    from sqlfence.observe.monitor import ConnectionStats
    from sqlfence.observe.observer import Session
    from sqlfence.policies.engine import Decision

# The phase of a statement (``StatementRecord.phase``, ``Counted.phase``).
STARTED, FINISHED, FETCHED = 1, 2, 3
PHASES = frozenset({STARTED, FINISHED, FETCHED})
# What happened to a connection (``ConnectionEvent.phase``). ATTACHED: a session the
# observer first sees in a statement (nothing recorded); REFUSED: the audit log refused it.
CONNECTED, ATTACHED, REFUSED, DISCONNECTED = 4, 5, 6, 7


class Link:
    """The pipeline's state for one open connection: the monitor's counters, and the token
    of its statements while no part records them."""

    __slots__ = ("counted", "session", "stats")

    def __init__(self, session: Session) -> None:
        self.session = session
        self.stats: ConnectionStats | None = None
        self.counted = Counted(self)


class ConnectionEvent:
    """A connection opened, first seen, refused or closed."""

    __slots__ = ("link", "phase")

    def __init__(self, phase: int, link: Link) -> None:
        self.phase = phase
        self.link = link


class Counted:
    """A statement when no part records statements: only counted (the monitor). The token
    of its hooks, like a ``StatementRecord`` but with only what counting needs.

    One per connection, reused by each of its statements: counting keeps nothing of a
    statement past its own hooks, and a connection runs one statement at a time (PEP 249
    threadsafety 1), so ``finished`` always reads the statement ``started`` filled in. A
    result fetched after the next statement started needs only the rows it is given.
    """

    __slots__ = (
        "decision",
        "duration",
        "error",
        "link",
        "phase",
        "rowcount",
        "rows",
        "sql",
        "t0",
        "truncated",
    )

    def __init__(self, link: Link) -> None:
        # Each field is set by the pipeline before the phase that reads it (STARTED: t0,
        # decision, sql; FINISHED: duration, error, rowcount; FETCHED: rows, truncated).
        self.link = link
        self.phase = STARTED
        self.t0: float
        self.decision: Decision
        self.sql: str
        self.duration: float
        self.error: BaseException | None
        self.rowcount: int
        self.rows: int
        self.truncated: bool


class Tick:
    """About once a second, from the pipeline's own clock: parts that look things up again
    now and then (telemetry, for an SDK configured later) do it now."""

    __slots__ = ("now",)

    def __init__(self, now: float) -> None:
        self.now = now


class Closing:
    """The pipeline closes: parts hand on what they hold back (spans waiting for rows)."""


CLOSING = Closing()

Event = (
    ConnectionEvent
    | StatementRecord
    | DenialRecord
    | Counted
    | Alert
    | Tick
    | Closing
    | SandboxEvent
)
EVENT_TYPES: tuple[type[Event], ...] = (
    ConnectionEvent,
    StatementRecord,
    DenialRecord,
    Counted,
    Alert,
    Tick,
    Closing,
    SandboxEvent,
)
Token = StatementRecord | Counted | None
"""What ``started`` returns and ``finished``/``fetched`` get back."""


class Part(Protocol):
    """One destination of the pipeline's events.

    ``handles`` and ``phases`` are read once, when the pipeline is built: each event goes
    only to the parts that act on it, so a part pays nothing for the others. ``records``
    is read again after each ``Tick``.
    """

    name: str  # its key in the failure counts
    handles: tuple[type[Event], ...]  # the kinds of event it acts on (the others skip it)
    phases: frozenset[int]  # the phases of a statement it acts on (STARTED, FINISHED...)
    records: bool  # statements reach it as StatementRecords now (else as Counted)

    def handle(self, event: Event) -> None:
        """Act on one event. Raises only ``AuditError`` (a fail-closed audit log)."""

    def flush(self, timeout: float | None = None) -> None:
        """Wait until what it was handed reached its destinations."""

    def close(self) -> None:
        """The pipeline is done with it."""

"""The observer's pipeline (sqlfence/observe/pipeline.py, parts.py, steps.py): one loop
hands every event to every part; a failing part is counted, a fail-closed refusal raised."""

from __future__ import annotations

from typing import Any

import pytest

from sqlfence.errors import AuditError
from sqlfence.observe.events import SandboxEvent
from sqlfence.observe.fanout import build_observer
from sqlfence.observe.monitor import Monitor
from sqlfence.observe.observer import NULL_OBSERVER, Observer, Session
from sqlfence.observe.parts import CallbackPart, ObserverPart
from sqlfence.observe.pipeline import Pipeline
from sqlfence.observe.records import StatementRecord
from sqlfence.observe.steps import EVENT_TYPES, PHASES, Counted, Event, Tick
from sqlfence.policies.engine import Decision
from tests.observe.conftest import DENIED, SELECT, execute, make_session


class _Recorder(Observer):
    """An application's observer that writes down every hook it is called with."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, object]] = []

    def connected(self, session: Session) -> None:
        self.calls.append(("connected", session.agent_id))

    def disconnected(self, session: Session) -> None:
        self.calls.append(("disconnected", session.agent_id))

    def denied(self, session: Session, sql: str, decision: Decision) -> None:
        self.calls.append(("denied", sql))

    def started(self, session: Session, sql: str, decision: Decision, params: Any) -> object:
        self.calls.append(("started", params))
        return "my-token"

    def finished(
        self, session: Session, token: object, rowcount: int, error: BaseException | None
    ) -> None:
        self.calls.append(("finished", token))

    def fetched(self, session: Session, token: object, rows: int, truncated: bool) -> None:
        self.calls.append(("fetched", rows))


class _Part:
    """A part that records what it handled, or fails with ``error`` (but on the clock's tick)."""

    records = True
    handles = EVENT_TYPES
    phases = PHASES

    def __init__(self, name: str, error: Exception | None = None) -> None:
        self.name = name
        self.error = error
        self.seen: list[Event] = []

    def handle(self, event: Event) -> None:
        self.seen.append(event)
        if self.error is not None and type(event) is not Tick:
            raise self.error

    def flush(self, timeout: float | None = None) -> None:
        """Nothing held."""

    def close(self) -> None:
        """Nothing to release."""


def test_a_callers_observer_is_a_part_with_its_own_token() -> None:
    """An Observer given as a part gets every hook, in order, and its own token back."""
    recorder = _Recorder()
    pipeline = Pipeline(parts=[ObserverPart(recorder)])
    session = make_session(agent_id="a1")
    pipeline.connected(session)
    execute(pipeline, session, SELECT, params=(7,), rows=3)
    execute(pipeline, session, DENIED)
    pipeline.disconnected(session)
    pipeline.close()
    assert recorder.calls == [
        ("connected", "a1"),
        ("started", (7,)),
        ("finished", "my-token"),
        ("fetched", 3),
        ("denied", DENIED.sql),
        ("disconnected", "a1"),
    ]


def test_a_failing_part_is_counted_and_the_next_still_gets_the_event() -> None:
    """One try per part: a part that raises is counted under its name, never raised, and
    the parts after it still see the event."""
    broken, after = _Part("broken", RuntimeError("down")), _Part("after")
    pipeline = Pipeline(parts=[broken, after])
    session = make_session()
    pipeline.connected(session)
    execute(pipeline, session, SELECT)
    pipeline.close()
    ticks = sum(type(event) is Tick for event in broken.seen)
    assert pipeline.failures["broken"] == len(broken.seen) - ticks
    assert len(broken.seen) == len(after.seen) >= 5
    assert pipeline.failures["observer"] == 0


def test_a_refusal_is_raised_once_every_part_saw_the_event() -> None:
    """A fail-closed AuditError from a part reaches the statement, after the other parts."""
    refusing, after = _Part("audit"), _Part("after")
    pipeline = Pipeline(parts=[refusing, after])
    session = make_session()
    pipeline.connected(session)
    refusing.error = AuditError("refused", cause="disk full")
    with pytest.raises(AuditError):
        pipeline.started(session, SELECT.sql, SELECT, None)
    assert type(after.seen[-1]) is StatementRecord
    pipeline.close()


def test_when_no_part_records_the_token_is_a_counted_tuple() -> None:
    """With only the monitor, a statement costs a tuple, and is still counted."""
    monitor = Monitor()
    pipeline = Pipeline(monitor=monitor)
    session = make_session()
    pipeline.connected(session)
    token = execute(pipeline, session, SELECT, rows=5)
    assert type(token) is Counted
    metrics = pipeline.metrics(session)
    assert (metrics["queries_executed"], metrics["rows_returned"]) == (1, 5)
    pipeline.close()
    monitor.close()


def _sandbox_event(kind: str = "created") -> SandboxEvent:
    return SandboxEvent(kind, "sb-1", "a1", "acme", "sqlite", {"location": "/x"})


def test_a_sandbox_event_goes_to_on_event_and_then_the_other_parts() -> None:
    """``record``: a SandboxEvent reaches the CallbackPart as its dict, and the parts after
    it as the event; statements never reach the CallbackPart."""
    got: list[dict[str, Any]] = []
    after = _Part("after")
    pipeline = Pipeline(parts=[CallbackPart(got.append), after])
    event = _sandbox_event()
    pipeline.record(event)
    session = make_session()
    pipeline.connected(session)
    execute(pipeline, session, SELECT)
    pipeline.close()
    assert got == [event.as_dict()]
    assert after.seen[0] is event


def test_recording_a_sandbox_event_never_raises(caplog: pytest.LogCaptureFixture) -> None:
    """A failing on_event, and a fail-closed audit refusal, are counted and logged, never
    raised into the sandbox; the parts after them still get the event."""

    def broken(event: dict[str, Any]) -> None:
        raise RuntimeError("cannot take it")

    refusing, after = _Part("audit", AuditError("refused", cause="disk full")), _Part("after")
    pipeline = Pipeline(parts=[CallbackPart(broken), refusing, after])
    pipeline.record(_sandbox_event())
    assert pipeline.failures["on_event"] == 1
    assert pipeline.failures["audit"] == 1
    assert type(after.seen[0]) is SandboxEvent
    refusing.error = None
    pipeline.close()
    assert "sandbox sb-1: the on_event part failed (1 times) on sandbox.created" in caplog.text


def test_parts_given_to_build_observer_make_a_pipeline() -> None:
    """With only a caller's part (no audit, monitor or telemetry) build_observer still
    builds a pipeline; without any, the null observer, which takes sandbox events too."""
    got: list[dict[str, Any]] = []
    observer = build_observer(
        None, monitoring=False, telemetry=False, parts=[CallbackPart(got.append)]
    )
    assert isinstance(observer, Pipeline)
    observer.record(_sandbox_event("destroyed"))
    observer.close()
    assert [event["event"] for event in got] == ["sandbox.destroyed"]
    assert build_observer(None, monitoring=False, telemetry=False) is NULL_OBSERVER
    NULL_OBSERVER.record(_sandbox_event())

"""The observer the cursor calls (sqlfence/observe/fanout.py): building it from connect()'s
arguments, recording each statement exactly once, and never failing a query."""

from __future__ import annotations

import shutil
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pydantic
import pytest

from sqlfence.errors import AuditError, AuditWarning, OperationalError
from sqlfence.observe.audit import AuditLog
from sqlfence.observe.events import plain_event
from sqlfence.observe.fanout import FanoutObserver, build_observer
from sqlfence.observe.filesink import FileSink, chain_files
from sqlfence.observe.monitor import Monitor
from sqlfence.observe.observer import NULL_OBSERVER, Session
from sqlfence.observe.settings import AuditSettings, MonitorSettings, TelemetrySettings
from sqlfence.observe.telemetry import Telemetry
from sqlfence.observe.verify import verify
from tests.observe.conftest import (
    CREATE,
    DENIED,
    DESIGN_REPORT_AUDIT_LOG,
    DETECTED,
    INSERT,
    SELECT,
    audit_events,
    execute,
    make_decision,
    make_session,
    with_rows,
)


def _statements(directory: Path) -> list[dict[str, Any]]:
    kinds = {"query", "denial", "error", "slow_query", "schema_change"}
    return [e for e in with_rows(audit_events(directory)) if e["event_type"] in kinds]


# -- building ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "audit",
    [True, "DIR", Path("DIR"), {"directory": "DIR", "retention_days": 90}, "SETTINGS"],
    ids=["true", "str", "path", "dict", "settings"],
)
def test_every_form_of_audit_argument_is_accepted(
    audit: Any, audit_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """audit= takes True, a directory (str or Path), a dict or AuditSettings."""
    monkeypatch.chdir(audit_dir.parent)
    if audit == "DIR":
        audit = str(audit_dir)
    elif audit == Path("DIR"):
        audit = audit_dir
    elif isinstance(audit, dict):
        audit = {**audit, "directory": str(audit_dir)}
    elif audit == "SETTINGS":
        audit = AuditSettings(directory=audit_dir)
    observer = build_observer(audit=audit)
    assert isinstance(observer, FanoutObserver)
    assert observer.audit is not None
    execute(observer, make_session())
    observer.close()
    root = audit_dir if audit is not True else audit_dir.parent / ".sqlfence" / "audit"
    assert verify(root).ok


def test_everything_off_is_the_null_observer() -> None:
    """With audit, monitoring and telemetry all off the cursor gets the no-op observer."""
    assert build_observer(audit=None, monitoring=False, telemetry=False) is NULL_OBSERVER
    assert (
        build_observer(
            audit={"enabled": False}, monitoring={"enabled": False}, telemetry={"enabled": False}
        )
        is NULL_OBSERVER
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"audit": {"retention_day": 9}}, "retention_day"),
        ({"monitoring": {"alert_on_slow_query": 5}}, "alert_on_slow_query"),
        ({"telemetry": {"span": False}}, "span"),
        ({"monitoring": {"webhook": "ftp://x"}}, "webhook"),
    ],
)
def test_unknown_or_invalid_keys_are_errors(kwargs: dict[str, Any], message: str) -> None:
    """A misspelt or invalid setting raises instead of being ignored."""
    with pytest.raises(pydantic.ValidationError, match=message):
        build_observer(**kwargs)


def test_design_report_keywords_are_accepted(audit_dir: Path) -> None:
    """The design report's monitoring and audit_log keys work as given there."""
    observer = build_observer(
        audit={**DESIGN_REPORT_AUDIT_LOG, "directory": str(audit_dir)},
        monitoring={
            "enabled": True,
            "alert_on_slow_query_ms": 1000,
            "alert_on_cpu_percent": 80,
            "log_all_queries": True,
        },
    )
    assert isinstance(observer, FanoutObserver)
    observer.close()


def test_connections_with_equal_settings_share_parts(audit_dir: Path) -> None:
    """Equal settings share one log and one monitor, so agent metrics span connections."""
    first = build_observer(audit=audit_dir, monitoring={"slow_query_ms": 5})
    second = build_observer(audit=str(audit_dir), monitoring=MonitorSettings(slow_query_ms=5))
    assert isinstance(first, FanoutObserver)
    assert isinstance(second, FanoutObserver)
    assert first.audit is second.audit
    assert first.monitor is second.monitor
    one, two = make_session(), make_session()
    first.connected(one)
    second.connected(two)
    execute(first, one)
    execute(second, two)
    assert first.metrics(one)["agent"]["queries_executed"] == 2
    first.close()
    assert second.audit is not None
    assert not second.audit.closed
    second.close()
    assert second.audit.closed


def test_given_parts_are_used_as_they_are(audit_dir: Path) -> None:
    """An AuditLog or Monitor passed in is used, and not closed by the observer."""
    log = AuditLog(AuditSettings(directory=audit_dir))
    monitor = Monitor(MonitorSettings())
    observer = build_observer(audit=log, monitoring=monitor, telemetry=False)
    assert isinstance(observer, FanoutObserver)
    assert observer.audit is log
    assert observer.monitor is monitor
    observer.close()
    assert not log.closed
    log.close()


# -- what is recorded -------------------------------------------------------------------


@pytest.fixture
def observer(audit_dir: Path) -> Any:
    """An observer auditing to ``audit_dir`` with the default monitor, no telemetry."""
    built = build_observer(audit=audit_dir, telemetry=False)
    yield built
    built.close()


def test_a_read_is_recorded_once_with_its_rows(observer: Any, audit_dir: Path) -> None:
    """A SELECT's rows_returned and truncated from fetched() are recorded once, in its event
    or in the fetch event that follows it."""
    session = make_session()
    observer.connected(session)
    execute(observer, session, SELECT, rows=7, truncated=True)
    observer.disconnected(session)
    observer.close()
    (event,) = _statements(audit_dir)
    assert event["event_type"] == "query"
    assert (event["rows_returned"], event["truncated"]) == (7, True)
    assert [e["event_type"] for e in with_rows(audit_events(audit_dir))] == [
        "audit.open",
        "connect",
        "query",
        "disconnect",
        "audit.close",
    ]


def test_a_write_is_recorded_at_once_and_its_rows_follow(observer: Any, audit_dir: Path) -> None:
    """A write is recorded when the driver returns; rows it returned come as a fetch event."""
    session = make_session()
    token = observer.started(session, INSERT.sql, INSERT, (1,))
    observer.finished(session, token, 1, None)
    observer.audit.flush()
    assert [e["event_type"] for e in _statements(audit_dir)] == ["query"]
    observer.fetched(session, token, 2, False)
    observer.close()
    events = audit_events(audit_dir)
    write = next(e for e in events if e["event_type"] == "query")
    fetch = next(e for e in events if e["event_type"] == "fetch")
    assert write["rows_affected"] == 1
    assert fetch["rows_returned"] == 2
    assert fetch["query_id"] == write["query_id"]


@pytest.mark.parametrize("then", ["next statement", "denial", "disconnect", "close"])
def test_an_unfinished_result_is_recorded_when_the_connection_moves_on(
    then: str, observer: Any, audit_dir: Path
) -> None:
    """A result never fetched to the end is still recorded, once, without rows."""
    session = make_session()
    observer.connected(session)
    token = observer.started(session, "SELECT 1", SELECT, None)
    observer.finished(session, token, -1, None)
    if then == "next statement":
        execute(observer, session, INSERT, rows=None)
    elif then == "denial":
        execute(observer, session, DENIED)
    elif then == "disconnect":
        observer.disconnected(session)
    observer.close()
    first = _statements(audit_dir)[0]
    assert first["query"] == "SELECT 1"
    assert "rows_returned" not in first
    assert sum(e.get("query") == "SELECT 1" for e in audit_events(audit_dir)) == 1
    observer.fetched(session, token, 5, False)  # too late: a follow-up, never a duplicate
    late = [e for e in audit_events(audit_dir) if e.get("query") == "SELECT 1"]
    assert [e["event_type"] for e in late].count("query") == 1, late


def test_statement_kinds_and_statuses(observer: Any, audit_dir: Path) -> None:
    """DDL, errors, denials and detections get their event types and statuses."""
    session = make_session()
    execute(observer, session, CREATE, rows=None)
    execute(observer, session, SELECT, error=RuntimeError("no such table: orders"))
    execute(observer, session, DENIED)
    execute(observer, session, DETECTED)
    observer.close()
    kinds = [(e["event_type"], e["status"]) for e in _statements(audit_dir)]
    assert kinds == [
        ("schema_change", "ok"),
        ("error", "error"),
        ("denial", "denied"),
        ("query", "detected"),
    ]
    error, denial, detected = _statements(audit_dir)[1:]
    assert error["error"] == "RuntimeError: no such table: orders"
    assert denial["rule"] == "deny_tables"
    assert "deny list" in denial["error"]
    assert detected["rule"] == "deny_tables"


def test_a_slow_query_is_its_own_event_type(audit_dir: Path) -> None:
    """A statement over the slow threshold is recorded as slow_query."""
    observer = build_observer(
        audit=audit_dir, monitoring={"slow_query_ms": 0.000001}, telemetry=False
    )
    execute(observer, make_session())
    observer.close()
    assert [e["event_type"] for e in _statements(audit_dir)] == ["slow_query"]


class _BrokenAudit(AuditLog):
    """An audit log whose queue always fails."""

    def submit(self, record: Any, **options: Any) -> None:
        raise OSError("disk on fire")


class _BrokenMonitor(Monitor):
    """A monitor that fails at everything."""

    def attach(self, session: Session) -> Any:
        raise RuntimeError("monitor down")


class _BrokenTelemetry(Telemetry):
    """Telemetry that believes an SDK is there and fails at everything."""

    def capture(self, now: float) -> Any:
        raise RuntimeError("telemetry down")

    def submit(self, record: Any) -> None:
        raise RuntimeError("telemetry down")


def test_a_failing_part_is_counted_and_never_raises(audit_dir: Path) -> None:
    """A broken audit log, monitor or telemetry never breaks a statement; it is counted."""
    audit = _BrokenAudit(AuditSettings(directory=audit_dir))
    telemetry = _BrokenTelemetry(TelemetrySettings(background=False))
    telemetry.active = True
    observer = FanoutObserver(audit=audit, monitor=_BrokenMonitor(), telemetry=telemetry)
    session = make_session()
    observer.connected(session)
    for decision in (SELECT, INSERT, DENIED):
        execute(observer, session, decision)
    execute(observer, session, SELECT, error=ValueError("x"))
    observer.disconnected(session)
    observer.close()
    audit.close()
    failures = observer.failures
    assert failures["audit"] >= 5
    assert failures["monitor"] >= 1
    assert failures["telemetry"] >= 5
    assert observer.metrics(session)["observer"]["failures"] == failures
    assert failures["observer"] == 0


def test_metrics_of_a_connection(audit_dir: Path) -> None:
    """metrics() has the design report's keys for the connection, its agent, and health."""
    observer = build_observer(audit=audit_dir, telemetry=False)
    session = make_session()
    observer.connected(session)
    for _ in range(3):
        execute(observer, session, SELECT, rows=4)
    execute(observer, session, INSERT, rowcount=2, rows=None)
    execute(observer, session, DENIED)
    execute(observer, session, SELECT, error=ValueError("x"))
    metrics = observer.metrics(session)
    observer.close()
    assert metrics["queries_executed"] == 5
    assert metrics["denied"] == 1
    assert metrics["errors"] == 1
    assert metrics["rows_returned"] == 12
    assert metrics["rows_affected"] == 2
    for key in ("slow_queries", "avg_query_time_ms", "p50_ms", "p95_ms", "p99_ms"):
        assert key in metrics
    assert metrics["agent"]["queries_executed"] == 5
    assert metrics["observer"]["failures"] == {
        "audit": 0,
        "monitor": 0,
        "telemetry": 0,
        "observer": 0,
    }


# -- acceptance: many threads, every event exactly once ---------------------------------

THREADS = 8
PER_THREAD = 10_000


def _agent_workload(number: int, audit: AuditSettings, errors: list[BaseException]) -> None:
    """What one connection does: allowed, denied and failing statements mixed."""
    try:
        observer = build_observer(audit=audit, telemetry=False)
        session = make_session(agent_id=f"agent-{number}")
        observer.connected(session)
        for i in range(PER_THREAD):
            marker = f"{number}:{i}"
            if i % 10 == 0:
                denied = make_decision(
                    allowed=False,
                    sql=f"SELECT * FROM secrets /*{marker}*/",
                    facts=DENIED.facts,
                    reasons=DENIED.reasons,
                )
                observer.denied(session, denied.sql, denied)
            elif i % 10 == 1:
                execute(
                    observer,
                    session,
                    SELECT,
                    sql=f"SELECT /*{marker}*/ boom",
                    error=RuntimeError("boom"),
                )
            elif i % 3 == 0:
                execute(
                    observer, session, INSERT, sql=f"INSERT /*{marker}*/", rowcount=1, rows=None
                )
            else:
                execute(observer, session, SELECT, sql=f"SELECT /*{marker}*/ 1", rows=i % 5)
        observer.disconnected(session)
        observer.close()
    except BaseException as error:  # reported by the test thread
        errors.append(error)


def _markers(events: list[dict[str, Any]]) -> list[str]:
    return [
        e["query"].split("/*", 1)[1].split("*/", 1)[0]
        for e in events
        if e["event_type"] in ("query", "denial", "error") and e.get("query")
    ]


@pytest.fixture(scope="module")
def busy_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The audit directory after 8 threads ran 10,000 statements each, then closed."""
    directory = tmp_path_factory.mktemp("busy") / "audit"
    errors: list[BaseException] = []
    settings = AuditSettings(
        directory=directory, key="busy-key-of-the-audit-chain", max_file_bytes=4_000_000
    )
    threads = [
        threading.Thread(target=_agent_workload, args=(n, settings, errors)) for n in range(THREADS)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    return directory


def test_every_statement_of_eight_threads_is_logged_exactly_once(busy_log: Path) -> None:
    """80,000 mixed statements from 8 threads: each logged once, seq gap-free, chain verified."""
    events = audit_events(busy_log)
    markers = _markers(events)
    assert len(markers) == THREADS * PER_THREAD
    assert set(markers) == {f"{n}:{i}" for n in range(THREADS) for i in range(PER_THREAD)}
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert sum(e["event_type"] == "denial" for e in events) == THREADS * PER_THREAD // 10
    assert sum(e["event_type"] == "error" for e in events) == THREADS * PER_THREAD // 10
    assert len(chain_files(busy_log, "audit")) > 1
    result = verify(busy_log, key="busy-key-of-the-audit-chain")
    assert result.ok, result
    assert result.events_checked == len(events)


@pytest.mark.parametrize("tampering", ["change a byte", "delete a line", "swap two lines"])
def test_tampering_with_the_busy_log_fails_at_that_line(
    tampering: str, busy_log: Path, tmp_path: Path
) -> None:
    """A changed byte, deleted line or swapped pair in the busy log fails verify at that line."""
    copy = tmp_path / "copy"
    shutil.copytree(busy_log, copy)
    path = chain_files(copy, "audit")[1]
    lines = path.read_bytes().splitlines(keepends=True)
    at = len(lines) // 2
    if tampering == "change a byte":
        lines[at] = (
            lines[at]
            .replace(b'"status":"ok"', b'"status":"OK"', 1)
            .replace(b'"status":"denied"', b'"status":"allowed"', 1)
            .replace(b'"status":"error"', b'"status":"erro_"', 1)
        )
        expected = "altered"
    elif tampering == "delete a line":
        del lines[at]
        expected = "missing"
    else:
        lines[at], lines[at + 1] = lines[at + 1], lines[at]
        expected = "reordered"
    path.write_bytes(b"".join(lines))
    result = verify(copy, key="busy-key-of-the-audit-chain")
    assert result.first_error is not None
    assert (result.first_error.kind, result.first_error.file, result.first_error.line) == (
        expected,
        path,
        at + 1,
    )


def test_sessions_given_the_observer_directly(audit_dir: Path) -> None:
    """One observer shared by several sessions keeps their pending results apart."""
    observer = build_observer(audit=audit_dir, telemetry=False)
    sessions: list[Session] = [make_session(agent_id=f"a{n}") for n in range(3)]
    tokens = [observer.started(s, f"SELECT {n}", SELECT, None) for n, s in enumerate(sessions)]
    for session, token in zip(sessions, tokens, strict=True):
        observer.finished(session, token, -1, None)
    for n, (session, token) in enumerate(zip(sessions, tokens, strict=True)):
        observer.fetched(session, token, n, False)
    observer.close()
    rows = {e["query"]: e["rows_returned"] for e in _statements(audit_dir)}
    assert rows == {"SELECT 0": 0, "SELECT 1": 1, "SELECT 2": 2}


def test_telemetry_settings_are_shared_per_value() -> None:
    """Observers with equal telemetry settings share one Telemetry (one worker thread)."""
    first = build_observer(monitoring=False, telemetry=TelemetrySettings(query_text="masked"))
    second = build_observer(monitoring=False, telemetry={"query_text": "masked"})
    assert isinstance(first, FanoutObserver)
    assert isinstance(second, FanoutObserver)
    assert first.telemetry is second.telemetry
    first.close()
    second.close()


def test_even_a_bad_call_never_raises(audit_dir: Path) -> None:
    """Hooks called with nonsense (a bug in the caller) count a failure and return."""
    observer = build_observer(audit=audit_dir, telemetry=False)
    assert isinstance(observer, FanoutObserver)
    token = observer.started(None, "SELECT 1", SELECT, None)  # type: ignore[arg-type]
    observer.finished(None, token, -1, None)  # type: ignore[arg-type]
    observer.denied(None, "x", DENIED)  # type: ignore[arg-type]
    observer.fetched(make_session(), object(), 1, False)
    observer.close()
    assert token is None
    assert observer.failures["observer"] == 2


# -- when the audit log cannot write ------------------------------------------------------


def _disk_refuses(monkeypatch: pytest.MonkeyPatch) -> dict[str, bool]:
    """FileSink.write raises ENOSPC while the returned switch says ``full``."""
    real = FileSink.write
    switch = {"full": False}

    def write(self: FileSink, lines: list[bytes]) -> bool:
        if switch["full"]:
            raise OSError(28, "No space left on device")
        return real(self, lines)

    monkeypatch.setattr(FileSink, "write", write)
    return switch


def _until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 30  # a hang detector, not a timing assertion
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_statements_fail_closed_while_the_audit_log_cannot_write(
    audit_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """By default, once the disk refuses writes a statement raises AuditError (an
    OperationalError) before it runs, naming the cause; when the disk recovers statements
    run again and the log verifies."""
    disk = _disk_refuses(monkeypatch)
    observer = build_observer(audit=audit_dir, telemetry=False)
    assert isinstance(observer, FanoutObserver)
    audit = observer.audit
    assert audit is not None
    session = make_session()
    observer.connected(session)
    execute(observer, session, SELECT)
    disk["full"] = True
    audit.submit(plain_event("sandbox.step"), acknowledge=False)  # finds it full
    _until(lambda: audit.failure is not None)
    with pytest.raises(OperationalError, match="No space left on device") as raised:
        observer.started(session, SELECT.sql, SELECT, (1,))
    assert isinstance(raised.value, AuditError)
    assert not raised.value.ran
    with pytest.raises(AuditError):
        observer.denied(session, DENIED.sql, DENIED)
    with pytest.raises(AuditError):
        observer.connected(make_session(agent_id="late"))
    disk["full"] = False
    _until(lambda: audit.failure is None)
    execute(observer, session, SELECT)
    observer.disconnected(session)
    observer.close()
    kinds = [e["event_type"] for e in audit_events(audit_dir)]
    assert kinds.count("query") == 2
    assert kinds.count("denial") == 1  # refused, yet kept: written once the disk recovered
    assert verify(audit_dir).ok


def test_continue_lets_statements_run_counts_and_warns(
    audit_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With on_audit_failure=continue statements run while the disk refuses writes; each
    event not on disk is counted and one AuditWarning says so."""
    disk = _disk_refuses(monkeypatch)
    settings = AuditSettings(directory=audit_dir, on_audit_failure="continue")
    observer = build_observer(audit=settings, telemetry=False)
    assert isinstance(observer, FanoutObserver)
    audit = observer.audit
    assert audit is not None
    session = make_session()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        disk["full"] = True
        audit.submit(plain_event("sandbox.step"), acknowledge=False)
        _until(lambda: audit.failure is not None)
        for _ in range(3):
            execute(observer, session, SELECT)
    (warning,) = [w for w in caught if w.category is AuditWarning]  # once per failure
    assert "not recording events" in str(warning.message)
    assert audit.stats()["unaudited"] == 3
    disk["full"] = False
    _until(lambda: audit.failure is None)
    observer.close()
    assert [e["event_type"] for e in audit_events(audit_dir)].count("query") == 3
    assert verify(audit_dir).ok

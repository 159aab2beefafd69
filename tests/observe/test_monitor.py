"""Live metrics and alert rules (sqlfence/observe/monitor.py)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from sqlfence.observe.alerts import Alert
from sqlfence.observe.fanout import build_observer
from sqlfence.observe.filesink import chain_files
from sqlfence.observe.monitor import Monitor
from sqlfence.observe.settings import MonitorSettings
from tests.observe.conftest import DENIED, INSERT, SELECT, execute, make_session


def _monitor(**settings: Any) -> tuple[Monitor, list[Alert]]:
    alerts: list[Alert] = []
    monitor = Monitor(MonitorSettings(callbacks=(alerts.append,), **settings))
    return monitor, alerts


def test_connection_metrics_have_the_design_report_keys() -> None:
    """A connection's metrics count statements, denials, errors, slow ones, rows, latency."""
    monitor, _ = _monitor(slow_query_ms=50)
    session = make_session()
    stats = monitor.attach(session)
    monitor.statement(stats, 0.010, None, SELECT, SELECT.sql)
    monitor.statement(stats, 0.100, None, SELECT, SELECT.sql)
    monitor.statement(stats, 0.020, None, INSERT, INSERT.sql, rowcount=3)
    monitor.statement(stats, 0.030, ValueError("x"), SELECT, SELECT.sql)
    monitor.denial(stats, DENIED, DENIED.sql)
    monitor.fetched(stats, 40, True)
    metrics = monitor.metrics(stats)
    assert metrics["queries_executed"] == 4
    assert metrics["slow_queries"] == 1
    assert metrics["denied"] == 1
    assert metrics["errors"] == 1
    assert metrics["rows_returned"] == 40
    assert metrics["rows_affected"] == 3
    assert metrics["truncated_results"] == 1
    assert metrics["avg_query_time_ms"] == pytest.approx(40.0)
    assert metrics["p99_ms"] == pytest.approx(100.0, rel=0.05)
    monitor.close()


def test_agent_and_sandbox_metrics_span_connections_open_and_closed() -> None:
    """An agent's metrics add up all its connections, including closed ones."""
    monitor, _ = _monitor()
    first = monitor.attach(make_session(sandbox="sb-1"))
    second = monitor.attach(make_session(sandbox="sb-1"))
    other = monitor.attach(make_session(agent_id="agent-2"))
    for stats in (first, second, second, other):
        monitor.statement(stats, 0.001, None, SELECT, SELECT.sql)
    monitor.detach(first)
    assert monitor.agent_metrics("agent-1")["queries_executed"] == 3
    assert monitor.sandbox_metrics("sb-1")["queries_executed"] == 3
    assert monitor.agent_metrics("agent-2")["queries_executed"] == 1
    assert monitor.agent_metrics("nobody")["queries_executed"] == 0
    monitor.close()


def test_a_slow_query_alerts_once_per_cooldown() -> None:
    """Over alert_on_slow_query_ms an alert goes to the callbacks, then the cooldown holds."""
    monitor, alerts = _monitor(alert_on_slow_query_ms=5, alert_cooldown_s=3600)
    stats = monitor.attach(make_session())
    recorded: list[Alert] = []
    assert (
        monitor.statement(stats, 0.004, None, SELECT, SELECT.sql, notify=recorded.append) is False
    )
    assert monitor.statement(
        stats, 0.050, None, SELECT, "SELECT * FROM t WHERE pin = '1234'", notify=recorded.append
    )
    monitor.statement(stats, 0.060, None, SELECT, SELECT.sql, notify=recorded.append)
    monitor.flush()
    (alert,) = alerts
    assert recorded == alerts
    assert alert.kind == "slow_query"
    assert alert.value == pytest.approx(50.0)
    assert alert.threshold == 5
    assert alert.agent_id == "agent-1"
    assert alert.details["query"] == "SELECT * FROM t WHERE pin = ?"
    assert monitor.metrics(stats)["slow_queries"] == 2
    monitor.close()


def test_a_burst_of_denials_alerts() -> None:
    """alert_on_denials denials by one agent within denial_window_s raise one alert."""
    monitor, alerts = _monitor(alert_on_denials=3, denial_window_s=60)
    first = monitor.attach(make_session())
    second = monitor.attach(make_session())
    monitor.denial(first, DENIED, DENIED.sql)
    monitor.denial(second, DENIED, DENIED.sql)
    monitor.flush()
    assert alerts == []
    monitor.denial(first, DENIED, DENIED.sql)
    monitor.denial(first, DENIED, DENIED.sql)
    monitor.flush()
    (alert,) = alerts
    assert alert.kind == "denial_burst"
    assert alert.value == 3
    assert alert.details["rule"] == "deny_tables"
    # The message says why the last one was denied, as a person reads it.
    assert alert.message.endswith(
        "the last: table main.secrets is on the deny list (deny_tables)"
    ), alert.message
    monitor.close()


def test_a_high_error_rate_alerts() -> None:
    """When the share of failed statements among the last N reaches the rate, it alerts."""
    monitor, alerts = _monitor(alert_on_error_rate=0.5, error_rate_window=4)
    stats = monitor.attach(make_session())
    for failed in (True, False, False, False, True, False, True):
        monitor.statement(stats, 0.001, ValueError() if failed else None, SELECT, SELECT.sql)
        monitor.flush()
        if len(alerts):
            break
    assert [a.kind for a in alerts] == ["error_rate"]
    assert alerts[0].value == 0.5
    monitor.close()


def test_resource_readings_alert_and_show_in_metrics() -> None:
    """report_resource stores the reading for the sandbox and alerts over its threshold."""
    monitor, alerts = _monitor(alert_on_cpu_percent=80, alert_on_memory_mb=512)
    session = make_session(sandbox="sb-9")
    stats = monitor.attach(session)
    monitor.report_resource("cpu_percent", 23, session=session)
    monitor.report_resource("memory_mb", 128, sandbox="sb-9")
    monitor.flush()
    assert alerts == []
    monitor.report_resource("cpu_percent", 97.5, session=session)
    monitor.flush()
    (alert,) = alerts
    assert (alert.kind, alert.value, alert.threshold, alert.sandbox) == (
        "resource",
        97.5,
        80,
        "sb-9",
    )
    assert alert.severity == "critical"
    metrics = monitor.metrics(stats)
    assert metrics["cpu_percent"] == 97.5
    assert metrics["memory_used_mb"] == 128
    assert monitor.sandbox_metrics("sb-9")["memory_used_mb"] == 128
    with pytest.raises(ValueError, match="unknown resource"):
        monitor.report_resource("gpu", 1)
    monitor.close()


def test_log_all_queries_writes_the_query_log(caplog: pytest.LogCaptureFixture) -> None:
    """log_all_queries logs one line per statement on sqlfence.queries, off the query path."""
    monitor, _ = _monitor(log_all_queries=True)
    stats = monitor.attach(make_session())
    with caplog.at_level(logging.INFO, logger="sqlfence.queries"):
        monitor.statement(stats, 0.0015, None, SELECT, SELECT.sql)
        monitor.flush()
    (record,) = [r for r in caplog.records if r.name == "sqlfence.queries"]
    assert "agent=agent-1" in record.getMessage()
    assert "SELECT orders" in record.getMessage()
    monitor.close()


def test_a_failing_callback_is_counted(caplog: pytest.LogCaptureFixture) -> None:
    """A callback that raises is logged and counted; the next callbacks still run."""
    received: list[Alert] = []

    def broken(alert: Alert) -> None:
        raise RuntimeError("pager down")

    monitor = Monitor(
        MonitorSettings(callbacks=(broken, received.append), alert_on_slow_query_ms=1)
    )
    stats = monitor.attach(make_session())
    monitor.statement(stats, 0.5, None, SELECT, SELECT.sql)
    monitor.flush()
    assert len(received) == 1
    assert monitor.dispatcher.failures == 1
    monitor.close()


def test_alerts_are_recorded_in_the_audit_log(audit_dir: Path) -> None:
    """An alert raised by a statement is also an audit event."""
    observer = build_observer(audit=audit_dir, monitoring={"alert_on_denials": 2}, telemetry=False)
    session = make_session()
    execute(observer, session, DENIED)
    execute(observer, session, DENIED)
    observer.close()
    (path,) = chain_files(audit_dir, "audit")
    alerts = [
        e for e in map(json.loads, path.read_text().splitlines()) if e["event_type"] == "alert"
    ]
    assert [(a["status"], a["details"]["kind"]) for a in alerts] == [("warning", "denial_burst")]

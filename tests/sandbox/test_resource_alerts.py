"""Resource readings of a sandbox feed the monitor's alert rules."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from sqlfence.observe.alerts import Alert
from sqlfence.observe.monitor import Monitor
from sqlfence.observe.settings import MonitorSettings
from sqlfence.sandbox import AgentSandbox


def test_disk_reading_raises_an_alert(root: Path) -> None:
    """get_metrics() reports the namespace size; over alert_on_disk_mb an alert is delivered."""
    alerts: list[Alert] = []
    monitoring = {"alert_on_disk_mb": 0.001, "callbacks": [alerts.append]}
    with AgentSandbox.create(
        agent_id="big", root=root, monitoring=monitoring, access_policy={"read_only": False}
    ) as sb:
        conn = sb.get_connection()
        conn.execute("CREATE TABLE t (a TEXT)")
        conn.execute("INSERT INTO t VALUES (?)", ("x" * 10_000,))
        conn.commit()
        sb.get_metrics()
        deadline = time.monotonic() + 5  # alerts are delivered on a background thread
        while not alerts and time.monotonic() < deadline:
            time.sleep(0.01)
        conn.close()
    assert alerts
    assert alerts[0].sandbox == sb.name
    assert "disk" in alerts[0].message


@pytest.mark.parametrize("form", ["dict", "settings", "monitor"])
def test_resource_alerts_fire_without_polling(root: Path, form: str) -> None:
    """With a resource alert rule, a timer reports readings: no get_metrics() call needed,
    however the monitoring is given (keys, MonitorSettings or a Monitor)."""
    alerts: list[Alert] = []
    keys = {"alert_on_disk_mb": 0.001, "callbacks": [alerts.append]}
    monitoring: Any = keys
    if form != "dict":
        monitoring = MonitorSettings(**keys)
    if form == "monitor":
        monitoring = Monitor(monitoring)
    with AgentSandbox.create(
        agent_id="timed",
        root=root,
        monitoring=monitoring,
        access_policy={"read_only": False},
        limits={"quota_check_interval_s": 0.05},
    ) as sb:
        conn = sb.get_connection()
        conn.execute("CREATE TABLE t (a TEXT)")
        conn.execute("INSERT INTO t VALUES (?)", ("x" * 10_000,))
        conn.commit()
        deadline = time.monotonic() + 5
        while not alerts and time.monotonic() < deadline:
            time.sleep(0.01)
        conn.close()
    assert alerts
    assert alerts[0].sandbox == sb.name

"""``make demo``: an agent's session in its own sandbox, on embedded SQLite, no server needed.

A golden snapshot is made from the sample data shipped beside this module; the agent's
sandbox starts from it; a scripted session shows what the fence allows, limits and denies,
a slow query raises an alert, a mistake is rolled back with a snapshot; then the live
metrics, the audit trail and its verification are printed and the sandbox is destroyed.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlfence
from sqlfence.observe import AuditLog, AuditSettings, query_events, verify
from sqlfence.observe.alerts import Alert
from sqlfence.sandbox import AgentSandbox, listing

SEED = Path(__file__).with_name("demo_shop.sql")
GOLDEN = "shop-v1"
ACCESS_POLICY = {
    "read_only": False,
    "deny_tables": ["secrets"],
    "denied_columns": ["customers.email"],
    "max_row_limit": 5,
}
SLOW_QUERY = (
    "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 1000000) "
    "SELECT count(*) FROM n"
)
# (what the agent is doing, the SQL it sends)
SESSION = [
    ("an ordinary question", "SELECT name, country FROM customers WHERE country = 'FR'"),
    (
        "an aggregate",
        "SELECT country, count(*) AS n FROM customers GROUP BY country ORDER BY n DESC",
    ),
    ("a scan that is row-limited", "SELECT id, total FROM orders"),
    ("a read of the secrets table", "SELECT * FROM secrets"),
    ("secrets hidden in a CTE", "WITH s AS (SELECT token FROM secrets) SELECT * FROM s"),
    ("a denied column through *", "SELECT * FROM customers"),
    ("a write to the secrets table", "UPDATE secrets SET token = 'mine'"),
    ("attaching another database", "ATTACH DATABASE 'elsewhere.db' AS other"),
    ("two statements at once", "SELECT 1; DROP TABLE orders"),
    ("reading a file", "SELECT readfile('/etc/passwd')"),
    ("listing the catalog", "SELECT name FROM sqlite_master"),
    ("a slow query", SLOW_QUERY),
]
MISTAKE = "DELETE FROM orders WHERE total > 0"
METRICS = (
    "queries_executed",
    "denied",
    "errors",
    "slow_queries",
    "rows_returned",
    "avg_query_time_ms",
    "p95_ms",
)


def run(out: Callable[[str], None] = print, audit_dir: Path | None = None) -> int:
    """Play the session; 0 when everything went as expected (the exit code of ``make demo``).

    ``audit_dir`` keeps the audit log there (for ``sqlfence policy learn``); by default it
    lives and dies with the demo's temporary directory.
    """
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="sqlfence-demo-") as directory:
        root = Path(directory) / ".sqlfence"
        audit = audit_dir if audit_dir is not None else Path(directory) / "audit"
        _make_golden(root)
        alerts: list[Alert] = []
        out("sqlfence demo: agent 'analyst' of tenant 'acme' in its own SQLite sandbox\n")
        log = AuditLog(AuditSettings(directory=audit))
        with (
            log,
            AgentSandbox.create(
                agent_id="analyst",
                tenant="acme",
                backend="sqlite",
                root=root,
                access_policy=ACCESS_POLICY,
                monitoring={"alert_on_slow_query_ms": 50, "callbacks": [alerts.append]},
                audit=log,
                load_snapshot=GOLDEN,
            ) as sandbox,
        ):
            out(f"sandbox {sandbox.name} loaded from golden snapshot '{GOLDEN}'\n")
            conn = sandbox.get_connection()
            for title, sql in SESSION:
                _play(conn, title, sql, out)
            ok = _mistake(sandbox, conn, out)
            metrics = conn.get_metrics()
            conn.close()
            out("live metrics of the agent's connection:")
            for key in METRICS:
                out(f"  {key}: {metrics.get(key)}")
        deadline = time.monotonic() + 5  # alerts are delivered on a background thread
        while len(alerts) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        for alert in alerts:
            out(f"ALERT [{alert.severity}] {alert.kind}: {alert.message}")
        ok = ok and not listing(root)
        out("\nsandbox destroyed; nothing left behind" if ok else "\nsandbox LEFT BEHIND")
        ok = _audit_trail(audit, out) and ok and bool(alerts)
    out(f"\ndone in {time.perf_counter() - start:.1f} s")
    return 0 if ok else 1


def _make_golden(root: Path) -> None:
    """A curator loads the shipped sample data and saves it as a shared snapshot."""
    with AgentSandbox.create(
        agent_id="curator", root=root, access_policy=sqlfence.Policy.unrestricted()
    ) as curator:
        conn = curator.get_connection()
        cursor = conn.cursor()
        for statement in SEED.read_text().split(";\n"):
            if statement.strip():
                cursor.execute(statement)
        conn.commit()
        conn.close()
        curator.create_snapshot(GOLDEN, shared=True)


def _play(
    conn: sqlfence.GuardedConnection, title: str, sql: str, out: Callable[[str], None]
) -> None:
    out(f"-- {title}\n   {sql}")
    cursor = conn.cursor()
    try:
        rows = cursor.execute(sql).fetchall()
    except sqlfence.PolicyViolation as denial:
        out(f"   DENIED  {denial}\n")
        return
    except sqlfence.Error as error:
        out(f"   ERROR   {type(error).__name__}: {error}\n")
        return
    note = " (truncated by the row limit)" if cursor.truncated else ""
    out(f"   allowed, {len(rows)} row(s){note}: {_short(rows)}")
    if cursor.decision is not None and cursor.decision.rewritten:
        out(f"   ran as: {cursor.decision.sql}")
    out("")


def _mistake(
    sandbox: AgentSandbox, conn: sqlfence.GuardedConnection, out: Callable[[str], None]
) -> bool:
    """The agent deletes what it should not; the sandbox is rolled back to a snapshot."""
    sandbox.create_snapshot("before-cleanup")
    cursor = conn.cursor()
    out(f"-- a mistake: the agent 'cleans up'\n   {MISTAKE}")
    gone = cursor.execute(MISTAKE).rowcount
    conn.commit()
    left = cursor.execute("SELECT count(*) FROM orders").fetchone()[0]
    out(f"   {gone} row(s) gone; orders left: {left}")
    sandbox.restore_snapshot("before-cleanup")
    fresh = sandbox.get_connection()
    restored = fresh.execute("SELECT count(*) FROM orders").fetchone()[0]
    fresh.close()
    out(f"   restore_snapshot('before-cleanup'): orders back to {restored}\n")
    return bool(left == 0 and restored == 200)


def _audit_trail(audit: Path, out: Callable[[str], None]) -> bool:
    events = query_events(audit, agent_id="analyst")
    out(f"\naudit trail ({len(events)} events of agent 'analyst'):")
    for event in events:
        what = event.reason or event.query or (event.details or {}).get("message") or ""
        out(f"  #{event.seq:<3} {event.event_type:<26} {event.status or '':<9} {_clip(what)}")
    result = verify(audit)
    out(f"\naudit chain: {result}")
    return bool(result.ok)


def _short(rows: list[Any]) -> str:
    shown = ", ".join(str(tuple(row)) for row in rows[:3])
    return shown + (", ..." if len(rows) > 3 else "")


def _clip(text: str, width: int = 90) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."

"""``make demo``: an agent's session in its own sandbox, on embedded SQLite, no server needed.

A golden snapshot is made from the sample data shipped beside this module; the agent's
sandbox starts from it; a scripted session shows what the fence allows, limits and denies,
a slow query raises an alert, a mistake is rolled back with a snapshot; then the live
metrics, the audit trail and its verification are printed and the sandbox is destroyed.
On a terminal the outcomes are coloured; ``--json`` prints one document with every step.
``make_shop`` writes the same sample data to a SQLite file (the README's ``shop.db``).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import sqlfence
from sqlfence.cli.output import FAILED, OK, CommandError, Output
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


SHOP_TABLES = ("customers", "orders", "secrets")
_STYLES = {"allowed": "green", "denied": "red", "error": "red"}


class Narration:
    """What the demo shows: each part printed as it happens, or kept for one JSON document."""

    def __init__(self, out: Output) -> None:
        self.out = out
        self.report: dict[str, Any] = {"steps": [], "alerts": [], "audit": {"events": []}}

    def say(self, text: str = "", style: str | None = None) -> None:
        if not self.out.json:
            self.out.line(text, style=style)

    def step(self, title: str, sql: str, outcome: str, detail: str, **facts: Any) -> None:
        self.report["steps"].append({"title": title, "sql": sql, "outcome": outcome, **facts})
        self.say(f"-- {title}", style="bold")
        self.say(f"   {sql}")
        self.say(f"   {detail}", style=_STYLES.get(outcome))
        if facts.get("ran_as"):
            self.say(f"   ran as: {facts['ran_as']}", style="dim")
        self.say()


def run(out: Output, audit_dir: Path | None = None) -> int:
    """Play the session; 0 when everything went as expected (the exit code of ``make demo``).

    ``audit_dir`` keeps the audit log there (for ``sqlfence policy learn``); by default it
    lives and dies with the demo's temporary directory.
    """
    start = time.perf_counter()
    show = Narration(out)
    with tempfile.TemporaryDirectory(prefix="sqlfence-demo-") as directory:
        root = Path(directory) / ".sqlfence"
        audit = audit_dir if audit_dir is not None else Path(directory) / "audit"
        _make_golden(root)
        alerts: list[Alert] = []
        show.say("sqlfence demo: agent 'analyst' of tenant 'acme' in its own SQLite sandbox\n")
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
            show.report["sandbox"] = sandbox.name
            show.say(f"sandbox {sandbox.name} loaded from golden snapshot '{GOLDEN}'\n")
            conn = sandbox.get_connection()
            for title, sql in SESSION:
                _play(conn, title, sql, show)
            ok = _mistake(sandbox, conn, show)
            metrics = conn.get_metrics()
            conn.close()
            show.report["metrics"] = {key: metrics.get(key) for key in METRICS}
            show.say("live metrics of the agent's connection:", style="bold")
            for key in METRICS:
                show.say(f"  {key}: {metrics.get(key)}")
        deadline = time.monotonic() + 5  # alerts are delivered on a background thread
        while len(alerts) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        for alert in alerts:
            show.report["alerts"].append(
                {"severity": alert.severity, "kind": alert.kind, "message": alert.message}
            )
            show.say(f"ALERT [{alert.severity}] {alert.kind}: {alert.message}", style="yellow")
        clean = not listing(root)
        show.report["left_behind"] = not clean
        if clean:
            show.say("\nsandbox destroyed; nothing left behind", style="green")
        else:
            show.say("\nsandbox LEFT BEHIND", style="red")
        ok = _audit_trail(audit, show) and ok and clean and bool(alerts)
    seconds = time.perf_counter() - start
    show.report.update(ok=ok, seconds=round(seconds, 3))
    if out.json:
        out.document(show.report, indent=2)
    show.say(f"\ndone in {seconds:.1f} s")
    return OK if ok else FAILED


def make_shop(path: Path) -> dict[str, int]:
    """Write the demo's sample shop to ``path``, a new SQLite file; returns rows per table.

    Raises CommandError when ``path`` exists: an existing database is never written into.
    """
    if path.exists():
        raise CommandError(f"{path} exists: --make-shop writes a new database file only")
    # The file is created on purpose, so the URL asks for it (mode=rwc).
    url = f"sqlite:///{path}"
    with sqlfence.connect(url, policy=sqlfence.Policy.unrestricted(), mode="rwc") as conn:
        load_shop(conn)
        return {
            table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            for table in SHOP_TABLES
        }


def load_shop(conn: sqlfence.GuardedConnection) -> None:
    """Create and fill the shop's tables (``demo_shop.sql``) on ``conn``, then commit."""
    cursor = conn.cursor()
    for statement in SEED.read_text().split(";\n"):
        if statement.strip():
            cursor.execute(statement)
    conn.commit()


def _make_golden(root: Path) -> None:
    """A curator loads the shipped sample data and saves it as a shared snapshot."""
    with AgentSandbox.create(
        agent_id="curator", root=root, access_policy=sqlfence.Policy.unrestricted()
    ) as curator:
        conn = curator.get_connection()
        load_shop(conn)
        conn.close()
        curator.create_snapshot(GOLDEN, shared=True)


def _play(conn: sqlfence.GuardedConnection, title: str, sql: str, show: Narration) -> None:
    cursor = conn.cursor()
    try:
        rows = cursor.execute(sql).fetchall()
    except sqlfence.PolicyViolation as denial:
        show.step(title, sql, "denied", f"DENIED  {denial}", message=str(denial))
        return
    except sqlfence.Error as error:
        message = f"{type(error).__name__}: {error}"
        show.step(title, sql, "error", f"ERROR   {message}", message=message)
        return
    note = " (truncated by the row limit)" if cursor.truncated else ""
    decision = cursor.decision
    show.step(
        title,
        sql,
        "allowed",
        f"allowed, {len(rows)} row(s){note}: {_short(rows)}",
        rows=len(rows),
        truncated=cursor.truncated,
        ran_as=decision.sql if decision is not None and decision.rewritten else None,
    )


def _mistake(sandbox: AgentSandbox, conn: sqlfence.GuardedConnection, show: Narration) -> bool:
    """The agent deletes what it should not; the sandbox is rolled back to a snapshot."""
    sandbox.create_snapshot("before-cleanup")
    cursor = conn.cursor()
    show.say("-- a mistake: the agent 'cleans up'", style="bold")
    show.say(f"   {MISTAKE}")
    gone = cursor.execute(MISTAKE).rowcount
    conn.commit()
    left = cursor.execute("SELECT count(*) FROM orders").fetchone()[0]
    show.say(f"   {gone} row(s) gone; orders left: {left}", style="red")
    sandbox.restore_snapshot("before-cleanup")
    fresh = sandbox.get_connection()
    restored = fresh.execute("SELECT count(*) FROM orders").fetchone()[0]
    fresh.close()
    show.say(f"   restore_snapshot('before-cleanup'): orders back to {restored}\n", style="green")
    show.report["mistake"] = {"sql": MISTAKE, "deleted": gone, "left": left, "restored": restored}
    return bool(left == 0 and restored == 200)


def _audit_trail(audit: Path, show: Narration) -> bool:
    events = query_events(audit, agent_id="analyst")
    show.say(f"\naudit trail ({len(events)} events of agent 'analyst'):", style="bold")
    for event in events:
        what = event.reason or event.query or (event.details or {}).get("message") or ""
        show.report["audit"]["events"].append(
            {"seq": event.seq, "type": event.event_type, "status": event.status, "what": what}
        )
        show.say(
            f"  #{event.seq:<3} {event.event_type:<26} {event.status or '':<9} {_clip(what)}",
            style=_STYLES.get(event.status or ""),
        )
    result = verify(audit)
    show.report["audit"].update(ok=result.ok, verified=str(result))
    show.say(f"\naudit chain: {result}", style="green" if result.ok else "red")
    return bool(result.ok)


def _short(rows: list[Any]) -> str:
    shown = ", ".join(str(tuple(row)) for row in rows[:3])
    return shown + (", ..." if len(rows) > 3 else "")


def _clip(text: str, width: int = 90) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."

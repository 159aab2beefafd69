"""``make demo``: an agent's session through the fence on embedded SQLite, no server needed."""

from __future__ import annotations

import sqlite3
import tempfile
import warnings
from pathlib import Path

import sqlfence

POLICY = """
default:
  read_only: true
  denied_tables: [secrets]
  denied_columns: [customers.email]
  max_rows: 5
agents:
  loader:
    read_only: false
"""

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
    ("a write in a read-only session", "DELETE FROM orders"),
    ("a write hidden in a CTE", "WITH d AS (DELETE FROM orders RETURNING *) SELECT * FROM d"),
    ("two statements at once", "SELECT 1; DROP TABLE orders"),
    ("reading a file", "SELECT readfile('/etc/passwd')"),
]


def _seed(path: Path) -> None:
    raw = sqlite3.connect(path)
    raw.executescript(
        """
        CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT, country TEXT, email TEXT);
        CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER, total REAL);
        CREATE TABLE secrets (token TEXT);
        INSERT INTO secrets VALUES ('sk-live-do-not-leak');
        """
    )
    countries = ["FR", "DE", "NL", "FR", "IT"]
    raw.executemany(
        "INSERT INTO customers VALUES (?, ?, ?, ?)",
        [(i, f"customer {i}", countries[i % 5], f"c{i}@example.com") for i in range(1, 41)],
    )
    raw.executemany(
        "INSERT INTO orders VALUES (?, ?, ?)",
        [(i, 1 + i % 40, round(10 + i * 3.7, 2)) for i in range(1, 201)],
    )
    raw.commit()
    raw.close()


def run() -> int:
    """Play the scripted session and print what the fence did; 0 when all went as expected."""
    warnings.simplefilter("ignore", sqlfence.DefaultPolicyWarning)
    with tempfile.TemporaryDirectory(prefix="sqlfence-demo-") as directory:
        path = Path(directory) / "shop.db"
        _seed(path)
        policy = sqlfence.load_policy(POLICY)
        print("sqlfence demo: an agent 'analyst' on an embedded SQLite shop database\n")
        with sqlfence.connect(f"sqlite:///{path}", policy=policy, agent_id="analyst") as conn:
            cursor = conn.cursor()
            for title, sql in SESSION:
                print(f"-- {title}\n   {sql}")
                try:
                    rows = cursor.execute(sql).fetchall()
                except sqlfence.PolicyViolation as denial:
                    print(f"   DENIED  {denial}\n")
                    continue
                note = " (truncated by the row limit)" if cursor.truncated else ""
                print(f"   allowed, {len(rows)} row(s){note}: {rows[:3]}")
                if cursor.decision is not None and cursor.decision.rewritten:
                    print(f"   ran as: {cursor.decision.sql}")
                print()
        raw = sqlite3.connect(path)
        orders = raw.execute("SELECT count(*) FROM orders").fetchone()[0]
        raw.close()
        print(f"orders still in the database: {orders} of 200 (nothing was deleted)")
        return 0 if orders == 200 else 1

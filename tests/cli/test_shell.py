"""``sqlfence shell`` as psql users expect it: the real command, from standard input, with
``-c``, and on a pseudo-terminal (Ctrl-C, Ctrl-D, history, completion)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from tests.cli.processes import POLICIES, Terminal, cli, environment, wait_until

ANALYST = str(POLICIES / "analyst.yaml")
# 200**5 rows to count: hours of work, so only a cancel ends it while the test waits.
ENDLESS = "SELECT count(*) FROM orders a, orders b, orders c, orders d, orders e;"


def _reading(path: Path) -> bool:
    """Does a statement hold a read lock on the SQLite file (is one running)?"""
    probe = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        probe.execute("BEGIN EXCLUSIVE")
    except sqlite3.OperationalError:
        return True
    finally:
        probe.close()  # rolls the exclusive transaction back, if it began
    return False


def _url(path: Path) -> str:
    return f"sqlite:///{path}"


def test_statements_from_standard_input(shop: Path) -> None:
    """Lines from stdin go through the fence: results, denials and the last decision."""
    lines = "SELECT 1\n  AS one;\nSELECT * FROM secrets;\n\\why\n\\q\n"
    done = cli("shell", _url(shop), "-p", ANALYST, "--agent", "bot", stdin=lines)
    assert "one\n---\n  1\n(1 row)" in done.stdout
    assert done.stdout.count("table main.secrets is on the deny list") == 2


def test_exit_status_says_whether_a_statement_failed(shop: Path) -> None:
    """From stdin or -c, the exit status is 1 when a statement was denied or failed, else 0."""
    ok = cli("shell", _url(shop), "-p", ANALYST, stdin="SELECT count(*) FROM orders;\n")
    denied = cli("shell", _url(shop), "-p", ANALYST, stdin="SELECT * FROM secrets;\n")
    failed = cli("shell", _url(shop), "-p", ANALYST, "-c", "SELECT nope FROM orders")
    assert (ok.returncode, denied.returncode, failed.returncode) == (0, 1, 1)
    assert "ERROR" in failed.stdout


def test_several_statements_on_one_line(shop: Path) -> None:
    """`-c "A; B; C"` runs each statement in turn, each judged: a denial does not stop the rest."""
    done = cli("shell", _url(shop), "-p", ANALYST, "-c",
               "SELECT 1 AS a; SELECT * FROM secrets; SELECT 'x;y' AS b;")  # fmt: skip
    assert done.returncode == 1
    assert done.stdout.splitlines() == [
        "a", "-", "1", "(1 row)",
        "DENIED denied: table main.secrets is on the deny list (policy analyst.yaml:4)",
        "b", "---", "x;y", "(1 row)",
    ]  # fmt: skip


def test_null_and_blobs_are_readable(tmp_path: Path) -> None:
    """NULL shows as NULL (not None) and a blob as \\x hex (not b'...')."""
    done = cli("shell", "sqlite://", "--unrestricted", "-c",
               "SELECT NULL AS n, x'00ff10' AS b, 'text' AS t")  # fmt: skip
    assert done.returncode == 0
    assert "NULL | \\x00ff10 | text" in done.stdout
    assert "None" not in done.stdout
    assert "b'" not in done.stdout


def test_ddl_says_what_it_did(tmp_path: Path) -> None:
    """DDL prints what it was (CREATE), DML its row count; never "-1 rows affected"."""
    db = tmp_path / "new.db"
    script = "CREATE TABLE t (a);\nINSERT INTO t VALUES (1), (2);\nDROP TABLE t;\n"
    done = cli("shell", f"{_url(db)}?mode=rwc", "--unrestricted", stdin=script)
    assert done.returncode == 0, done.stdout
    assert done.stdout.splitlines() == ["CREATE", "INSERT 2", "DROP"]


def test_unrestricted_runs_what_the_default_policy_refuses(shop: Path) -> None:
    """Without a policy the shell is read-only (and says so); --unrestricted lets writes run."""
    default = cli("shell", _url(shop), "-c", "DELETE FROM secrets")
    assert default.returncode == 1
    assert "read-only" in default.stdout
    assert "note:" in default.stderr
    free = cli("shell", _url(shop), "--unrestricted", "-c", "DELETE FROM secrets")
    assert free.returncode == 0
    assert free.stdout == "DELETE 1\n"
    with sqlite3.connect(shop) as raw:
        assert raw.execute("SELECT count(*) FROM secrets").fetchone() == (0,)


def test_unrestricted_and_a_policy_are_exclusive(shop: Path) -> None:
    """--unrestricted with --policy is a usage error (exit 2)."""
    done = cli("shell", _url(shop), "--unrestricted", "-p", ANALYST, "-c", "SELECT 1")
    assert done.returncode == 2
    assert "exclude each other" in done.stderr


def test_a_missing_database_is_one_line(tmp_path: Path) -> None:
    """A misspelt path is an error naming it (exit 2), not an empty database."""
    done = cli("shell", _url(tmp_path / "shpo.db"), "-c", "SELECT 1")
    assert done.returncode == 2
    assert done.stderr.startswith("sqlfence: no SQLite database at")
    assert not (tmp_path / "shpo.db").exists()


def test_backslash_d_commands_differ(shop: Path) -> None:
    """\\d lists tables and views, \\dt tables only, \\d NAME its readable columns; a denied
    table is listed nowhere and described as missing; \\? is the help."""
    with sqlite3.connect(shop) as raw:
        raw.execute("CREATE VIEW big_orders AS SELECT id, total FROM orders WHERE total > 500")
        raw.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT, password TEXT)")

    def shown(command: str) -> list[str]:
        done = cli("shell", _url(shop), "-p", ANALYST, "-c", command)
        return [line.split(" | ")[0].strip() for line in done.stdout.splitlines()[2:]]

    assert shown("\\d") == ["big_orders", "customers", "orders", "users", "(4 rows)"]
    assert shown("\\dt") == ["customers", "orders", "users", "(3 rows)"]
    assert shown("\\d users") == ["id", "name"]  # users.password is a denied column
    missing = cli("shell", _url(shop), "-p", ANALYST, "-c", "\\d secrets")
    assert (missing.returncode, missing.stdout) == (
        1,
        "no table secrets that this agent may read\n",
    )
    assert "\\dt          tables only" in cli("shell", _url(shop), "-c", "\\?").stdout


def test_json_lines(shop: Path) -> None:
    """--json: one JSON object per statement (rows, status, denial)."""
    statements = "SELECT id, NULL AS n FROM orders WHERE id < 3 ORDER BY id; SELECT * FROM secrets"
    done = cli("--json", "shell", _url(shop), "-p", ANALYST, "-c", statements)
    results = [json.loads(line) for line in done.stdout.splitlines()]
    assert results[0]["columns"] == ["id", "n"]
    assert results[0]["rows"] == [[1, None], [2, None]]
    assert "deny list" in results[1]["denied"]
    assert done.returncode == 1


def _shell(shop: Path, tmp_path: Path, *args: str) -> Terminal:
    env = environment(HOME=str(tmp_path), SQLFENCE_HISTFILE=str(tmp_path / "history"))
    term = Terminal("shell", _url(shop), *args, env=env, columns=120)
    term.read_until("sqlfence> ")
    return term


def test_ctrl_c_cancels_the_running_statement_and_the_shell_goes_on(
    shop: Path, tmp_path: Path
) -> None:
    """Ctrl-C during an endless statement stops it; the shell answers the next one; Ctrl-D
    ends it with status 0."""
    term = _shell(shop, tmp_path, "--unrestricted")
    term.send(ENDLESS + "\r")
    wait_until(lambda: _reading(shop), "the statement runs")
    term.send("\x03")
    term.read_until("cancelled")
    term.read_until("sqlfence> ")
    term.send("SELECT 42 AS answer;\r")
    assert "42" in term.read_until("(1 row)")
    term.read_until("sqlfence> ")
    term.send("\x04")
    assert term.wait() == 0
    assert "Traceback" not in term.text


def test_ctrl_c_at_the_prompt_drops_the_line(shop: Path, tmp_path: Path) -> None:
    """Ctrl-C while typing (also a statement begun on an earlier line) drops it, not the shell."""
    term = _shell(shop, tmp_path, "-p", ANALYST)
    term.send("SELECT 1\r")
    term.read_until("...> ")
    term.send("FROM orders")
    term.read_until("FROM orders")  # echoed: the prompt is reading keys
    term.interrupt("sqlfence> ")
    term.send("SELECT 7 AS seven;\r")
    shown = term.read_until("(1 row)")
    assert "seven" in shown
    assert "SELECT 1" not in shown.split("seven")[1]
    term.send("\\q\r")
    assert term.wait() == 0


def test_completion_and_history(shop: Path, tmp_path: Path) -> None:
    """Tab completes the table names the agent may read (not denied ones); statements are kept
    in the history file."""
    term = _shell(shop, tmp_path, "-p", ANALYST)
    term.send("SELECT count(*) FROM cust\t")
    term.read_until("customers")
    term.send(";\r")
    assert "40" in term.read_until("(1 row)")
    term.read_until("sqlfence> ")
    term.send("SELECT * FROM secr\t\t;\r")
    term.read_until("no such table: secr")
    term.read_until("sqlfence> ")
    term.send("\x04")
    assert term.wait() == 0
    assert "SELECT * FROM secrets" not in term.text  # nothing completed "secr"
    history = (tmp_path / "history").read_text()
    assert "SELECT count(*) FROM customers;" in history


@pytest.mark.postgres
def test_postgres_catalog_and_ctrl_c(pg_url: str, tmp_path: Path) -> None:
    """On PostgreSQL: \\dt lists the tables, and Ctrl-C cancels a running statement on the
    server (psycopg's own cancel) while the shell goes on."""
    import psycopg

    with psycopg.connect(pg_url, autocommit=True) as admin:
        admin.execute("CREATE TABLE notes (id integer PRIMARY KEY, body text)")
        admin.execute("CREATE VIEW bodies AS SELECT body FROM notes")
    listed = cli("shell", pg_url, "--unrestricted", "-c", "\\dt")
    assert listed.returncode == 0, listed.stderr
    assert "notes" in listed.stdout
    assert "bodies" not in listed.stdout
    env = environment(HOME=str(tmp_path), SQLFENCE_HISTFILE=str(tmp_path / "history"))
    term = Terminal("shell", pg_url, "--unrestricted", env=env, columns=120)
    term.read_until("sqlfence> ")
    term.send("SELECT pg_sleep(600);\r")
    running = (
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE state = 'active' AND query LIKE 'SELECT pg~_sleep(600)%' ESCAPE '~'"
    )
    with psycopg.connect(pg_url, autocommit=True) as watcher:
        wait_until(lambda: watcher.execute(running).fetchone() == (1,), "pg_sleep runs")
        term.send("\x03")
    term.read_until("cancelled")
    term.read_until("sqlfence> ")
    term.send("SELECT 42 AS answer;\r")
    assert "42" in term.read_until("(1 row)")
    term.send("\\q\r")
    assert term.wait() == 0

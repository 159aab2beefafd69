"""``sqlfence demo``: the scripted session, its colour on a terminal, --json, and the shop."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from sqlfence.cli.demo import run
from sqlfence.cli.output import Output
from tests.cli.processes import cli, plain, terminal_run


def test_demo_runs(tmp_path: Path) -> None:
    """The demo plays its whole session, verifies the audit chain and leaves nothing behind."""
    done = cli("demo", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    text = done.stdout
    assert "DENIED  denied: table main.secrets is on the deny list" in text
    assert "orders back to 200" in text
    assert "ALERT [warning] slow_query" in text
    assert "nothing left behind" in text
    assert "audit chain: ok" in text
    assert "\x1b[" not in text  # no colour codes in a pipe
    assert list(tmp_path.iterdir()) == []


def test_demo_is_coloured_on_a_terminal() -> None:
    """On a terminal, denials are red and allowed statements green."""
    code, raw = terminal_run("demo", columns=120)
    assert code == 0
    assert b"\x1b[31m" in raw  # red: DENIED
    assert b"\x1b[32m" in raw  # green: allowed
    assert "audit chain: ok" in plain(raw)


def test_demo_json() -> None:
    """--json prints one document: every step with its outcome, alerts, metrics, the audit."""
    done = cli("--json", "demo")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    outcomes = {step["title"]: step["outcome"] for step in report["steps"]}
    assert outcomes["an ordinary question"] == "allowed"
    assert outcomes["a read of the secrets table"] == "denied"
    assert report["mistake"]["restored"] == 200
    assert {alert["kind"] for alert in report["alerts"]} >= {"slow_query"}
    assert report["audit"]["ok"] is True
    assert report["ok"] is True


def test_demo_in_process() -> None:
    """run() reports to an Output and returns 0 when everything went as expected."""
    import io

    stream = io.StringIO()
    assert run(Output(stream=stream)) == 0
    assert "nothing left behind" in stream.getvalue()


def test_make_shop_writes_the_sample_database(tmp_path: Path) -> None:
    """`demo --make-shop shop.db` writes the demo's tables to a new file; a second run refuses
    to touch the existing one (exit 2)."""
    done = cli("demo", "--make-shop", "shop.db", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("wrote shop.db: customers (40 rows), orders (200 rows)")
    with sqlite3.connect(tmp_path / "shop.db") as raw:
        assert raw.execute("SELECT count(*) FROM orders").fetchone() == (200,)
    again = cli("demo", "--make-shop", "shop.db", cwd=tmp_path)
    assert again.returncode == 2
    assert "exists" in again.stderr

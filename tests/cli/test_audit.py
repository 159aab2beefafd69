"""``sqlfence audit ...`` on a real audit log (the demo's): filters, tables, exit codes."""

from __future__ import annotations

import csv
import datetime
import io
import json
from pathlib import Path

import pytest

from sqlfence import Guard, load_policy
from sqlfence.cli import main
from sqlfence.cli.parser import moment
from tests.cli.processes import cli, plain, terminal_run


def test_verify_and_learn(demo_audit: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """On the demo's audit log: verify passes, learn allows exactly the shapes that ran."""
    from sqlfence.cli.demo import SESSION

    assert main(["audit", "verify", str(demo_audit)]) == 0
    assert main(["--json", "audit", "stats", str(demo_audit)]) == 0
    assert main(["audit", "query", str(demo_audit), "--type", "denial"]) == 0
    capsys.readouterr()
    assert main(["policy", "learn", str(demo_audit), "--agent", "analyst"]) == 0
    learned = capsys.readouterr().out
    guard = Guard(load_policy(learned), dialect="sqlite")
    ran = [sql for _, sql in SESSION[:3]]
    assert all(guard.decide(sql).allowed for sql in ran)
    assert guard.decide("SELECT name, country FROM customers WHERE country = 'DE'").allowed
    assert not guard.decide("SELECT id FROM orders WHERE total > 100").allowed


def test_verify_fails_on_tampering(demo_audit: Path) -> None:
    """A changed byte in the log makes `audit verify` exit 1."""
    log = next(path for path in demo_audit.rglob("*.jsonl"))
    log.write_text(log.read_text().replace("customers", "customerz", 1))
    assert main(["audit", "verify", str(demo_audit)]) == 1


@pytest.mark.parametrize("action", ["verify", "tail", "query", "stats"])
def test_a_path_without_a_log_is_bad_input(action: str, tmp_path: Path) -> None:
    """Every action exits 2 for a missing path or an empty directory, saying which."""
    missing = cli("audit", action, str(tmp_path / "nowhere"))
    assert (missing.returncode, missing.stderr) == (
        2,
        f"sqlfence: no audit log at {tmp_path / 'nowhere'}\n",
    )
    empty = cli("audit", action, str(tmp_path))
    assert empty.returncode == 2
    assert "no audit log in" in empty.stderr
    assert "no_key" not in empty.stderr


def test_tail_piped_keeps_whole_values(demo_log: Path) -> None:
    """Piped, the tail table cuts no timestamp, type or statement and wraps nothing."""
    done = cli("audit", "tail", str(demo_log), "-n", "100")
    assert done.returncode == 0
    events = [json.loads(line) for line in cli("audit", "query", str(demo_log)).stdout.split("\n")
              if line]  # fmt: skip
    lines = done.stdout.splitlines()
    assert len(lines) == 1 + len(events)
    for line, event in zip(lines[1:], events, strict=True):
        assert line.split()[:3] == [str(event["seq"]), event["timestamp"], event["event_type"]]
        what = event.get("reason") or event.get("query") or ""
        assert line.endswith(what)
    assert "…" not in done.stdout


def test_tail_on_a_terminal_is_a_coloured_table(demo_log: Path) -> None:
    """On a terminal the tail is a boxed table with denials in colour."""
    code, raw = terminal_run("audit", "tail", str(demo_log), "--type", "denial", columns=200)
    assert code == 0
    assert "┃ seq" in plain(raw)
    assert b"\x1b[31m" in raw  # red


def test_type_takes_patterns(demo_log: Path) -> None:
    """--type matches patterns such as sandbox.* and audit.*, and may be repeated."""
    done = cli("audit", "query", str(demo_log), "--type", "sandbox.*", "--type", "audit.*")
    types = {json.loads(line)["event_type"] for line in done.stdout.splitlines()}
    assert done.returncode == 0
    assert "sandbox.created" in types
    assert "audit.close" in types
    assert all(t.startswith(("sandbox.", "audit.")) for t in types)


def test_since_takes_relative_times(demo_log: Path) -> None:
    """--since 1h finds the events of a run a moment ago; --until 1h finds none of them."""
    recent = cli("audit", "query", str(demo_log), "--since", "1h")
    older = cli("audit", "query", str(demo_log), "--until", "1h")
    assert recent.returncode == older.returncode == 0
    assert len(recent.stdout.splitlines()) > 10
    assert older.stdout == ""


def test_moment_reads_iso_and_ago() -> None:
    """ISO 8601 times (naive = UTC) and times ago (s, m, h, d, w) are both accepted."""
    now = datetime.datetime(2026, 11, 2, 12, 0, tzinfo=datetime.timezone.utc)
    assert moment("2h", now) == now - datetime.timedelta(hours=2)
    assert moment("90s", now) == now - datetime.timedelta(seconds=90)
    assert moment("1w", now) == now - datetime.timedelta(days=7)
    assert moment("2026-11-01") == datetime.datetime(2026, 11, 1, tzinfo=datetime.timezone.utc)
    assert moment("2026-11-01T09:30Z").hour == 9


def test_a_bad_time_is_a_usage_error(demo_log: Path) -> None:
    """An unreadable --since is a usage error (exit 2) saying what is accepted."""
    done = cli("audit", "query", str(demo_log), "--since", "yesterday")
    assert done.returncode == 2
    assert "time ago" in done.stderr


def test_export_to_standard_output(demo_log: Path, tmp_path: Path) -> None:
    """`export -o -` writes to standard output (no file named -), filtered by --type."""
    done = cli("audit", "export", str(demo_log), "-o", "-", "--format", "csv", "--type", "denial",
               cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    assert rows
    assert {row["event_type"] for row in rows} == {"denial"}
    assert not (tmp_path / "-").exists()


def test_export_to_a_file_reports_json(demo_log: Path, tmp_path: Path) -> None:
    """`export -o FILE --json` writes the file and reports how many events, as JSON."""
    target = tmp_path / "events.jsonl"
    done = cli("--json", "audit", "export", str(demo_log), "-o", str(target))
    assert done.returncode == 0
    report = json.loads(done.stdout)
    assert report["exported"] == len(target.read_text().splitlines()) > 0

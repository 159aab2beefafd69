"""``sqlfence check`` and ``sqlfence policy ...``: exit codes and output, piped and on a tty."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sqlfence.cli import main
from tests.cli.processes import POLICIES, cli, plain, terminal_run

ANALYST = str(POLICIES / "analyst.yaml")
# Long enough that any wrapping at 80 (or 40) columns would have to cut the string literal.
LONG = (
    "SELECT 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb "
    "cccccccccccccccccccccccccccc dddd' AS x FROM orders"
)


def test_check_allowed(capsys: pytest.CaptureFixture[str]) -> None:
    """An allowed statement exits 0 and prints the SQL that would run."""
    code = main(["check", "SELECT * FROM orders", "--policy", ANALYST])
    out = capsys.readouterr().out
    assert code == 0
    assert "SELECT * FROM orders LIMIT 100" in out


def test_check_denied_json(capsys: pytest.CaptureFixture[str]) -> None:
    """A denied statement exits 1; --json names the rule and the policy line."""
    code = main(["--json", "check", "SELECT * FROM secrets", "-p", ANALYST])
    payload = json.loads(capsys.readouterr().out)
    assert code == 1
    assert payload["allowed"] is False
    assert payload["reasons"][0]["rule"] == "denied_tables"
    assert payload["reasons"][0]["location"] == "analyst.yaml:4"


@pytest.mark.parametrize("sql", ["SELEC broken (", "SELECT FROM WHERE", "", "-- only a comment"])
def test_check_unparseable_sql_is_bad_input(sql: str) -> None:
    """Text the parser cannot read is bad input (exit 2), not a denial (1)."""
    done = cli("check", sql, "-p", ANALYST)
    assert done.returncode == 2, done.stdout
    assert "not understood" in done.stdout


def test_check_piped_prints_the_sql_exactly() -> None:
    """Piped, the rewritten SQL is one line, exactly as it would run (no wrapping at 80)."""
    done = cli("check", LONG, "-p", ANALYST)
    assert done.returncode == 0
    assert done.stdout == f"allowed (row limit applied)\n{LONG} LIMIT 100\n"


def test_check_on_a_narrow_terminal_never_breaks_the_sql() -> None:
    """On a 40-column terminal the SQL is still sent unbroken (the terminal wraps it), and the
    verdict is coloured."""
    code, raw = terminal_run("check", LONG, "-p", ANALYST, columns=40)
    assert code == 0
    assert f"{LONG} LIMIT 100" in plain(raw).splitlines()
    assert b"\x1b[" in raw  # the verdict's colour


def test_check_reads_standard_input() -> None:
    """`check -` reads the statement from standard input."""
    done = cli("check", "-", "-p", ANALYST, stdin="SELECT id FROM orders\n")
    assert done.returncode == 0
    assert "LIMIT 100" in done.stdout


def test_policy_lint(capsys: pytest.CaptureFixture[str]) -> None:
    """lint exits 0 for a good file and 2, naming file and line, for a bad one."""
    assert main(["policy", "lint", ANALYST]) == 0
    assert main(["policy", "lint", str(POLICIES / "misspelt.yaml")]) == 2
    assert "misspelt.yaml:3" in capsys.readouterr().err


def test_policy_lint_json() -> None:
    """lint --json prints one document with a result per file; exit 2 when one is bad."""
    done = cli("--json", "policy", "lint", ANALYST, str(POLICIES / "misspelt.yaml"))
    assert done.returncode == 2
    results = json.loads(done.stdout)
    assert [(r["file"], r["ok"]) for r in results] == [
        (ANALYST, True),
        (str(POLICIES / "misspelt.yaml"), False),
    ]
    assert "misspelt.yaml:3" in results[1]["error"]
    assert done.stderr == ""


def test_policy_schema(capsys: pytest.CaptureFixture[str]) -> None:
    """schema prints a JSON Schema with every policy key."""
    assert main(["policy", "schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert "max_rows" in schema["$defs"]["Policy"]["properties"]


def test_policy_learn_from_a_missing_log_is_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """learn on a path without an audit log exits 2 and says so."""
    assert main(["policy", "learn", str(tmp_path / "nowhere")]) == 2
    assert "no audit log at" in capsys.readouterr().err


def test_policy_learn_json(demo_audit: Path) -> None:
    """learn --json prints the learned policy as JSON, with the shapes it came from."""
    done = cli("--json", "policy", "learn", str(demo_audit), "--agent", "analyst")
    assert done.returncode == 0, done.stderr
    learned = json.loads(done.stdout)
    assert learned["policy"]["allowlist"] == sorted(learned["shapes"])
    assert "SELECT id, total FROM orders" in learned["shapes"].values()


def test_policy_learn_keeps_the_base_file_and_never_loosens(demo_audit: Path) -> None:
    """--base: the whole file comes back (tenants, other agents), the allowlist in the
    agent's own section; without --base the policy is capped by what ran: the demo's
    analyst deleted in its sandbox (so not read-only) and read at most 5 rows."""
    import yaml

    base = Path(__file__).resolve().parents[2] / "policies" / "analyst.yaml"
    done = cli("policy", "learn", str(demo_audit), "--agent", "analyst", "--base", str(base))
    assert done.returncode == 0, done.stderr
    learned = yaml.safe_load(done.stdout)
    original = yaml.safe_load(base.read_text())
    assert learned["tenants"] == original["tenants"]
    assert learned["default"] == original["default"]
    assert learned["agents"]["loader"] == original["agents"]["loader"]
    assert learned["agents"]["analyst"]["allowlist"]
    bare = cli("policy", "learn", str(demo_audit), "--agent", "analyst")
    assert bare.returncode == 0, bare.stderr
    strict = yaml.safe_load(bare.stdout)
    assert strict["read_only"] is False
    assert strict["max_rows"] == 5
    assert "no --base" in bare.stdout

"""The ``sqlfence`` command line: exit codes and output of each sub-command."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from sqlfence.cli import main

POLICIES = Path(__file__).parent.parent / "policies" / "files"


def test_check_allowed(capsys: pytest.CaptureFixture[str]) -> None:
    """An allowed statement exits 0 and prints the SQL that would run."""
    code = main(["check", "SELECT * FROM orders", "--policy", str(POLICIES / "analyst.yaml")])
    out = capsys.readouterr().out
    assert code == 0
    assert "SELECT * FROM orders LIMIT 100" in out


def test_check_denied_json(capsys: pytest.CaptureFixture[str]) -> None:
    """A denied statement exits 1; --json names the rule and the policy line."""
    code = main(["--json", "check", "SELECT * FROM secrets", "-p", str(POLICIES / "analyst.yaml")])
    payload = json.loads(capsys.readouterr().out)
    assert code == 1
    assert payload["allowed"] is False
    assert payload["reasons"][0]["rule"] == "denied_tables"
    assert payload["reasons"][0]["location"] == "analyst.yaml:4"


def test_policy_lint(capsys: pytest.CaptureFixture[str]) -> None:
    """lint exits 0 for a good file and 2, naming file and line, for a bad one."""
    assert main(["policy", "lint", str(POLICIES / "analyst.yaml")]) == 0
    assert main(["policy", "lint", str(POLICIES / "misspelt.yaml")]) == 2
    assert "misspelt.yaml:3" in capsys.readouterr().err


def test_policy_schema(capsys: pytest.CaptureFixture[str]) -> None:
    """schema prints a JSON Schema with every policy key."""
    assert main(["policy", "schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert "max_rows" in schema["$defs"]["Policy"]["properties"]


def test_no_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    """Without a command the help is printed and the exit code is 2."""
    assert main([]) == 2
    assert "usage" in capsys.readouterr().out


def test_sandbox_gc_after_a_killed_process(tmp_path: Path) -> None:
    """A process that made a sandbox and was SIGKILLed leaves nothing after `sandbox gc`."""
    root = tmp_path / "root"
    script = (
        "import os, signal\n"
        "from sqlfence.sandbox import AgentSandbox\n"
        f"sb = AgentSandbox.create('crashy', root={str(root)!r})\n"
        "print(sb.name, flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    child = subprocess.run(
        [sys.executable, "-c", script], check=False, capture_output=True, text=True
    )
    name = child.stdout.strip()
    assert name
    listed = subprocess.run(
        [sys.executable, "-m", "sqlfence.cli", "--json", "sandbox", "list", "--root", str(root)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert [record["name"] for record in json.loads(listed.stdout)] == [name]
    assert main(["sandbox", "gc", "--root", str(root)]) == 0
    assert main(["--json", "sandbox", "list", "--root", str(root)]) == 0
    assert not list(root.rglob("*.db"))


def test_demo_runs() -> None:
    """The demo plays its whole session, verifies the audit chain and leaves nothing behind."""
    from sqlfence.cli.demo import run

    lines: list[str] = []
    assert run(lines.append) == 0
    text = "\n".join(lines)
    assert "DENIED  denied: table main.secrets is on the deny list" in text
    assert "orders back to 200" in text
    assert "ALERT [warning] slow_query" in text
    assert "nothing left behind" in text
    assert "audit chain: ok" in text


def test_audit_commands_and_policy_learn(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """On the demo's audit log: verify passes, learn allows exactly the shapes that ran."""
    from sqlfence import Guard, load_policy
    from sqlfence.cli.demo import SESSION, run

    audit = tmp_path / "audit"
    assert run(lambda line: None, audit_dir=audit) == 0
    assert main(["audit", "verify", str(audit)]) == 0
    assert main(["--json", "audit", "stats", str(audit)]) == 0
    assert main(["audit", "tail", str(audit), "-n", "3"]) == 0
    assert main(["audit", "query", str(audit), "--type", "denial"]) == 0
    capsys.readouterr()
    assert main(["policy", "learn", str(audit), "--agent", "analyst"]) == 0
    learned = capsys.readouterr().out
    guard = Guard(load_policy(learned), dialect="sqlite")
    ran = [sql for _, sql in SESSION[:3]]
    assert all(guard.decide(sql).allowed for sql in ran)
    assert guard.decide("SELECT name, country FROM customers WHERE country = 'DE'").allowed
    assert not guard.decide("SELECT id FROM orders WHERE total > 100").allowed


def test_audit_verify_fails_on_tampering(tmp_path: Path) -> None:
    """A changed byte in the log makes `audit verify` exit 1."""
    from sqlfence.cli.demo import run

    audit = tmp_path / "audit"
    assert run(lambda line: None, audit_dir=audit) == 0
    log = next(path for path in audit.rglob("*.jsonl"))
    text = log.read_text()
    log.write_text(text.replace("customers", "customerz", 1))
    assert main(["audit", "verify", str(audit)]) == 1


def test_shell_reads_statements_from_standard_input(tmp_path: Path) -> None:
    """The shell runs each line through the fence: results, denials and the last decision."""
    lines = "SELECT 1\n  AS one;\nSELECT * FROM secrets;\n\\why\n\\q\n"
    policy = POLICIES / "analyst.yaml"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "sqlfence.cli",
            "shell",
            f"sqlite:///{tmp_path / 's.db'}?mode=rwc",
            "-p",
            str(policy),
            "--agent",
            "bot",
        ],
        input=lines,
        capture_output=True,
        text=True,
        check=True,
    )
    out = done.stdout
    assert "one\n---\n1  \n(1 row)" in out
    assert out.count("table main.secrets is on the deny list") == 2


def test_policy_learn_from_a_missing_log_is_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["policy", "learn", str(tmp_path / "nowhere")]) == 2
    assert "no audit log at" in capsys.readouterr().err

"""The ``sqlfence`` command as a whole: version, help, exit codes and how errors are reported."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from sqlfence import __version__
from sqlfence.cli import main
from sqlfence.cli.parser import build
from tests.cli.processes import cli, environment

COMMANDS = ("check", "policy", "audit", "sandbox", "pool", "mcp", "shell", "demo")


def test_version() -> None:
    """`sqlfence --version` prints the package version and exits 0."""
    done = cli("--version")
    assert done.returncode == 0
    assert done.stdout.strip() == f"sqlfence {__version__}"


def test_python_dash_m_sqlfence_is_the_command() -> None:
    """`python -m sqlfence` runs the same command line."""
    done = subprocess.run(
        [sys.executable, "-m", "sqlfence", "--version"],
        capture_output=True,
        text=True,
        check=False,
        env=environment(),
    )
    assert (done.returncode, done.stdout.strip()) == (0, f"sqlfence {__version__}")


def test_top_level_help_names_every_command_in_plain_text() -> None:
    """The top-level help names every command and the exit codes, with no RST markup."""
    done = cli("--help")
    assert done.returncode == 0
    for command in COMMANDS:
        assert f"\n    {command} " in done.stdout
    assert "``" not in done.stdout
    assert "exit codes:" in done.stdout


def _leaves(parser: object, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], object]]:
    import argparse

    assert isinstance(parser, argparse.ArgumentParser)
    found: list[tuple[tuple[str, ...], object]] = [(path, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                found += _leaves(child, (*path, name))
    return found


def test_every_argument_has_help_and_defaults_are_shown() -> None:
    """Every positional argument and option of every command has help; defaults are shown."""
    import argparse

    for path, parser in _leaves(build()):
        assert isinstance(parser, argparse.ArgumentParser)
        text = parser.format_help()
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                continue
            assert action.help, f"sqlfence {' '.join(path)}: {action.dest} has no help"
            if action.default not in (None, False, argparse.SUPPRESS) and action.option_strings:
                assert f"(default: {action.default})" in text, (path, action.dest)


def test_no_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    """Without a command the help is printed and the exit code is 2."""
    assert main([]) == 2
    assert "usage" in capsys.readouterr().out


def test_an_error_is_one_line_on_stderr() -> None:
    """An expected error is one line `sqlfence: ...` on stderr, exit 2, no traceback."""
    done = cli("check", "SELECT 1", "--policy", "no-such-policy.yaml")
    assert done.returncode == 2
    assert done.stderr == "sqlfence: policy file no-such-policy.yaml does not exist\n"
    assert done.stdout == ""


def test_errors_are_json_under_json() -> None:
    """Under --json an error is one JSON object on stderr, before or after the command name."""
    for args in (
        ("--json", "check", "SELECT 1", "-p", "no-such.yaml"),
        ("check", "--json", "SELECT 1", "-p", "no-such.yaml"),
    ):
        done = cli(*args)
        assert done.returncode == 2
        error = json.loads(done.stderr)
        assert error == {"error": "policy file no-such.yaml does not exist", "kind": "PolicyError"}


def test_usage_errors_are_json_under_json() -> None:
    """A usage error (a bad option value) is JSON too under --json, exit 2."""
    done = cli("--json", "sandbox", "create", "bot", "--ttl", "-5")
    assert done.returncode == 2
    error = json.loads(done.stderr)
    assert error["kind"] == "usage"
    assert "--ttl: must be more than 0" in error["error"]


def test_a_server_that_does_not_answer_is_one_line(tmp_path: object) -> None:
    """A driver's own error (psycopg: connection refused) is one line and exit 2, no traceback."""
    pytest.importorskip("psycopg")
    done = cli(
        "sandbox", "create", "bot", "--backend", "postgres",
        "--server-url", "postgresql://nobody@127.0.0.1:1/postgres", "--root", str(tmp_path),
    )  # fmt: skip
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert len(done.stderr.splitlines()) == 1
    assert done.stderr.startswith("sqlfence: ")
    assert "127.0.0.1" in done.stderr


def test_a_reader_that_goes_away_is_not_an_error() -> None:
    """`sqlfence demo | head -1`: no "Broken pipe" message, the exit code says SIGPIPE (141)."""
    demo = subprocess.Popen(
        [sys.executable, "-m", "sqlfence", "demo"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment(),
    )
    assert demo.stdout is not None
    assert demo.stderr is not None
    first = demo.stdout.readline()
    demo.stdout.close()  # as head does after its first line
    errors = demo.stderr.read()
    assert demo.wait(timeout=120) == 141
    assert first.startswith("sqlfence demo:")
    assert errors == ""


def test_mcp_takes_json_before_the_command_name() -> None:
    """`sqlfence --json mcp --help` reaches the MCP server's own command line."""
    pytest.importorskip("mcp")
    done = cli("--json", "mcp", "--help")
    assert done.returncode == 0
    assert "usage: sqlfence mcp" in done.stdout
    assert "--transport" in done.stdout  # the server's options, not a stub parser's


def test_errors_raised_inside_a_driver_are_expected() -> None:
    """An error class of a driver, or any error raised inside a driver's module (IRIS raises
    plain RuntimeError), is the environment's; one raised by sqlfence's own code is a bug."""
    from sqlfence.cli import describe, from_driver

    driver_code = compile("def connect():\n    raise RuntimeError('link error')\n", "iris", "exec")
    namespace: dict[str, object] = {"__name__": "iris._elsdk_"}
    exec(driver_code, namespace)
    with pytest.raises(RuntimeError) as raised:
        namespace["connect"]()  # type: ignore[operator]
    assert from_driver(raised.value)
    assert describe(raised.value) == "builtins.RuntimeError: link error"
    with pytest.raises(RuntimeError) as ours:
        raise RuntimeError("a bug")
    assert not from_driver(ours.value)


def test_mcp_errors_are_json_under_json(tmp_path: Path) -> None:
    """`sqlfence --json mcp ...`: a bad database and a usage error are one JSON object each
    on standard error, exit 2; without --json they are one line."""
    missing = f"sqlite:///{tmp_path / 'missing.db'}"
    for args, kind in (([missing], "OperationalError"), (["--bogus"], "usage")):
        done = cli("--json", "mcp", *args)
        assert done.returncode == 2, done.stderr
        error = json.loads(done.stderr)
        assert error["kind"] == kind
        assert error["error"].startswith("sqlfence mcp: ")
    plain_done = cli("mcp", missing)
    assert plain_done.returncode == 2
    assert plain_done.stderr.startswith("sqlfence mcp: no SQLite database")

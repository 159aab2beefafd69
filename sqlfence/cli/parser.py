"""The ``sqlfence`` command line's grammar: every command, argument, default and help text."""

from __future__ import annotations

import argparse
import datetime
import importlib
import json
import re
from collections.abc import Callable
from typing import Any, NoReturn

from sqlfence import __version__, databases
from sqlfence.arguments import claim, positive_float, positive_int
from sqlfence.observe import events

DESCRIPTION = """\
A guarded database driver and per-agent sandboxes for AI agents that write SQL.
Every command takes --json for machine-readable output (errors too, on standard error)."""

EPILOG = """\
exit codes:
  0    success (check: the statement is allowed)
  1    denied, verification failed, pool not ready, or a shell statement failed
  2    bad usage or input, or an error that stopped the command (one line on stderr)
  130  interrupted (Ctrl-C)

`sqlfence COMMAND --help` (and `sqlfence COMMAND ACTION --help`) describe each one."""

KNOWN_EVENT_TYPES = (
    events.CONNECT,
    events.DISCONNECT,
    events.QUERY,
    events.SLOW_QUERY,
    events.SCHEMA_CHANGE,
    events.ERROR,
    events.DENIAL,
    events.FETCH,
    events.ALERT,
    "mcp.call",
    "sandbox.*",
    "audit.*",
)
BACKENDS = tuple(database.name for database in databases.PROFILES)
RUNTIMES = ("auto", "embedded", "external", "docker", "kubernetes")  # sandbox.runtimes
# RUNTIMES and "auto" (not imported: the parser must stay cheap to build)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions as written; each option's default shown when it has a meaningful one."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (
            "%(default)" not in text
            and default not in (None, False, argparse.SUPPRESS)
            and (action.option_strings or action.nargs in ("?", "*"))
        ):
            text += " (default: %(default)s)"
        return text


def moment(text: str, now: datetime.datetime | None = None) -> datetime.datetime:
    """An ISO 8601 time (naive means UTC) or a time ago: ``90s``, ``15m``, ``2h``, ``7d``."""
    relative = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", text)
    if relative:
        now = now or datetime.datetime.now(datetime.timezone.utc)
        return now - datetime.timedelta(seconds=float(relative[1]) * _UNITS[relative[2]])
    try:
        parsed = datetime.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither an ISO 8601 time (2026-11-01, 2026-11-01T09:30) "
            "nor a time ago (90s, 15m, 2h, 7d, 1w)"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=datetime.timezone.utc)


class JsonErrors(argparse.ArgumentParser):
    """A parser that reports a usage error as one JSON object (``--json``), exit 2."""

    def error(self, message: str) -> NoReturn:
        text = f"{self.prog}: {message}"
        self.exit(2, json.dumps({"error": text, "kind": "usage"}) + "\n")


def build(json_errors: bool = False) -> argparse.ArgumentParser:
    """The whole command line; each leaf parser sets ``run`` to its command function."""
    audit, commands, sandboxes = (
        _Later(f"sqlfence.cli.{name}") for name in ("audit", "commands", "sandboxes")
    )
    kind = JsonErrors if json_errors else argparse.ArgumentParser
    parser = kind(
        prog="sqlfence", description=DESCRIPTION, epilog=EPILOG, formatter_class=HelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"sqlfence {__version__}")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    json_flag = argparse.ArgumentParser(add_help=False)
    json_flag.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="machine-readable output"
    )
    sub = _Commands(parser.add_subparsers(metavar="COMMAND"), json_flag)

    check = sub.add("check", "decide a statement under a policy (no database needed)")
    check.add_argument("sql", help="the statement, or - to read it from standard input")
    _policy_option(check)
    check.add_argument("--dialect", "-d", default="sqlite", help="sqlite, postgres, iris, ...")
    check.add_argument(
        "--database",
        metavar="URL",
        help="decide as a connection to this database would (its catalog: the columns masks "
        "list, the tables *.column keys match); the statement is not run",
    )
    _identity_options(check)
    check.set_defaults(run=commands.check)

    policy = sub.add("policy", "lint | schema | learn: check policy files, print their JSON Schema")
    actions = policy.add_subparsers(metavar="ACTION")
    lint = actions.add("lint", "validate policy files (every section of each)")
    lint.add_argument("files", nargs="+", metavar="FILE", help="policy files (YAML)")
    lint.set_defaults(run=commands.policy_lint)
    actions.add("schema", "print the JSON Schema of policy files").set_defaults(
        run=commands.policy_schema
    )
    learn = actions.add("learn", "an allowlist of the statement shapes in an audit log")
    learn.add_argument("audit", metavar="AUDIT", help="audit log directory or file")
    learn.add_argument("--agent", "--agent-id", dest="agent", help="only this agent's statements")
    learn.add_argument(
        "--base",
        help="the policy the agent ran under: the learned file is this one, every section "
        "kept, with the allowlist added to the agent's rules (learning never loosens a limit)",
    )
    learn.add_argument("--tenant", help="the agent's tenant (its rules in the base's tenants:)")
    learn.set_defaults(run=commands.policy_learn)

    _audit_commands(sub, audit)
    _sandbox_commands(sub, sandboxes)

    sub.add("mcp", "serve guarded query tools over MCP (see sqlfence mcp --help)")

    shell = sub.add("shell", "an interactive guarded SQL prompt, as an agent sees the database")
    shell.add_argument(
        "url", metavar="URL", help="database URL: sqlite:///file.db, postgresql://..., iris://..."
    )
    _policy_option(shell)
    shell.add_argument(
        "--unrestricted",
        action="store_true",
        help="no policy at all: every statement runs (for your own local databases)",
    )
    _identity_options(shell)
    shell.add_argument(
        "--command",
        "-c",
        action="append",
        metavar="SQL",
        help="run these statements and exit (repeatable); exit 1 when one failed",
    )
    shell.set_defaults(run=commands.shell)

    demo = sub.add("demo", "a scripted agent session on embedded SQLite (make demo)")
    demo.add_argument("--audit", metavar="DIR", help="keep the demo's audit log in this directory")
    demo.add_argument(
        "--make-shop",
        metavar="FILE",
        help="instead, write the demo's sample shop database (customers, orders, secrets) "
        "to FILE, a new SQLite file, and exit",
    )
    demo.set_defaults(run=commands.demo)
    return parser


def _policy_option(parser: Any) -> None:
    parser.add_argument(
        "--policy", "-p", metavar="FILE", help="policy file (default: the safe default policy)"
    )


def _identity_options(parser: Any) -> None:
    parser.add_argument(
        "--agent", "--agent-id", dest="agent", help="agent id (chooses the policy section)"
    )
    parser.add_argument("--tenant", help="tenant (chooses the policy section)")
    parser.add_argument(
        "--claim",
        action="append",
        type=claim,
        default=[],
        metavar="NAME=VALUE",
        help="a claim of the caller's, for row filters' :claims.NAME (again for more)",
    )


def _audit_commands(sub: _Commands, audit: Any) -> None:
    actions = sub.add(
        "audit", "verify | query | tail | stats | export: read and check audit logs"
    ).add_subparsers(metavar="ACTION")
    verify = actions.add("verify", "check the HMAC chain (exit 0 only when intact)")
    verify.add_argument("path", metavar="PATH", help="audit log directory or file")
    verify.set_defaults(run=audit.verify)
    for name, run, text in (
        ("query", audit.query, "events matching filters, as JSON Lines"),
        ("tail", audit.tail, "the last events, one line each"),
        ("stats", audit.stats, "counts by type, status and agent"),
        ("export", audit.export, "write events as json, jsonl or csv"),
    ):
        action = actions.add(name, text)
        action.add_argument("path", metavar="PATH", help="audit log directory or file")
        action.add_argument("--agent", "--agent-id", dest="agent", help="only this agent")
        action.add_argument("--tenant", help="only this tenant")
        action.add_argument("--status", help="only this status: ok, denied, error, warning, ...")
        action.add_argument(
            "--type",
            action="append",
            metavar="TYPE",
            help="only this event type, or types matching a pattern (repeatable): "
            + ", ".join(KNOWN_EVENT_TYPES),
        )
        action.add_argument(
            "--since", type=moment, help="from this time (inclusive): ISO 8601 or ago (2h, 7d)"
        )
        action.add_argument(
            "--until", type=moment, help="before this time (exclusive): ISO 8601 or ago (15m)"
        )
        if name == "tail":
            action.add_argument("-n", "--lines", type=positive_int, default=20, help="events")
        if name == "export":
            action.add_argument(
                "--format", choices=("json", "jsonl", "csv"), default="jsonl", help="file format"
            )
            action.add_argument(
                "--output", "-o", required=True, metavar="FILE", help="file to write; - for stdout"
            )
        action.set_defaults(run=run)


def _sandbox_commands(sub: _Commands, sandboxes: Any) -> None:
    def rooted(parser: Any) -> Any:
        parser.add_argument("--root", metavar="DIR", help="sandbox root (default: .sqlfence)")
        return parser

    actions = sub.add(
        "sandbox", "list | gc | create | destroy | snapshot | restore: agent sandboxes"
    ).add_subparsers(metavar="ACTION")
    rooted(actions.add("list", "every recorded sandbox")).set_defaults(run=sandboxes.sandbox_list)
    gc = rooted(actions.add("gc", "remove expired and orphaned sandboxes"))
    gc.add_argument("--all", action="store_true", help="also those of live or detached owners")
    gc.set_defaults(run=sandboxes.sandbox_gc)
    create = rooted(actions.add("create", "a detached sandbox; prints only its name"))
    create.add_argument("agent_id", metavar="AGENT", help="the agent the sandbox is for")
    create.add_argument("--tenant", help="the agent's tenant")
    create.add_argument("--backend", default="sqlite", choices=BACKENDS, help="database")
    create.add_argument("--server-url", metavar="URL", help="admin URL (postgres, iris)")
    create.add_argument(
        "--ttl", type=positive_float, metavar="SECONDS", help="seconds until it expires"
    )
    create.add_argument("--snapshot", help="a shared snapshot to start from")
    create.set_defaults(run=sandboxes.sandbox_create)
    destroy = rooted(actions.add("destroy", "destroy sandboxes by name"))
    destroy.add_argument("names", nargs="+", metavar="NAME", help="sandbox names")
    destroy.set_defaults(run=sandboxes.sandbox_destroy)
    snapshot = rooted(actions.add("snapshot", "snapshot a sandbox"))
    snapshot.add_argument("name", metavar="NAME", help="the sandbox")
    snapshot.add_argument("snapshot", metavar="SNAPSHOT", help="a name for the snapshot")
    snapshot.add_argument("--shared", action="store_true", help="as a golden dataset")
    snapshot.set_defaults(run=sandboxes.sandbox_snapshot)
    restore = rooted(actions.add("restore", "restore a sandbox to a snapshot"))
    restore.add_argument("name", metavar="NAME", help="the sandbox")
    restore.add_argument("snapshot", metavar="SNAPSHOT", help="one of its snapshots")
    restore.set_defaults(run=sandboxes.sandbox_restore)

    pool = sub.add("pool", "warm: start a warm sandbox pool, report when it is ready")
    warm = rooted(pool.add_subparsers(metavar="ACTION").add("warm", "start a pool and wait"))
    warm.add_argument("--size", type=positive_int, default=3, help="sandboxes to keep ready")
    warm.add_argument("--backend", default="sqlite", choices=BACKENDS, help="database")
    warm.add_argument("--runtime", choices=RUNTIMES, help="default: the backend's own")
    warm.add_argument("--image", help="docker runtime: the server image")
    warm.add_argument("--server-url", metavar="URL", help="admin URL (runtime external)")
    warm.add_argument("--timeout", type=positive_float, default=120.0, help="seconds to wait")
    warm.set_defaults(run=sandboxes.pool_warm)


class _Later:
    """A module of command functions, imported when one of its commands runs.

    Building the parser then imports none of them, so a command pays only for what it uses:
    ``sandbox list`` never imports the fence.
    """

    def __init__(self, module: str) -> None:
        self._module = module

    def __getattr__(self, name: str) -> Callable[[argparse.Namespace, Any], int]:
        def run(args: argparse.Namespace, out: Any) -> int:
            command = getattr(importlib.import_module(self._module), name)
            return int(command(args, out))

        run.__qualname__ = f"{self._module}.{name}"
        return run


class _Commands:
    """Adds sub-commands that each accept ``--json`` (before or after the command name)."""

    def __init__(self, actions: Any, json_flag: argparse.ArgumentParser) -> None:
        self._actions = actions
        self._json_flag = json_flag

    def add(self, name: str, text: str) -> _Command:
        parser = self._actions.add_parser(
            name,
            help=text,
            description=text[0].upper() + text[1:] + ".",
            parents=[self._json_flag],
            formatter_class=HelpFormatter,
        )
        return _Command(parser, self._json_flag)


class _Command:
    """A sub-command's parser whose own actions also accept ``--json``."""

    def __init__(self, parser: argparse.ArgumentParser, json_flag: argparse.ArgumentParser):
        self._parser = parser
        self._json_flag = json_flag

    def add_subparsers(self, **kwargs: Any) -> _Commands:
        return _Commands(self._parser.add_subparsers(**kwargs), self._json_flag)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._parser, name)

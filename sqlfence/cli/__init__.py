"""The ``sqlfence`` command: check, policy, audit, sandbox, shell, mcp, demo.

Exit codes: 0 success (or "allowed"), 1 denied / verification failed, 2 bad usage or input.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from sqlfence.errors import Error
from sqlfence.observe import events

EVENT_TYPES = (
    events.CONNECT,
    events.DISCONNECT,
    events.QUERY,
    events.SLOW_QUERY,
    events.SCHEMA_CHANGE,
    events.ERROR,
    events.DENIAL,
    events.FETCH,
    events.ALERT,
)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["mcp"]:
        try:
            from sqlfence.integrations.mcp_serve import main as mcp_main
        except ImportError as error:
            if error.name is None or not error.name.startswith("mcp"):
                raise
            print(
                "sqlfence mcp: the MCP server needs the mcp extra: pip install 'sqlfence[mcp]'",
                file=sys.stderr,
            )
            return 2
        mcp_main(arguments[1:])
        return 0
    parser = _parser()
    args = parser.parse_args(arguments)
    if not getattr(args, "run", None):
        parser.print_help()
        return 2
    try:
        return int(args.run(args))
    except (Error, ValueError, OSError) as error:  # bad input: say what, no traceback
        print(f"sqlfence: {error}", file=sys.stderr)
        return 2


def _sandbox_commands(sub: Any) -> None:
    from sqlfence.cli import sandboxes

    def rooted(parser: Any) -> Any:
        parser.add_argument("--root", help="sandbox root (default .sqlfence)")
        return parser

    sandbox = sub.add_parser("sandbox", help="agent sandboxes").add_subparsers(metavar="ACTION")
    rooted(sandbox.add_parser("list", help="every recorded sandbox")).set_defaults(
        run=sandboxes.sandbox_list
    )
    gc = rooted(sandbox.add_parser("gc", help="remove expired and orphaned sandboxes"))
    gc.add_argument("--all", action="store_true", help="also those of live or detached owners")
    gc.set_defaults(run=sandboxes.sandbox_gc)
    create = rooted(sandbox.add_parser("create", help="a detached sandbox; prints its name"))
    create.add_argument("agent_id")
    create.add_argument("--tenant")
    create.add_argument("--backend", default="sqlite", choices=("sqlite", "postgres", "iris"))
    create.add_argument("--server-url", help="admin URL of the server (postgres, iris)")
    create.add_argument("--ttl", type=float, help="seconds until it expires")
    create.add_argument("--snapshot", help="a shared snapshot to start from")
    create.set_defaults(run=sandboxes.sandbox_create)
    destroy = rooted(sandbox.add_parser("destroy", help="destroy sandboxes by name"))
    destroy.add_argument("names", nargs="+")
    destroy.set_defaults(run=sandboxes.sandbox_destroy)
    snapshot = rooted(sandbox.add_parser("snapshot", help="snapshot a sandbox"))
    snapshot.add_argument("name")
    snapshot.add_argument("snapshot")
    snapshot.add_argument("--shared", action="store_true", help="as a golden dataset")
    snapshot.set_defaults(run=sandboxes.sandbox_snapshot)
    restore = rooted(sandbox.add_parser("restore", help="restore a sandbox to a snapshot"))
    restore.add_argument("name")
    restore.add_argument("snapshot")
    restore.set_defaults(run=sandboxes.sandbox_restore)

    pool = sub.add_parser("pool", help="warm sandbox pools").add_subparsers(metavar="ACTION")
    warm = rooted(pool.add_parser("warm", help="start a pool and report when it is ready"))
    warm.add_argument("--size", type=int, default=3)
    warm.add_argument("--backend", default="sqlite", choices=("sqlite", "postgres", "iris"))
    warm.add_argument("--runtime", help="embedded, external or docker")
    warm.add_argument("--server-url", help="admin URL of the server (runtime external)")
    warm.add_argument("--timeout", type=float, default=120.0, help="seconds to wait")
    warm.set_defaults(run=sandboxes.pool_warm)


def _parser() -> argparse.ArgumentParser:
    from sqlfence.cli import commands

    parser = argparse.ArgumentParser(prog="sqlfence", description=__doc__)
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    json_flag = argparse.ArgumentParser(add_help=False)
    json_flag.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="machine-readable output"
    )
    sub = _JsonSubparsers(parser.add_subparsers(metavar="COMMAND"), json_flag)

    check = sub.add_parser("check", help="decide a statement under a policy (no database)")
    check.add_argument("sql", help="the statement, or - to read it from standard input")
    check.add_argument("--policy", "-p", help="policy file (default: the safe default)")
    check.add_argument("--dialect", "-d", default="sqlite", help="sqlite, postgres, iris, ...")
    check.add_argument("--agent", "--agent-id", dest="agent", help="agent id for policy sections")
    check.add_argument("--tenant", help="tenant for per-tenant policy sections")
    check.set_defaults(run=commands.check)

    policy = sub.add_parser("policy", help="policy files").add_subparsers(metavar="ACTION")
    lint = policy.add_parser("lint", help="validate policy files")
    lint.add_argument("files", nargs="+")
    lint.set_defaults(run=commands.policy_lint)
    schema = policy.add_parser("schema", help="print the JSON Schema of policy files")
    schema.set_defaults(run=commands.policy_schema)
    learn = policy.add_parser("learn", help="an allowlist of the statement shapes in an audit log")
    learn.add_argument("audit", help="audit log directory or file")
    learn.add_argument("--agent", "--agent-id", dest="agent", help="only this agent's statements")
    learn.add_argument("--base", help="policy file whose keys the learned policy keeps")
    learn.set_defaults(run=commands.policy_learn)

    audit = sub.add_parser("audit", help="audit logs").add_subparsers(metavar="ACTION")
    verify = audit.add_parser("verify", help="check the HMAC chain (exit 0 only when intact)")
    verify.add_argument("path")
    verify.set_defaults(run=commands.audit_verify)
    for name, run, text in (
        ("query", commands.audit_query, "events matching filters, as JSON Lines"),
        ("tail", commands.audit_tail, "the last events, one line each"),
        ("stats", commands.audit_stats, "counts by type, status and agent"),
        ("export", commands.audit_export, "write events as json, jsonl or csv"),
    ):
        action = audit.add_parser(name, help=text)
        action.add_argument("path")
        action.add_argument("--agent", "--agent-id", dest="agent")
        action.add_argument("--tenant")
        action.add_argument("--status", help="ok, denied, error, ...")
        action.add_argument("--type", choices=EVENT_TYPES, help="event type")
        action.add_argument("--since", help="ISO 8601 time (inclusive)")
        action.add_argument("--until", help="ISO 8601 time (exclusive)")
        if name == "tail":
            action.add_argument("-n", "--lines", type=int, default=20)
        if name == "export":
            action.add_argument("--format", choices=("json", "jsonl", "csv"), default="jsonl")
            action.add_argument("--output", "-o", required=True)
        action.set_defaults(run=run)

    _sandbox_commands(sub)

    sub.add_parser("mcp", help="serve guarded query tools over MCP (sqlfence mcp --help)")

    shell = sub.add_parser("shell", help="an interactive guarded SQL prompt, as an agent sees it")
    shell.add_argument("url", help="database URL (sqlite:///..., postgresql://..., iris://...)")
    shell.add_argument("--policy", "-p", help="policy file (default: the safe default)")
    shell.add_argument("--agent", "--agent-id", dest="agent", help="agent id to act as")
    shell.add_argument("--tenant")
    shell.set_defaults(run=commands.shell)

    demo = sub.add_parser("demo", help="a scripted agent session on embedded SQLite")
    demo.add_argument("--audit", help="keep the demo's audit log in this directory")
    demo.set_defaults(run=commands.demo)
    return parser


class _JsonSubparsers:
    """Adds ``--json`` to every sub-command, so it works before or after the command name."""

    def __init__(self, actions: Any, parent: argparse.ArgumentParser) -> None:
        self._actions = actions
        self._parent = parent

    def add_parser(self, name: str, **kwargs: Any) -> Any:
        parser = self._actions.add_parser(name, parents=[self._parent], **kwargs)
        return _Nested(parser, self._parent)


class _Nested:
    """A sub-command parser whose own sub-commands also get ``--json``."""

    def __init__(self, parser: argparse.ArgumentParser, parent: argparse.ArgumentParser) -> None:
        self._parser = parser
        self._parent = parent

    def add_subparsers(self, **kwargs: Any) -> _JsonSubparsers:
        return _JsonSubparsers(self._parser.add_subparsers(**kwargs), self._parent)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._parser, name)

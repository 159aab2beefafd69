"""The ``sqlfence`` command: check, policy, audit, demo.

Exit codes: 0 success (or "allowed"), 1 denied / verification failed, 2 bad usage or input.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from sqlfence.errors import Error


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["mcp"]:
        from sqlfence.integrations.mcp import main as mcp_main

        mcp_main(arguments[1:])
        return 0
    parser = _parser()
    args = parser.parse_args(arguments)
    if not getattr(args, "run", None):
        parser.print_help()
        return 2
    try:
        return int(args.run(args))
    except Error as error:
        print(f"sqlfence: {error}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    from sqlfence.cli import commands

    parser = argparse.ArgumentParser(prog="sqlfence", description=__doc__)
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    sub = parser.add_subparsers(metavar="COMMAND")

    check = sub.add_parser("check", help="decide a statement under a policy (no database)")
    check.add_argument("sql", help="the statement, or - to read it from standard input")
    check.add_argument("--policy", "-p", help="policy file (default: the safe default)")
    check.add_argument("--dialect", "-d", default="sqlite", help="sqlite, postgres, iris, ...")
    check.add_argument("--agent", help="agent id for per-agent policy sections")
    check.add_argument("--tenant", help="tenant for per-tenant policy sections")
    check.set_defaults(run=commands.check)

    policy = sub.add_parser("policy", help="policy files").add_subparsers(metavar="ACTION")
    lint = policy.add_parser("lint", help="validate policy files")
    lint.add_argument("files", nargs="+")
    lint.set_defaults(run=commands.policy_lint)
    schema = policy.add_parser("schema", help="print the JSON Schema of policy files")
    schema.set_defaults(run=commands.policy_schema)

    sandbox = sub.add_parser("sandbox", help="agent sandboxes").add_subparsers(metavar="ACTION")
    listed = sandbox.add_parser("list", help="every recorded sandbox")
    listed.add_argument("--root", help="sandbox root (default .sqlfence)")
    listed.set_defaults(run=commands.sandbox_list)
    gc = sandbox.add_parser("gc", help="remove expired sandboxes and those of dead processes")
    gc.add_argument("--root", help="sandbox root (default .sqlfence)")
    gc.add_argument("--all", action="store_true", help="also those of live processes")
    gc.set_defaults(run=commands.sandbox_gc)

    sub.add_parser("mcp", help="serve guarded query tools over MCP (sqlfence mcp --help)")

    demo = sub.add_parser("demo", help="a scripted agent session on embedded SQLite")
    demo.set_defaults(run=commands.demo)
    return parser


def _emit(payload: object, as_json: bool, text: str) -> None:
    print(json.dumps(payload, indent=2, default=str) if as_json else text)

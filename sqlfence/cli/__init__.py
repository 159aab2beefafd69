"""The ``sqlfence`` command: check, policy, audit, sandbox, pool, shell, mcp, demo.

Exit codes: 0 success (or "allowed"), 1 denied / verification failed / not ready, 2 bad usage,
bad input, or an error that stopped the command, 130 interrupted. An expected error (a sqlfence
error, a bad file, a database server or container engine that does not answer) is one line on
standard error, a JSON object under ``--json``; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from types import TracebackType

from sqlfence.cli.output import BROKEN_PIPE, INTERRUPTED, OK, USAGE, CommandError, Output
from sqlfence.errors import Error

# Errors raised inside these packages come from the environment (a server that is down, an
# engine that does not answer), not from a bug of sqlfence: they are reported in one line.
_DRIVER_PACKAGES = frozenset(
    {"psycopg", "psycopg_pool", "iris", "irisnative", "docker", "requests", "urllib3", "sqlite3"}
)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in arguments if not a.startswith("-")), None)
    if command == "mcp":
        at = arguments.index("mcp")
        return _mcp(arguments[at + 1 :], Output(as_json="--json" in arguments[:at]))
    out = Output(as_json="--json" in arguments)
    from sqlfence.cli import parser

    try:
        args = parser.build(json_errors=out.json).parse_args(arguments)
    except SystemExit as done:  # --help, --version, or a usage error argparse has printed
        return done.code if isinstance(done.code, int) else USAGE
    if not getattr(args, "run", None):
        parser.build().print_help()
        return USAGE
    out.json = bool(args.json)
    try:
        return int(args.run(args, out))
    except KeyboardInterrupt:
        out.error("interrupted", "interrupted")
        return INTERRUPTED
    except BrokenPipeError:
        _quiet_stdout()
        return BROKEN_PIPE
    except CommandError as error:
        out.error(str(error))
        return error.code
    except (Error, ValueError, OSError) as error:
        out.error(describe(error), type(error).__name__)
        return USAGE
    except Exception as error:
        if not from_driver(error):
            raise
        out.error(describe(error), type(error).__name__)
        return USAGE


def describe(error: BaseException) -> str:
    """One line a person can act on: the message, and the driver's class when it is foreign."""
    if isinstance(error, OSError) and error.strerror and error.filename:
        text = f"{error.filename}: {error.strerror}"
    else:
        text = str(error) or type(error).__name__
    if not isinstance(error, (Error, OSError, ValueError)):
        text = f"{type(error).__module__}.{type(error).__qualname__}: {text}"
    return " ".join(text.split())


def from_driver(error: BaseException) -> bool:
    """Was ``error`` raised by a database driver or a container engine's client?"""
    if type(error).__module__.split(".")[0] in _DRIVER_PACKAGES:
        return True
    frame = _innermost(error.__traceback__)
    module = frame.tb_frame.f_globals.get("__name__", "") if frame is not None else ""
    return str(module).split(".")[0] in _DRIVER_PACKAGES


def _innermost(traceback: TracebackType | None) -> TracebackType | None:
    while traceback is not None and traceback.tb_next is not None:
        traceback = traceback.tb_next
    return traceback


def _quiet_stdout() -> None:
    """After a broken pipe: point stdout at /dev/null so the interpreter's final flush is quiet."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def _mcp(arguments: list[str], out: Output) -> int:
    """``sqlfence mcp``: its own parser; under ``--json`` its errors are JSON too."""
    try:
        from sqlfence.integrations.mcp_serve import main as mcp_main
    except ImportError as error:
        if error.name is None or not error.name.startswith("mcp"):
            raise
        out.error("the MCP server needs the mcp extra: pip install 'sqlfence[mcp]'")
        return USAGE
    from sqlfence.cli.parser import JsonErrors

    try:
        if out.json:
            mcp_main(arguments, parser_class=JsonErrors, report=out.error)
        else:
            mcp_main(arguments)
    except SystemExit as done:
        return done.code if isinstance(done.code, int) else USAGE
    return OK

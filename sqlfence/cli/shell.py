"""``sqlfence shell``: a guarded SQL prompt that sees the database as an agent does.

Statements end with ``;`` (several on a line run one after another, each judged by the
fence; one may span lines) and are committed one by one. Ctrl-C cancels the running
statement, or the line being typed, and the shell goes on; Ctrl-D (or ``\\q``) ends it.
Backslash commands: see ``HELP``. On a terminal there is history and completion of the
table names the agent may read. With ``-c`` or statements on standard input the exit status
is 1 when a statement was denied or failed.
"""

from __future__ import annotations

import contextlib
import os
import sys
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlfence
from sqlfence.cli import shell_display as display
from sqlfence.cli.output import FAILED, OK, Output
from sqlfence.cli.shell_cancel import Cancelled, Canceller
from sqlfence.cli.shell_catalog import Catalog
from sqlfence.cli.shell_input import StatementBuffer
from sqlfence.policies.model import Policy

PROMPT = "sqlfence> "
MORE = "     ...> "
HELP = """\
\\d           tables and views the agent may read
\\dt          tables only
\\d NAME      the columns of NAME the agent may read
\\why         the fence's decision on the last statement, and the SQL that ran
\\metrics     the connection's live metrics
\\?           this help
\\q           quit (or Ctrl-D)
Statements end with ';'. Ctrl-C cancels the running statement or the line being typed."""
HISTORY_ENV = "SQLFENCE_HISTFILE"


@dataclass(frozen=True)
class ShellSettings:
    """What the shell connects to, as whom, and what it runs (``commands``: ``-c``)."""

    url: str
    policy: str | Policy | None = None
    agent_id: str | None = None
    tenant: str | None = None
    commands: tuple[str, ...] = ()
    claims: tuple[tuple[str, str | int], ...] = ()  # row filters' :claims.<name>


class GuardedShell:
    """Statements and backslash commands over one guarded connection."""

    def __init__(
        self, conn: sqlfence.GuardedConnection, catalog: Catalog, canceller: Canceller, out: Output
    ) -> None:
        self.conn = conn
        self.catalog = catalog
        self.canceller = canceller
        self.out = out
        self.buffer = StatementBuffer(conn.guard.dialect)
        self.last: sqlfence.Decision | None = None
        self.failed = 0

    def line(self, text: str) -> bool:
        """Take one typed line; False when the shell should end (``\\q``)."""
        if not self.buffer.pending and text.strip().startswith("\\"):
            return self.command(text.strip())
        for statement in self.buffer.add(text):
            if not self.statement(statement):
                break  # Ctrl-C: the rest of the line is not run either
        return True

    def finish(self) -> None:
        """End of input: run a last statement that has no ``;``."""
        rest = self.buffer.finish()
        if rest is not None:
            self.statement(rest)

    def command(self, text: str) -> bool:
        """A backslash command; False for ``\\q``."""
        name, _, argument = text.partition(" ")
        argument = argument.strip()
        try:
            if name in ("\\q", "\\quit"):
                return False
            if name == "\\why":
                self._why()
            elif name == "\\metrics":
                metrics = self.conn.get_metrics()
                for key, value in metrics.items():
                    self._say(f"{key}: {value}")
            elif name in ("\\d", "\\dt") and not argument:
                self._relations(tables_only=name == "\\dt")
            elif name == "\\d":
                self._columns(argument)
            elif name in ("\\?", "\\h", "\\help"):
                self._say(HELP)
            else:
                self._fail(f"unknown command {name}: \\? lists the commands")
        except sqlfence.Error as error:
            self._fail(f"ERROR {type(error).__name__}: {error}")
        return True

    def statement(self, sql: str) -> bool:
        """Run one statement through the fence and show its result, denial or error; False
        when Ctrl-C cancelled it."""
        cursor = self.conn.cursor()
        try:
            rows = self.canceller.run(lambda: _execute(cursor, sql))
        except Cancelled:
            self._rollback()
            self._fail("cancelled: the statement was stopped (Ctrl-C) and rolled back")
            return False
        except sqlfence.PolicyViolation as denial:
            self.last = denial.decision
            self._fail(f"DENIED {denial}", {"sql": sql, "denied": str(denial)})
            return True
        except sqlfence.Error as error:
            self.last = cursor.decision
            self._rollback()
            message = f"{type(error).__name__}: {error}"
            self._fail(f"ERROR {message}", {"sql": sql, "error": message})
            return True
        self.last = cursor.decision
        self.conn.commit()
        self._result(sql, cursor, rows)
        return True

    def _result(self, sql: str, cursor: sqlfence.GuardedCursor, rows: list[Any] | None) -> None:
        operation = cursor.decision.facts.operation if cursor.decision is not None else None
        if rows is None:
            if self.out.json:
                self.out.document({"sql": sql, "status": operation, "rowcount": cursor.rowcount})
            else:
                self._say(display.status(operation, cursor.rowcount))
            return
        names = [column[0] for column in cursor.description or ()]
        if self.out.json:
            self.out.document(
                {
                    "sql": sql,
                    "columns": names,
                    "rows": [[display.jsonable(value) for value in row] for row in rows],
                    "truncated": cursor.truncated,
                }
            )
            return
        for text in display.table(names, rows):
            self._say(text)
        self._say(display.row_count(len(rows), cursor.truncated))

    def _why(self) -> None:
        if self.last is None:
            self._say("no statement yet")
            return
        self._say(self.last.explain())
        if self.last.allowed:
            self._say(f"ran as: {self.last.sql}")

    def _relations(self, tables_only: bool) -> None:
        relations = self.catalog.relations(tables_only)
        if self.out.json:
            self.out.document([{"name": r.name, "type": r.kind.lower()} for r in relations])
            return
        for text in display.table(("name", "type"), [(r.name, r.kind.lower()) for r in relations]):
            self._say(text)
        self._say(display.row_count(len(relations), False))

    def _columns(self, table: str) -> None:
        columns = self.catalog.columns(table)
        if columns is None:
            self._fail(f"no table {table} that this agent may read")
            return
        if self.out.json:
            self.out.document(
                {
                    "table": table,
                    "columns": [
                        {"name": n, "type": t, "not_null": nn, "primary_key": pk}
                        for n, t, nn, pk in columns
                    ],
                }
            )
            return
        rows = [
            (name, kind, "not null" if not_null else "", "primary key" if pk else "")
            for name, kind, not_null, pk in columns
        ]
        for text in display.table(("column", "type", "null", "key"), rows):
            self._say(text)

    def _rollback(self) -> None:
        with contextlib.suppress(sqlfence.Error):  # the error shown says more than this would
            self.conn.rollback()

    def _fail(self, text: str, document: dict[str, Any] | None = None) -> None:
        self.failed += 1
        if self.out.json:
            self.out.document(document or {"error": text})
        else:
            self.out.line(text, style="red")

    def _say(self, text: str) -> None:
        if not self.out.json:
            self.out.line(text)


def _execute(cursor: sqlfence.GuardedCursor, sql: str) -> list[Any] | None:
    """Run ``sql``; its rows, or None for a statement without a result."""
    cursor.execute(sql)
    return list(cursor.fetchall()) if cursor.description else None


def run(settings: ShellSettings, out: Output) -> int:
    """Connect, then run ``-c`` statements, standard input, or the interactive prompt."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", sqlfence.DefaultPolicyWarning)
        conn = sqlfence.connect(
            settings.url,
            policy=settings.policy,
            agent_id=settings.agent_id,
            tenant=settings.tenant,
            claims=dict(settings.claims),
        )
    canceller = Canceller(conn)
    for warning in caught:
        out.note(f"note: {warning.message}")
    catalog = Catalog(settings.url, conn)
    shell = GuardedShell(conn, catalog, canceller, out)
    try:
        if settings.commands:
            _script(shell, settings.commands)
        elif sys.stdin.isatty():
            _interactive(shell, catalog)
            return OK
        else:
            _script(shell, sys.stdin)
    finally:
        catalog.close()
        conn.close()
    return FAILED if shell.failed else OK


def _script(shell: GuardedShell, lines: Iterable[str]) -> None:
    for line in lines:
        if not shell.line(line.rstrip("\n")):
            return
    shell.finish()


def _interactive(shell: GuardedShell, catalog: Catalog) -> None:
    history = _readline(catalog)
    shell.out.line(
        "sqlfence shell: statements end with ';' and go through the fence. "
        "\\? for help, \\q or Ctrl-D to quit."
    )
    try:
        while True:
            try:
                text = input(MORE if shell.buffer.pending else PROMPT)
            except EOFError:  # Ctrl-D
                shell.out.line()
                return
            except KeyboardInterrupt:  # Ctrl-C at the prompt: drop the line being typed
                shell.buffer.clear()
                shell.out.line()
                continue
            try:
                if not shell.line(text):
                    return
            except KeyboardInterrupt:  # between statements, or while showing a result
                shell.buffer.clear()
                shell.out.line("cancelled")
    finally:
        if history is not None:
            history()


def _readline(catalog: Catalog) -> Any:
    """History (``$SQLFENCE_HISTFILE``, default ``~/.sqlfence_history``) and completion of
    the table names the agent may read; returns a function that saves the history."""
    try:
        import readline
    except ImportError:  # not every platform has it; the prompt works without
        return None
    path = Path(os.environ.get(HISTORY_ENV) or Path.home() / ".sqlfence_history")
    with contextlib.suppress(OSError):  # no history yet
        readline.read_history_file(path)
    names: list[str] | None = None

    def complete(text: str, state: int) -> str | None:
        nonlocal names
        if names is None:
            try:
                names = [relation.name for relation in catalog.relations()]
            except sqlfence.Error:
                names = []
        matches = [name for name in names if name.lower().startswith(text.lower())]
        return matches[state] if state < len(matches) else None

    readline.set_completer(complete)
    readline.set_completer_delims(" \t\n,()=;")
    readline.parse_and_bind("tab: complete")

    def save() -> None:
        with contextlib.suppress(OSError):  # a read-only home: history is not kept
            readline.set_history_length(1000)
            readline.write_history_file(path)

    return save

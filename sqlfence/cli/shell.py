"""``sqlfence shell``: an interactive guarded SQL prompt that sees the database as an agent does.

A statement ends with ``;`` at the end of a line (it may span lines) and goes through the
fence with the given policy and agent identity; denials show their reasons, results are
capped and say when they were truncated. ``\\why`` shows the decision on the last statement
(and the SQL that ran), ``\\metrics`` the connection's live metrics, ``\\q`` quits.
"""

from __future__ import annotations

import cmd
import json
import sys
import warnings
from typing import Any, TextIO

import sqlfence


class GuardedShell(cmd.Cmd):
    """A line-oriented prompt over one guarded connection."""

    intro = (
        "sqlfence shell: statements end with ';' and go through the fence. "
        "\\why: the last decision, \\metrics: live metrics, \\q: quit."
    )
    prompt = "sqlfence> "
    more = "     ...> "

    def __init__(
        self,
        conn: sqlfence.GuardedConnection,
        stdin: TextIO | None = None,
        stdout: TextIO | None = None,
    ) -> None:
        super().__init__(stdin=stdin, stdout=stdout)
        if stdin is not None and not stdin.isatty():
            self.use_rawinput = False
            self.prompt = ""
            self.intro = ""
        self.conn = conn
        self.last: sqlfence.Decision | None = None
        self.denied = 0
        self._pending: list[str] = []
        self._first_prompt = self.prompt

    def onecmd(self, line: str) -> bool:
        """Take one line: part of a statement, or a backslash command. True ends the loop."""
        text = line.strip()
        if text == "EOF":
            if self._pending:
                self._run(" ".join(self._pending))
            return True
        if not self._pending and text.startswith("\\"):
            return self._command(text)
        if text:
            self._pending.append(text)
        if not text.endswith(";"):
            if self._pending and self._first_prompt:  # interactive: show that it continues
                self.prompt = self.more
            return False
        sql, self._pending = " ".join(self._pending), []
        self.prompt = self._first_prompt
        self._run(sql)
        return False

    def _command(self, text: str) -> bool:
        if text in ("\\q", "\\quit"):
            return True
        if text == "\\why":
            last = self.last
            if last is None:
                self._say("no statement yet")
            else:
                self._say(last.explain())
                if last.allowed:
                    self._say(f"ran as: {last.sql}")
        elif text == "\\metrics":
            self._say(json.dumps(self.conn.get_metrics(), indent=2, default=str))
        else:
            self._say("commands: \\why (last decision), \\metrics, \\q (quit)")
        return False

    def _run(self, sql: str) -> None:
        cursor = self.conn.cursor()
        try:
            cursor.execute(sql)
            rows = cursor.fetchall() if cursor.description else []
        except sqlfence.PolicyViolation as denial:
            self.last = denial.decision
            self.denied += 1
            self._say(f"DENIED {denial}")
            return
        except sqlfence.Error as error:
            self.last = cursor.decision
            self._say(f"ERROR {type(error).__name__}: {error}")
            return
        self.last = cursor.decision
        self.conn.commit()
        if cursor.description:
            self._table([column[0] for column in cursor.description], rows)
            note = " (truncated by the row limit)" if cursor.truncated else ""
            self._say(f"({len(rows)} row{'s' if len(rows) != 1 else ''}{note})")
        else:
            self._say(f"OK ({cursor.rowcount} row{'s' if cursor.rowcount != 1 else ''} affected)")

    def _table(self, names: list[str], rows: list[Any]) -> None:
        cells = [[str(value) for value in row] for row in rows]
        widths = [max([len(n), *(len(r[i]) for r in cells)]) for i, n in enumerate(names)]
        self._say(" | ".join(n.ljust(w) for n, w in zip(names, widths, strict=True)))
        self._say("-+-".join("-" * w for w in widths))
        for row in cells:
            self._say(" | ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)))

    def _say(self, text: str) -> None:
        self.stdout.write(text + "\n")


def run(url: str, policy: str | None, agent_id: str | None, tenant: str | None) -> int:
    """Open the connection and run the prompt on standard input; 0 on a clean exit."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", sqlfence.DefaultPolicyWarning)
        conn = sqlfence.connect(url, policy=policy, agent_id=agent_id, tenant=tenant)
    for warning in caught:
        print(f"note: {warning.message}", file=sys.stderr)
    try:
        GuardedShell(conn, stdin=sys.stdin, stdout=sys.stdout).cmdloop()
    finally:
        conn.close()
    return 0

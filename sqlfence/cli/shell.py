"""``sqlfence shell``: an interactive guarded SQL prompt that sees the database as an agent does.

Every line goes through the fence with the given policy and agent identity; denials show
their reasons, results are capped and say when they were truncated. ``\\q`` quits,
``\\d`` shows the decision on the last statement, ``\\m`` the connection's live metrics.
"""

from __future__ import annotations

import cmd
import json
import sys
from typing import Any, TextIO

import sqlfence


class GuardedShell(cmd.Cmd):
    """A line-oriented prompt over one guarded connection."""

    intro = "sqlfence shell: statements go through the fence. \\q quits, \\d decision, \\m metrics."
    prompt = "sqlfence> "

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

    def onecmd(self, line: str) -> bool:
        """Run one line: a statement or a backslash command. True ends the loop."""
        sql = line.strip()
        if not sql:
            return False
        if sql == "EOF":
            return True
        if sql in ("\\q", "quit", "exit"):
            return True
        if sql == "\\d":
            self._say(self.last.explain() if self.last is not None else "no statement yet")
            return False
        if sql == "\\m":
            self._say(json.dumps(self.conn.get_metrics(), indent=2, default=str))
            return False
        cursor = self.conn.cursor()
        try:
            cursor.execute(sql)
            rows = cursor.fetchall() if cursor.description else []
        except sqlfence.PolicyViolation as denial:
            self.last = denial.decision
            self.denied += 1
            self._say(f"DENIED {denial}")
            return False
        except sqlfence.Error as error:
            self.last = cursor.decision
            self._say(f"ERROR {type(error).__name__}: {error}")
            return False
        self.last = cursor.decision
        self.conn.commit()
        if cursor.description:
            self._table([column[0] for column in cursor.description], rows)
            note = " (truncated by the row limit)" if cursor.truncated else ""
            self._say(f"({len(rows)} row{'s' if len(rows) != 1 else ''}{note})")
        else:
            self._say(f"OK ({cursor.rowcount} row{'s' if cursor.rowcount != 1 else ''} affected)")
        return False

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
    conn = sqlfence.connect(url, policy=policy, agent_id=agent_id, tenant=tenant)
    try:
        GuardedShell(conn, stdin=sys.stdin, stdout=sys.stdout).cmdloop()
    finally:
        conn.close()
    return 0

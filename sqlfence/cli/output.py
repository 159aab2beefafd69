"""How the CLI writes: exact text off a terminal, colour and boxed tables on one, JSON on request.

Off a terminal nothing is wrapped, cut or coloured, so a pipe gets the exact text (SQL is never
altered); on a terminal lines are soft-wrapped by the terminal itself, never by inserted
newlines. Errors go to standard error: one line, or one JSON object under ``--json``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from rich.console import Console
from rich.table import Table

# Exit codes, as the top-level help documents them.
OK = 0
FAILED = 1  # denied, verification failed, not ready, a statement failed
USAGE = 2  # bad usage, bad input, or an error that stopped the command
INTERRUPTED = 130  # Ctrl-C (128 + SIGINT)
BROKEN_PIPE = 141  # the reader went away (128 + SIGPIPE), as other Unix tools do


class CommandError(Exception):
    """A command cannot go on: ``message`` for the user, ``code`` to exit with."""

    def __init__(self, message: str, code: int = USAGE) -> None:
        super().__init__(message)
        self.code = code


_CONTROL = str.maketrans({"\n": "\\n", "\r": "\\r", "\t": "\\t"})


def one_line(text: str) -> str:
    """``text`` on one line for a table cell: line breaks and tabs shown as ``\\n``, ``\\t``."""
    return text.translate(_CONTROL)


class Output:
    """Where one command writes its results (``stream``) and its errors (``errors``)."""

    def __init__(
        self, as_json: bool = False, stream: TextIO | None = None, errors: TextIO | None = None
    ) -> None:
        self.json = as_json
        self.stream = stream if stream is not None else sys.stdout
        self.errors = errors if errors is not None else sys.stderr
        self.terminal = _isatty(self.stream)
        self._console: Console | None = None

    @property
    def console(self) -> Console:
        """A rich console over ``stream`` (colour only on a terminal; no markup, no emoji)."""
        if self._console is None:
            self._console = Console(
                file=self.stream, highlight=False, markup=False, emoji=False, soft_wrap=True
            )
        return self._console

    def line(self, text: str = "", style: str | None = None) -> None:
        """One line of text, exactly as given; ``style`` colours it on a terminal."""
        if self.terminal and style:
            self.console.print(text, style=style)
        else:
            self.stream.write(text + "\n")
            self.stream.flush()

    def document(self, value: Any, indent: int | None = None) -> None:
        """One JSON document (one line unless ``indent``)."""
        self.stream.write(json.dumps(value, indent=indent, default=str) + "\n")
        self.stream.flush()

    def table(
        self,
        columns: Sequence[str],
        rows: Sequence[Sequence[str]],
        styles: Sequence[str | None] | None = None,
    ) -> None:
        """A table: boxed and fitted to a terminal, plain aligned columns off one (whole
        values, never cut; line breaks inside a value shown as ``\\n``)."""
        cells = [[one_line(value) for value in row] for row in rows]
        if not self.terminal:
            self.stream.write(plain_table(columns, cells))
            self.stream.flush()
            return
        table = Table(*columns)
        for column in table.columns:
            column.overflow = "fold"  # wrap a long value, never cut it with an ellipsis
        for index, row in enumerate(cells):
            table.add_row(*row, style=(styles[index] if styles else None) or "")
        self.console.print(table, soft_wrap=False)

    def error(self, message: str, kind: str = "error") -> None:
        """An error on standard error: ``sqlfence: message``, or JSON under ``--json``."""
        if self.json:
            self.errors.write(json.dumps({"error": message, "kind": kind}) + "\n")
        else:
            self.errors.write(f"sqlfence: {message}\n")
        self.errors.flush()

    def note(self, message: str) -> None:
        """A remark for a person (standard error; left out under ``--json``)."""
        if not self.json:
            self.errors.write(message + "\n")
            self.errors.flush()


def plain_table(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns separated by two spaces, padded to the widest value; the last is not padded."""
    lines = [list(columns), *(list(row) for row in rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(columns))]
    out = []
    for line in lines:
        padded = [value.ljust(width) for value, width in zip(line[:-1], widths, strict=False)]
        out.append("  ".join([*padded, line[-1]]).rstrip() + "\n")
    return "".join(out)


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a replaced or closed stream
        return False

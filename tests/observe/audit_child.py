"""A process that runs statements through sqlfence.connect with an audit log, driven over
stdin by the crash and full-disk tests (tests/observe/test_crash.py, test_full_disk.py),
and ``Child``, their side of it.

    python -m tests.observe.audit_child DATABASE AUDIT_SETTINGS_JSON

Commands, one per line; each answer is one line on stdout, written when the call returned:

- ``connect``: open the connection -> ``ok`` or ``err <ran> <message>``
- ``stmt``: run the next statement (``SELECT ... WHERE id = ?`` with parameter n, its
  result fetched) -> ``ok <n>`` or ``err <n> <ran> <message>``
- ``loop``: run statements until killed, one ``ok <n>`` line each (an acknowledgement)
- ``close``: close the connection -> ``closed``
- ``exit``: leave without closing anything (the interpreter's exit flushes)
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import sqlite3
import subprocess
import sys
import threading
import warnings
from pathlib import Path
from typing import Any

import sqlfence
from sqlfence.observe.settings import AuditSettings

QUERY = "SELECT id FROM t WHERE id = ?"
REPO = Path(__file__).resolve().parents[2]
ANSWER_TIMEOUT_S = 120.0  # a hang detector: every answer normally comes in milliseconds


def make_database(path: str) -> None:
    """``t(id)`` with a few rows."""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY)")
        conn.executemany("INSERT OR IGNORE INTO t VALUES (?)", [(n,) for n in range(100)])
        conn.commit()


def _say(line: str) -> None:
    sys.stdout.write(line.replace("\n", " ") + "\n")
    sys.stdout.flush()


def main() -> None:
    """Answer commands until ``exit`` or the end of stdin."""
    database, settings_json = sys.argv[1], sys.argv[2]
    settings = AuditSettings.model_validate(json.loads(settings_json))
    warnings.simplefilter("ignore")
    conn: Any = None
    n = 0
    for line in sys.stdin:
        command = line.strip()
        if command == "connect":
            try:
                conn = sqlfence.connect(
                    f"sqlite:///{database}", policy={"allowed_tables": ["t"]}, audit=settings
                )
            except sqlfence.Error as error:
                _say(f"err {getattr(error, 'ran', False)} {type(error).__name__}: {error}")
            else:
                _say("ok")
        elif command in ("stmt", "loop"):
            while True:
                n += 1
                try:
                    conn.execute(QUERY, (n,)).fetchall()
                except sqlfence.Error as error:
                    _say(f"err {n} {getattr(error, 'ran', False)} {type(error).__name__}: {error}")
                else:
                    _say(f"ok {n}")
                if command == "stmt":
                    break
        elif command == "close":
            conn.close()
            _say("closed")
        elif command == "exit":
            return


class Child:
    """The test's side: starts the process, sends commands, reads answers. Never waits
    forever: an answer missing for ``ANSWER_TIMEOUT_S`` kills the child and fails."""

    def __init__(self, database: Path, settings: dict[str, Any], env: dict[str, str]) -> None:
        make_database(str(database))
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.observe.audit_child",
                str(database),
                json.dumps(settings),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
            env={**os.environ, **env},
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._errors: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        self._error_reader = threading.Thread(target=self._read_errors, daemon=True)
        self._error_reader.start()

    @property
    def stderr(self) -> str:
        """What the child wrote on stderr so far (all of it once ``finish`` returned)."""
        return "".join(self._errors)

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def _read_errors(self) -> None:  # a full stderr pipe must never block the child
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self._errors.append(line)

    def send(self, command: str) -> None:
        """Send one command (no answer is read)."""
        assert self.process.stdin is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()

    def answer(self) -> str:
        """The next line the child wrote."""
        try:
            line = self._lines.get(timeout=ANSWER_TIMEOUT_S)
        except queue.Empty:
            self.kill()
            raise AssertionError(
                f"no answer from the child in {ANSWER_TIMEOUT_S} s: hung"
            ) from None
        if line is None:
            raise AssertionError(f"the child ended: {self.finish()}")
        return line

    def ask(self, command: str) -> str:
        """Send ``command`` and return its answer."""
        self.send(command)
        return self.answer()

    def kill(self) -> list[str]:
        """SIGKILL the child; the lines it wrote before dying."""
        self.process.send_signal(signal.SIGKILL)
        self.finish()
        rest = []
        while (line := self._lines.get(timeout=ANSWER_TIMEOUT_S)) is not None:
            rest.append(line)
        return rest

    def finish(self) -> int:
        """Close stdin, wait for the exit (bounded) and its stderr; the exit code."""
        with contextlib.suppress(OSError):
            assert self.process.stdin is not None
            self.process.stdin.close()
        try:
            self.process.wait(ANSWER_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise AssertionError("the child did not exit: hung") from None
        self._error_reader.join(ANSWER_TIMEOUT_S)
        return self.process.returncode


if __name__ == "__main__":
    main()

"""The real ``sqlfence`` command in a child process: over pipes, or on a pseudo-terminal.

Timeouts here only guard against a hang (the test fails with what was read so far); no test
asserts how long anything took.
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Callable
from pathlib import Path

REPOSITORY = Path(__file__).parent.parent.parent
POLICIES = REPOSITORY / "tests" / "policies" / "files"
HANG = 120.0  # seconds before a child that stopped answering fails its test
_ANSI = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\x1b[()][0-9A-Za-z]")


def environment(**extra: str) -> dict[str, str]:
    """The test's environment without what changes how output looks (COLUMNS, NO_COLOR...)."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"COLUMNS", "LINES", "NO_COLOR", "FORCE_COLOR", "TERM", "CLICOLOR"}
    }
    env["TERM"] = "xterm-256color"
    env.update(extra)
    return env


def cli(
    *args: str,
    stdin: str | None = None,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``sqlfence ARGS`` with pipes for its standard streams (not a terminal)."""
    return subprocess.run(
        [sys.executable, "-m", "sqlfence", *args],
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        check=False,
        cwd=cwd,
        env=env if env is not None else environment(),
        timeout=HANG,
    )


def plain(data: bytes) -> str:
    """Terminal output without escape sequences and carriage returns."""
    return _ANSI.sub(b"", data).replace(b"\r", b"").decode("utf-8", "replace")


class NotYet(Exception):
    """Nothing new came within a short wait (the caller may act and wait again)."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


class Terminal:
    """``sqlfence ARGS`` on a pseudo-terminal of ``columns`` columns (its controlling tty)."""

    def __init__(
        self,
        *args: str,
        columns: int = 80,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        environ = env if env is not None else environment()
        pid, fd = pty.fork()
        if pid == 0:  # the child: size the terminal, then become sqlfence
            try:
                fcntl.ioctl(1, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
                if cwd is not None:
                    os.chdir(cwd)
                os.execve(sys.executable, [sys.executable, "-m", "sqlfence", *args], environ)
            finally:
                os._exit(127)
        self.pid = pid
        self.fd = fd
        self.output = b""
        self.code: int | None = None
        self._matched = 0  # where in the plain text the last read_until matched

    def read_until(self, text: str, within: float = HANG) -> str:
        """Read until ``text`` appears after the previous match (escape sequences ignored);
        returns what came between. Raises NotYet when nothing new came for ``within`` s."""
        while text not in plain(self.output)[self._matched :]:
            if not self._read(within):
                raise AssertionError(f"{text!r} never came; output:\n{plain(self.output)}")
        whole = plain(self.output)
        at = whole.index(text, self._matched)
        between, self._matched = whole[self._matched : at], at + len(text)
        return between

    def interrupt(self, answer: str) -> None:
        """Press Ctrl-C until ``answer`` comes. CPython's readline misses a SIGINT that
        arrives while it handles a key, before it waits for the next one (no key would wake
        it); a second Ctrl-C at a prompt that did answer only shows that prompt again."""
        deadline = time.monotonic() + HANG
        while True:
            self.send("\x03")
            try:
                self.read_until(answer, within=1.0)
                return
            except NotYet:
                if time.monotonic() > deadline:
                    raise AssertionError(f"Ctrl-C never answered; output:\n{self.text}") from None

    def send(self, data: str) -> None:
        """Type ``data`` (``\\x03`` is Ctrl-C, ``\\x04`` Ctrl-D)."""
        os.write(self.fd, data.encode())

    def wait(self) -> int:
        """Read everything until the child exits; its exit code."""
        while self._read():
            pass
        _, status = os.waitpid(self.pid, 0)
        os.close(self.fd)
        self.code = os.waitstatus_to_exitcode(status)
        return self.code

    @property
    def text(self) -> str:
        """Everything shown so far, without escape sequences."""
        return plain(self.output)

    def _read(self, within: float = HANG) -> bool:
        ready, _, _ = select.select([self.fd], [], [], within)
        if not ready:
            if within < HANG:
                raise NotYet(text=self.text)
            os.kill(self.pid, 9)
            raise AssertionError(f"the command stopped answering; output:\n{self.text}")
        try:
            chunk = os.read(self.fd, 65536)
        except OSError:  # EIO: the child closed the terminal
            return False
        self.output += chunk
        return bool(chunk)


def wait_until(condition: Callable[[], bool], what: str) -> None:
    """Poll ``condition`` until it holds (a hang guard fails the test after HANG seconds)."""
    deadline = time.monotonic() + HANG
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        time.sleep(0.05)


def terminal_run(*args: str, columns: int = 80, cwd: Path | None = None) -> tuple[int, bytes]:
    """Run ``sqlfence ARGS`` to the end on a terminal; its exit code and raw output."""
    term = Terminal(*args, columns=columns, cwd=cwd)
    code = term.wait()
    return code, term.output

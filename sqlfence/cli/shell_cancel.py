"""Ctrl-C during a statement: the statement is cancelled and the shell goes on.

SQLite runs a statement in C without looking at signals, so the statement runs on a worker
thread while the main thread waits, with a SIGINT handler of its own; after Ctrl-C it calls
the connection's ``cancel()`` until the worker returns (an interrupt that comes before the
statement starts is lost, so it is repeated). psycopg cancels its own statement on the
server when Ctrl-C interrupts it, so other drivers run on the main thread.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from sqlfence.proxy.connection import GuardedConnection

T = TypeVar("T")
_POLL_S = 0.05  # how often an interrupt is repeated until the statement has stopped


class Cancelled(Exception):
    """The user pressed Ctrl-C while a statement ran; it was cancelled."""


class Canceller:
    """Runs work so that Ctrl-C cancels it (raising Cancelled) instead of ending the shell."""

    def __init__(self, connection: GuardedConnection) -> None:
        self._connection = connection
        self._threaded = connection.session.system == "sqlite"

    def run(self, work: Callable[[], T]) -> T:
        """``work()``'s result; raises Cancelled when Ctrl-C stopped it."""
        if not self._threaded:
            try:
                return work()
            except KeyboardInterrupt:
                raise Cancelled from None
        return self._in_thread(work)

    def _in_thread(self, work: Callable[[], T]) -> T:
        outcome: dict[str, Any] = {}
        done = threading.Event()
        cancelled = threading.Event()

        def worker() -> None:
            try:
                outcome["value"] = work()
            except BaseException as error:  # handed to the main thread, raised there
                outcome["error"] = error
            finally:
                done.set()

        def on_interrupt(signum: int, frame: object) -> None:
            cancelled.set()  # no KeyboardInterrupt: it could land anywhere, even in start()

        previous = signal.signal(signal.SIGINT, on_interrupt)
        try:
            thread = threading.Thread(target=worker, name="sqlfence-shell-statement", daemon=True)
            thread.start()
            while not done.wait(_POLL_S):
                if cancelled.is_set():
                    self._connection.cancel()
            thread.join()
        finally:
            signal.signal(signal.SIGINT, previous)
        if cancelled.is_set():
            raise Cancelled
        if "error" in outcome:
            raise outcome["error"]
        return outcome["value"]  # type: ignore[no-any-return]

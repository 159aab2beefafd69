"""A client-side deadline for statements on a server that may stop answering.

A server's own ``statement_timeout`` ends a statement that runs too long, but not one whose
server (or backend process, or network) has stopped answering altogether: the driver waits
on its socket for ever. ``Watchdog`` keeps one thread for the process; a statement watched
past its deadline has its connection's socket shut down, so the driver's wait ends with an
error at once and the caller learns why (``Expired``). The connection is then unusable, as
after any lost connection.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator


class Expired:
    """Set on a watch whose deadline passed: the socket was shut down."""

    __slots__ = ("fired",)

    def __init__(self) -> None:
        self.fired = False


class Watchdog:
    """Shuts down the socket of a statement still running at its deadline. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._heap: list[tuple[float, int]] = []
        self._watches: dict[int, tuple[Callable[[], int], Expired]] = {}
        self._ids = itertools.count()
        self._thread: threading.Thread | None = None

    @contextlib.contextmanager
    def watching(self, fileno: Callable[[], int], seconds: float) -> Iterator[Expired]:
        """Watch the statement run inside the block: after ``seconds`` its socket
        (``fileno()``) is shut down. The yielded ``Expired`` says whether that happened."""
        expired = Expired()
        key = next(self._ids)
        deadline = time.monotonic() + seconds
        with self._lock:
            self._watches[key] = (fileno, expired)
            heapq.heappush(self._heap, (deadline, key))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="sqlfence-deadline", daemon=True
                )
                self._thread.start()
            elif self._heap[0][1] == key:
                self._lock.notify()
        try:
            yield expired
        finally:
            with self._lock:
                self._watches.pop(key, None)

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._heap:
                    self._lock.wait()
                deadline, key = self._heap[0]
                now = time.monotonic()
                if deadline > now:
                    self._lock.wait(deadline - now)
                    continue
                heapq.heappop(self._heap)
                watch = self._watches.pop(key, None)
                if watch is None:
                    continue  # the statement finished in time
                fileno, expired = watch
                expired.fired = True
            _shut_down(fileno)


def _shut_down(fileno: Callable[[], int]) -> None:
    """Shut the socket down (both ways): a blocked read returns at once."""
    try:
        duplicate = os.dup(fileno())
    except Exception:  # already closed: the statement is over anyway
        return
    try:
        sock = socket.socket(fileno=duplicate)
    except OSError:
        os.close(duplicate)
        return
    with contextlib.suppress(OSError), sock:  # closing the socket closes the duplicate
        sock.shutdown(socket.SHUT_RDWR)


WATCHDOG = Watchdog()

"""A daemon thread that hands queued items to a handler in batches.

``submit`` is a deque append (no lock, no wake-up) unless the queue is full or a batch is
ready, so producers on the query path pay about 0.2 us. The worker wakes when ``wake_at``
items are queued (a batch, by default) or every ``interval`` seconds. A full queue either
blocks the producer for at most ``put_timeout`` (audit: a drop is then the owner's to report)
or drops and counts (telemetry, alerts). ``submit_numbered`` gives each item its place in the
stream, for producers that wait until their item was handled (the audit log's ``sync`` mode).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

logger = logging.getLogger("sqlfence.observe")


class _Marker:
    """Queued by ``flush``: set once everything queued before it was handled."""

    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = threading.Event()


class BatchWorker:
    """Runs ``handle(batch)`` on a background thread for items given to ``submit``.

    ``handle`` must not raise (a failure is logged and counted, the batch is lost to that
    handler). ``idle`` is called when the worker wakes with nothing queued (retries are
    scheduled from there). After ``close`` items are handled on the caller's thread, so
    nothing submitted late (by another atexit handler, say) is lost; ``handle`` must then be
    thread-safe. A worker whose thread does not stop within ``close``'s timeout (stuck in
    ``handle``) handles nothing more: what is left stays in ``pending``.
    """

    def __init__(
        self,
        name: str,
        handle: Callable[[list[Any]], None],
        *,
        capacity: int,
        batch_size: int = 1024,
        interval: float = 0.1,
        block: bool = True,
        put_timeout: float | None = None,
        wake_at: int | None = None,
        idle: Callable[[], None] | None = None,
    ) -> None:
        self.name = name
        self._handle = handle
        self._idle = idle
        self._capacity = capacity
        self._batch_size = batch_size
        self._wake_at = batch_size if wake_at is None else wake_at
        self._interval = interval
        self._block = block
        self._put_timeout = put_timeout
        self._items: deque[Any] = deque()
        self._wake = threading.Event()
        self._space = threading.Condition(threading.Lock())
        self._waiting = 0
        self._start_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._stuck = False
        self._order = threading.Lock()
        self.numbered = 0
        # Set by the owner while its handler cannot make progress: a full queue then drops
        # at once instead of making producers wait for room that will not come.
        self.stalled = False
        self.dropped = 0
        self.failures = 0
        self.handled = 0

    # -- producers ------------------------------------------------------------------------

    def submit(self, item: Any) -> bool:
        """Queue ``item``. Returns False when it was dropped (queue full, non-blocking mode)."""
        items = self._items
        if len(items) >= self._capacity and not self._make_room():
            return False
        items.append(item)
        if self._closed:
            self._drain_inline()
            return True
        if self._thread is None:
            self._start()
        if len(items) >= self._wake_at and not self._wake.is_set():
            self._wake.set()
        return True

    def submit_numbered(self, item: Any) -> int:
        """Queue ``item`` and return its number in the stream (1, 2, ...); 0 when dropped.

        Items are handled in number order, so the owner can count what it handled to tell
        a waiting producer that its item is done. Every item must then go through here.
        """
        items = self._items
        if len(items) >= self._capacity and not self._make_room():
            return 0
        with self._order:
            items.append(item)
            self.numbered += 1
            number = self.numbered
        if self._closed:
            self._drain_inline()
        else:
            if self._thread is None:
                self._start()
            if len(items) >= self._wake_at:
                self._wake.set()
        return number

    def _make_room(self) -> bool:
        if self._closed:
            return not self._stuck
        if not self._block or self.stalled:
            self.dropped += 1
            return False
        self._wake.set()
        deadline = None if self._put_timeout is None else time.monotonic() + self._put_timeout
        with self._space:
            self._waiting += 1
            try:
                while len(self._items) >= self._capacity and not self._closed:
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if self.stalled or (remaining is not None and remaining <= 0):
                        self.dropped += 1
                        return False
                    self._space.wait(0.05 if remaining is None else min(remaining, 0.05))
            finally:
                self._waiting -= 1
        return True

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything submitted so far was handled. False on timeout."""
        if self._closed or self._thread is None:
            return not self._items
        marker = _Marker()
        self._items.append(marker)
        self._wake.set()
        return marker.done.wait(timeout)

    def close(self, timeout: float | None = 10.0) -> None:
        """Handle what is queued, stop the thread. Later submits run on the caller's thread.

        Waits at most about ``timeout`` for the queue and again for the thread.
        """
        if self._closed:
            return
        self.flush(timeout)
        self._closed = True
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
            self._stuck = thread.is_alive()
        self._drain_inline()

    @property
    def pending(self) -> int:
        """Items queued and not yet handled."""
        return len(self._items)

    # -- the worker -----------------------------------------------------------------------

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is None and not self._closed:
                thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
                thread.start()
                self._thread = thread

    def _loop(self) -> None:
        items = self._items
        idle = self._idle
        while True:
            if not items:
                if self._closed:
                    return
                self._wake.wait(self._interval)
                self._wake.clear()
                if not items and idle is not None:
                    self._run_idle(idle)
                continue
            batch: list[Any] = []
            markers: list[_Marker] = []
            limit = self._batch_size
            while items and len(batch) < limit:
                item = items.popleft()
                if type(item) is _Marker:
                    markers.append(item)
                    break  # everything before the marker is in this batch
                batch.append(item)
            if batch:
                self._run(batch)
            for marker in markers:
                marker.done.set()
            if self._waiting:
                with self._space:
                    self._space.notify_all()

    def _run_idle(self, idle: Callable[[], None]) -> None:
        try:
            idle()
        except Exception:  # as with batches: log, never stop the thread
            logger.exception("%s: idle work failed", self.name)

    def _drain_inline(self) -> None:
        if self._stuck:  # the thread is inside the handler: do not race it for the queue
            return
        batch: list[Any] = []
        items = self._items
        while True:
            try:
                item = items.popleft()
            except IndexError:
                break
            if type(item) is _Marker:
                item.done.set()
            else:
                batch.append(item)
        if batch:
            self._run(batch)

    def _run(self, batch: list[Any]) -> None:
        try:
            self._handle(batch)
            self.handled += len(batch)
        except Exception:  # a handler bug must not kill the thread that keeps the app going
            self.failures += 1
            logger.exception("%s: a batch of %d items failed", self.name, len(batch))

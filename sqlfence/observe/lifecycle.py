"""Orderly flushing at interpreter exit: observers, then telemetry, then alerts, then audit logs.

Observers hold statements waiting for their rows; telemetry and audit must see those before
they close. One ``atexit`` handler runs the stages in that order. It is re-registered
whenever something registers, so it runs before handlers registered earlier, such as an
OpenTelemetry provider's own shutdown (atexit runs the newest handler first).
"""

from __future__ import annotations

import atexit
import logging
import threading
import weakref
from typing import Protocol

logger = logging.getLogger("sqlfence.observe")

OBSERVERS, TELEMETRY, ALERTS, AUDIT = range(4)


class Flushable(Protocol):
    """Something that must be flushed when the interpreter exits."""

    def at_exit(self) -> None:
        """Flush and stop; called once, at exit."""


_stages: tuple[weakref.WeakSet[Flushable], ...] = tuple(weakref.WeakSet() for _ in range(4))
_lock = threading.Lock()


def register(thing: Flushable, stage: int) -> None:
    """Flush ``thing`` at exit, in ``stage`` (held weakly: a collected thing is skipped)."""
    with _lock:
        _stages[stage].add(thing)
        atexit.unregister(_run)
        atexit.register(_run)


def unregister(thing: Flushable, stage: int) -> None:
    """``thing`` was closed: nothing to do for it at exit."""
    with _lock:
        _stages[stage].discard(thing)


def _run() -> None:
    for stage in _stages:
        for thing in list(stage):
            try:
                thing.at_exit()
            except Exception:  # exit must go on for the others
                logger.exception("flushing %r at exit failed", thing)

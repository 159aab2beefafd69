"""What the package closes when the interpreter exits, in dependency order.

Each stage is closed before the next, so whatever a stage writes on its way out still has
somewhere to go: a connection's ``disconnect`` and a sandbox's ``sandbox.destroyed`` reach
the audit log before it closes. Things are held weakly (a collected one is skipped) and
each is called once, at exit or earlier on SIGTERM.

One ``atexit`` handler runs the stages. It is re-registered whenever something registers,
so it runs before handlers registered earlier, such as an OpenTelemetry provider's own
shutdown (atexit runs the newest handler first). A SIGTERM that nobody else handles
releases what lives outside this process (the stages up to ``SERVERS``) and then exits
through ``SystemExit``, which runs the rest; SIGKILL leaves sandboxes to the reaper.
"""

from __future__ import annotations

import atexit
import logging
import signal
import threading
import weakref
from enum import IntEnum
from types import FrameType
from typing import Protocol

logger = logging.getLogger("sqlfence")


class Stage(IntEnum):
    """When something is closed at exit: lower stages first."""

    CONNECTIONS = 0  # fence connections: each records its disconnect
    SANDBOXES = 1  # sandboxes: destroyed, with the connections they handed out
    SERVERS = 2  # servers a runtime started for this process (shared containers)
    OBSERVERS = 3  # statements still waiting for their rows are recorded
    TELEMETRY = 4  # spans and metrics reach their providers
    ALERTS = 5  # webhooks are delivered
    AUDIT = 6  # the audit log writes what is queued, then ``audit.close``


CONNECTIONS, SANDBOXES, SERVERS, OBSERVERS, TELEMETRY, ALERTS, AUDIT = tuple(Stage)
# What a SIGTERM closes before it exits: what would outlive this process otherwise.
_OUTSIDE = frozenset({SANDBOXES, SERVERS})


class Flushable(Protocol):
    """Something that must be closed when the interpreter exits."""

    def at_exit(self) -> None:
        """Flush and stop; called once, at exit (or on SIGTERM)."""


_stages: tuple[weakref.WeakSet[Flushable], ...] = tuple(weakref.WeakSet() for _ in Stage)
_lock = threading.Lock()
_exiting = False
_sigterm_decided = False


def register(thing: Flushable, stage: Stage) -> None:
    """Close ``thing`` at exit, in ``stage`` (held weakly: a collected thing is skipped)."""
    with _lock:
        _stages[stage].add(thing)
        if not _exiting:
            atexit.unregister(_run)
            atexit.register(_run)
    if stage in _OUTSIDE:
        _install_sigterm()


def unregister(thing: Flushable, stage: Stage) -> None:
    """``thing`` was closed: nothing to do for it at exit."""
    with _lock:
        _stages[stage].discard(thing)


def run(last: Stage = AUDIT) -> None:
    """Close every registered thing of the stages up to ``last``, in order, each once.

    What exit does; a failure is logged and the others still close.
    """
    for stage in Stage:
        if stage > last:
            return
        with _lock:
            things = list(_stages[stage])
            _stages[stage].clear()
        for thing in things:
            try:
                thing.at_exit()
            except Exception:  # exit must go on for the others
                logger.exception("closing %r at exit failed", thing)


def _run() -> None:
    global _exiting  # noqa: PLW0603 - one process-wide exit
    with _lock:
        _exiting = True
    run()


def _install_sigterm() -> None:
    # Only when nobody chose a handler, and only from the main thread (the only one that
    # may set one): turning SIGTERM into SystemExit runs the atexit handler.
    global _sigterm_decided  # noqa: PLW0603 - one process-wide handler
    if _sigterm_decided or threading.current_thread() is not threading.main_thread():
        return
    _sigterm_decided = True
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return

    def _on_sigterm(signum: int, frame: FrameType | None) -> None:
        run(max(_OUTSIDE))
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _on_sigterm)

"""Where signed audit events go besides the files: stdout, a callable, stdlib logging, structlog.

Every sink gets the batch's signed lines and, when it asks for them, the decoded events
(with ``seq``, ``prev`` and ``mac``), so a consumer can verify or forward them as they are.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from typing import Any, Protocol

import structlog


class Sink(Protocol):
    """One destination of signed audit events."""

    name: str
    wants_events: bool

    def write(self, lines: list[bytes], events: list[dict[str, Any]] | None) -> None:
        """Deliver one batch; ``events`` is given when ``wants_events`` is true."""


class StdoutSink:
    """JSON Lines on standard output (the current ``sys.stdout``)."""

    name = "stdout"
    wants_events = False

    def write(self, lines: list[bytes], events: list[dict[str, Any]] | None) -> None:
        """Write the batch and flush."""
        out = sys.stdout
        out.write(b"".join(lines).decode("ascii"))
        out.flush()


class CallableSink:
    """Calls ``function(event)`` once per event, on the writer thread."""

    wants_events = True

    def __init__(self, function: Callable[[dict[str, Any]], None]) -> None:
        self._function = function
        self.name = f"callable:{getattr(function, '__qualname__', repr(function))}"

    def write(self, lines: list[bytes], events: list[dict[str, Any]] | None) -> None:
        """Call the function for each event."""
        for event in events or ():
            self._function(event)


class LoggingSink:
    """Stdlib logging: logger ``sqlfence.audit``, INFO, the JSON line as message, the event
    as ``record.audit_event``."""

    name = "logging"
    wants_events = True

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self._logger = logger or logging.getLogger("sqlfence.audit")

    def write(self, lines: list[bytes], events: list[dict[str, Any]] | None) -> None:
        """Log each event (skipped cheaply when INFO is off for the logger)."""
        if not self._logger.isEnabledFor(logging.INFO):
            return
        for line, event in zip(lines, events or (), strict=False):
            self._logger.info("%s", line.decode("ascii").rstrip("\n"), extra={"audit_event": event})


class StructlogSink:
    """The application's structlog pipeline: ``log.info(event_type, **event)``."""

    name = "structlog"
    wants_events = True

    def __init__(self) -> None:
        self._logger = structlog.get_logger("sqlfence.audit")

    def write(self, lines: list[bytes], events: list[dict[str, Any]] | None) -> None:
        """Log each event through structlog."""
        for event in events or ():
            fields = dict(event)
            fields.pop("event", None)  # structlog's own positional key
            self._logger.info(str(fields.get("event_type", "audit")), **fields)


def build_sink(spec: str | Callable[[dict[str, Any]], None]) -> Sink | None:
    """The sink for one entry of ``AuditSettings.sinks`` (None for ``file``: AuditLog owns it)."""
    if spec == "file":
        return None
    if spec == "stdout":
        return StdoutSink()
    if spec == "logging":
        return LoggingSink()
    if spec == "structlog":
        return StructlogSink()
    if callable(spec):
        return CallableSink(spec)
    raise ValueError(f"unknown audit sink {spec!r}")  # pragma: no cover - settings validate


def decode(lines: list[bytes]) -> list[dict[str, Any]]:
    """The events of signed lines."""
    return [json.loads(line) for line in lines]

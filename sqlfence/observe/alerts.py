"""Alerts and their delivery: callbacks and webhooks (HTTP POST of JSON), off the query path.

``AlertDispatcher.dispatch`` is a queue append; a daemon thread calls the callbacks and posts
to the webhooks with a timeout and retries (exponential backoff on network errors and 5xx,
none on 4xx). When the queue is full an alert is dropped and counted rather than making a
query wait.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlfence.observe import lifecycle
from sqlfence.observe.events import iso_timestamp
from sqlfence.observe.worker import BatchWorker

logger = logging.getLogger("sqlfence.alerts")
query_logger = logging.getLogger("sqlfence.queries")

SLOW_QUERY = "slow_query"
DENIAL_BURST = "denial_burst"
ERROR_RATE = "error_rate"
RESOURCE = "resource"
_DOWN_FOR_S = 60.0  # after failing every retry, a webhook is tried once per alert this long


@dataclass(frozen=True)
class Alert:
    """Something an operator should look at. ``to_dict`` is the webhook's JSON body."""

    kind: str
    message: str
    severity: str = "warning"
    value: float | None = None
    threshold: float | None = None
    agent_id: str | None = None
    tenant: str | None = None
    sandbox: str | None = None
    connection_id: int | None = None
    details: dict[str, Any] = field(default_factory=dict)
    timestamp: str = field(default_factory=lambda: iso_timestamp(time.time_ns()))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict, ``source: sqlfence`` added."""
        return {"source": "sqlfence", **asdict(self)}


class AlertDispatcher:
    """Delivers alerts to callbacks and webhooks on its own thread."""

    def __init__(
        self,
        callbacks: tuple[Callable[..., Any], ...] = (),
        webhooks: tuple[str, ...] = (),
        *,
        headers: Mapping[str, str] | None = None,
        timeout: float = 5.0,
        retries: int = 3,
        backoff: float = 0.5,
        capacity: int = 10_000,
    ) -> None:
        self.callbacks = callbacks
        self.webhooks = webhooks
        self._headers = {"Content-Type": "application/json", **(headers or {})}
        self._timeout = timeout
        self._retries = retries
        self._backoff = backoff
        self.delivered = 0
        self.failures = 0
        self._deadline: float | None = None  # set by close(): nothing waits past it
        self._down_until: dict[str, float] = {}  # webhooks that failed every retry lately
        self._worker = BatchWorker(
            "sqlfence-alerts",
            self._deliver,
            capacity=capacity,
            batch_size=64,
            interval=0.05,
            block=False,
        )
        lifecycle.register(self, lifecycle.ALERTS)

    def dispatch(self, alert: Alert) -> None:
        """Queue ``alert`` for delivery (never blocks)."""
        if not self._worker.submit(alert):
            logger.error("alert queue full, alert dropped: %s", alert.message)

    def log_query(self, line: str) -> None:
        """Queue one line for the ``sqlfence.queries`` logger (``log_all_queries``)."""
        self._worker.submit(line)

    @property
    def dropped(self) -> int:
        """Alerts (and query log lines) dropped because the queue was full."""
        return self._worker.dropped

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every queued alert was delivered (or given up on)."""
        return self._worker.flush(timeout)

    def close(self) -> None:
        """Deliver what is queued within one webhook ``timeout`` in all, stop the thread.

        A webhook that does not answer never holds ``close()`` (or the interpreter's exit)
        longer than that: what could not be delivered by then is counted in ``failures``.
        """
        budget = max(self._timeout, 0.1)
        self._deadline = time.monotonic() + budget
        self._worker.close(timeout=budget + 0.5)
        lifecycle.unregister(self, lifecycle.ALERTS)

    def at_exit(self) -> None:
        """Interpreter exit: deliver what is queued."""
        self.close()

    def _deliver(self, items: list[Any]) -> None:
        for item in items:
            if isinstance(item, str):
                query_logger.info("%s", item)
                continue
            logger.warning("%s alert: %s", item.kind, item.message)
            for callback in self.callbacks:
                try:
                    callback(item)
                    self.delivered += 1
                except Exception:
                    self.failures += 1
                    logger.exception("alert callback %r failed", callback)
            if self.webhooks:
                body = json.dumps(item.to_dict(), default=str).encode()
                for url in self.webhooks:
                    if self._post(url, body):
                        self.delivered += 1
                    else:
                        self.failures += 1

    def _remaining(self) -> float:
        """Seconds a post may take now: the timeout, or what is left before close's end."""
        if self._deadline is None:
            return self._timeout
        return min(self._timeout, self._deadline - time.monotonic())

    def _post(self, url: str, body: bytes) -> bool:
        delay = self._backoff
        # A webhook that just failed every retry gets one attempt per alert until it answers
        # again, so a dead receiver does not cost each alert the whole backoff.
        retries = 0 if self._down_until.get(url, 0.0) > time.monotonic() else self._retries
        reason = "closing: no time left to deliver"
        attempt = 0
        for attempt in range(retries + 1):
            timeout = self._remaining()
            if timeout <= 0:
                break
            request = urllib.request.Request(url, data=body, headers=self._headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=timeout) as response:
                    response.read()
                self._down_until.pop(url, None)
                return True
            except urllib.error.HTTPError as error:
                if error.code < 500:  # the receiver refuses it; asking again will not help
                    logger.error("webhook %s refused an alert: HTTP %s", url, error.code)
                    return False
                reason = f"HTTP {error.code}"
            except (OSError, ValueError) as error:
                reason = str(error)
            if attempt < retries:
                time.sleep(max(0.0, min(delay, self._remaining())))
                delay *= 2
        was_down = url in self._down_until
        self._down_until[url] = time.monotonic() + _DOWN_FOR_S
        if not was_down:  # said once per outage; ``failures`` counts every alert
            logger.error("webhook %s unreachable after %d attempts: %s", url, attempt + 1, reason)
        return False

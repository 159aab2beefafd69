"""Alert delivery (sqlfence/observe/alerts.py): webhooks on a background thread, with
timeout and retry, never blocking a query."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from sqlfence.observe.alerts import Alert, AlertDispatcher
from sqlfence.observe.fanout import build_observer
from tests.observe.conftest import DENIED, SELECT, execute, make_session


class _Receiver(http.server.BaseHTTPRequestHandler):
    """Answers POSTs with the next status of ``statuses`` (200 when exhausted)."""

    received: list[dict[str, Any]]
    statuses: list[int]
    gate: threading.Event

    def do_POST(self) -> None:
        self.gate.wait(10)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        status = self.statuses.pop(0) if self.statuses else 200
        if status == 200:
            self.received.append(json.loads(body))
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


class Webhook:
    """A webhook receiver on 127.0.0.1 started by the test."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.statuses: list[int] = []
        self.gate = threading.Event()
        self.gate.set()
        handler = type(
            "Handler",
            (_Receiver,),
            {
                "received": self.received,
                "statuses": self.statuses,
                "gate": self.gate,
            },
        )
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alerts"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.gate.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    """A running webhook receiver."""
    receiver = Webhook()
    yield receiver
    receiver.stop()


def test_slow_query_and_denial_burst_alerts_reach_the_webhook(webhook: Webhook) -> None:
    """Through the observer, a slow statement and a burst of denials are POSTed as JSON."""
    observer = build_observer(
        monitoring={
            "alert_on_slow_query_ms": 0.000001,
            "alert_on_denials": 3,
            "webhook": webhook.url,
        },
        telemetry=False,
    )
    session = make_session()
    observer.connected(session)
    execute(observer, session, SELECT)
    for _ in range(3):
        execute(observer, session, DENIED)
    observer.disconnected(session)
    observer.close()
    kinds = sorted(alert["kind"] for alert in webhook.received)
    assert kinds == ["denial_burst", "slow_query"]
    slow = next(a for a in webhook.received if a["kind"] == "slow_query")
    assert slow["source"] == "sqlfence"
    assert slow["agent_id"] == "agent-1"
    assert slow["details"]["summary"] == "SELECT orders"
    assert slow["threshold"] == 0.000001


def test_server_errors_are_retried(webhook: Webhook) -> None:
    """A 5xx answer is retried with backoff until it succeeds."""
    webhook.statuses.extend([503, 500])
    dispatcher = AlertDispatcher(webhooks=(webhook.url,), retries=3, backoff=0.01)
    dispatcher.dispatch(Alert("slow_query", "took long"))
    dispatcher.close()
    assert [a["message"] for a in webhook.received] == ["took long"]
    assert dispatcher.delivered == 1


def test_client_errors_are_not_retried(webhook: Webhook) -> None:
    """A 4xx answer means the receiver refuses: no retry, counted as a failure."""
    webhook.statuses.extend([400, 400])
    dispatcher = AlertDispatcher(webhooks=(webhook.url,), retries=3, backoff=0.01)
    dispatcher.dispatch(Alert("slow_query", "refused"))
    dispatcher.close()
    assert webhook.statuses == [400]  # asked once
    assert dispatcher.failures == 1


def test_an_unreachable_webhook_gives_up_after_the_retries() -> None:
    """Connection refused: retried, then counted as a failure; nothing raises."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    dispatcher = AlertDispatcher(
        webhooks=(f"http://127.0.0.1:{port}/",), retries=1, backoff=0.01, timeout=1
    )
    dispatcher.dispatch(Alert("resource", "cpu"))
    dispatcher.close()
    assert dispatcher.failures == 1


def test_dispatch_returns_before_delivery(webhook: Webhook) -> None:
    """dispatch() only queues: it returns while the receiver is still holding the request."""
    webhook.gate.clear()
    dispatcher = AlertDispatcher(webhooks=(webhook.url,), timeout=10)
    dispatcher.dispatch(Alert("slow_query", "queued"))
    assert webhook.received == []
    webhook.gate.set()
    dispatcher.close()
    assert len(webhook.received) == 1


def test_a_full_alert_queue_drops_and_counts() -> None:
    """Alerts never make a query wait: past the queue's capacity they are dropped, counted."""
    hold = threading.Event()
    dispatcher = AlertDispatcher(callbacks=(lambda alert: hold.wait(5),), capacity=2)
    for _ in range(10):
        dispatcher.dispatch(Alert("slow_query", "x"))
    assert dispatcher.dropped >= 7
    hold.set()
    dispatcher.close()


def test_a_webhook_that_never_answers_does_not_hold_close() -> None:
    """A receiver that takes the connection and never answers: close() gives up within one
    webhook timeout in all (not each alert's retries), counting the undelivered alerts."""
    import socket

    with socket.socket() as dead:
        dead.bind(("127.0.0.1", 0))
        dead.listen(64)  # connections complete in the backlog; nothing ever answers
        url = f"http://127.0.0.1:{dead.getsockname()[1]}/"
        dispatcher = AlertDispatcher(webhooks=(url,), retries=3, backoff=0.5, timeout=1)
        for n in range(20):
            dispatcher.dispatch(Alert("resource", f"cpu {n}"))
        closing = threading.Thread(target=dispatcher.close, daemon=True)
        closing.start()
        # A hang detector, far below the old cost (20 alerts x 4 attempts x 1 s + backoff).
        closing.join(30)
        assert not closing.is_alive(), "close() waited on a dead webhook"
    assert dispatcher.failures == 20
    assert dispatcher.delivered == 0


def test_a_webhook_that_failed_every_retry_is_tried_once_per_alert(webhook: Webhook) -> None:
    """After a webhook failed all its retries, the next alerts try it once each until it
    answers again (then retries return)."""
    webhook.statuses.extend([503] * 4 + [503] + [503])
    dispatcher = AlertDispatcher(webhooks=(webhook.url,), retries=3, backoff=0.01)
    dispatcher.dispatch(Alert("slow_query", "first"))  # 4 attempts, all 503
    dispatcher.flush(10)
    dispatcher.dispatch(Alert("slow_query", "second"))  # down: one attempt (503)
    dispatcher.flush(10)
    dispatcher.dispatch(Alert("slow_query", "third"))  # one attempt (503)
    dispatcher.flush(10)
    assert webhook.statuses == []
    assert dispatcher.failures == 3
    dispatcher.dispatch(Alert("slow_query", "fourth"))  # answers: 200, delivered
    dispatcher.close()
    assert [a["message"] for a in webhook.received] == ["fourth"]

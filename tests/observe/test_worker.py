"""The batching background thread (sqlfence/observe/worker.py)."""

from __future__ import annotations

import threading
from typing import Any

from sqlfence.observe.worker import BatchWorker


def test_items_are_handled_in_order_in_batches() -> None:
    """Everything submitted is handled once, in order, in batches of at most batch_size."""
    batches: list[list[Any]] = []
    worker = BatchWorker("t", batches.append, capacity=1000, batch_size=10)
    for i in range(95):
        worker.submit(i)
    assert worker.flush(5)
    assert [item for batch in batches for item in batch] == list(range(95))
    assert max(len(batch) for batch in batches) <= 10
    worker.close()


def test_after_close_items_are_handled_on_the_callers_thread() -> None:
    """Nothing submitted after close() is lost: it is handled right away."""
    handled: list[tuple[Any, str]] = []
    worker = BatchWorker(
        "t",
        lambda b: handled.extend((i, threading.current_thread().name) for i in b),
        capacity=10,
    )
    worker.submit(1)
    worker.close()
    worker.submit(2)
    assert handled[0] == (1, "t")
    assert handled[1] == (2, threading.current_thread().name)


def test_a_failing_handler_is_counted_and_the_thread_survives() -> None:
    """A batch whose handler raises is counted; later batches are still handled."""
    seen: list[int] = []

    def handle(batch: list[int]) -> None:
        if 0 in batch:
            raise RuntimeError("bad batch")
        seen.extend(batch)

    worker = BatchWorker("t", handle, capacity=10, batch_size=1)
    worker.submit(0)
    worker.flush(5)
    worker.submit(1)
    worker.close()
    assert worker.failures == 1
    assert seen == [1]


def test_non_blocking_mode_drops_when_full() -> None:
    """With block=False a full queue drops and counts instead of waiting."""
    gate = threading.Event()

    def handle(batch: list[int]) -> None:
        gate.wait(5)

    worker = BatchWorker("t", handle, capacity=3, batch_size=1, block=False)
    results = [worker.submit(i) for i in range(10)]
    assert results.count(False) == worker.dropped >= 6
    gate.set()
    worker.close()


def test_blocking_mode_waits_for_room() -> None:
    """With block=True a producer waits for the worker instead of dropping."""
    handled: list[int] = []
    gate = threading.Event()

    def handle(batch: list[int]) -> None:
        gate.wait(5)
        handled.extend(batch)

    worker = BatchWorker("t", handle, capacity=2, batch_size=1)
    producer = threading.Thread(target=lambda: [worker.submit(i) for i in range(6)])
    producer.start()
    producer.join(0.2)
    assert producer.is_alive()  # blocked on the full queue
    gate.set()
    producer.join(5)
    worker.close()
    assert handled == list(range(6))
    assert worker.dropped == 0

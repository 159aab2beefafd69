"""Audit writer throughput and the observer's per-statement cost.

1. Writer: signed JSON Lines events per second to a local file, fed by one and by eight
   producer threads, in ``batched`` durability (the target is at least 100,000 events/s)
   and in ``sync``, where each submit returns once its event is fdatasynced (one sync
   carries the events that arrived meanwhile: group commit).
2. Observer: CPU time per statement (started + finished + fetched) on the query's thread,
   and for all threads together (background writers included), for each configuration.

Usage: ``python benchmarks/audit.py [--events N] [--sync-events N] [--directory DIR]
[--no-write]``; it writes the ``audit`` section of BENCHMARKS.md unless told not to. The
log goes to a temporary directory under ``--directory`` (default: the system's temporary
directory), whose file system decides the sync numbers.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common import machine, table, write_section

from sqlfence.observe.audit import AuditLog
from sqlfence.observe.fanout import build_observer
from sqlfence.observe.observer import Observer, Session
from sqlfence.observe.records import StatementRecord
from sqlfence.observe.settings import AuditSettings
from sqlfence.policies.engine import Decision
from sqlfence.sql.analysis import StatementFacts

os.environ.setdefault("SQLFENCE_AUDIT_KEY", "benchmark-key-of-the-audit-chain")


def _decision(n: int) -> Decision:
    """An allowed SELECT on table ``orders_<n>``, as the policy engine decides it."""
    facts = StatementFacts(
        operation="select", tables=frozenset({f"main.orders_{n}"}), summary=f"SELECT orders_{n}"
    )
    sql = f"SELECT id, name, total FROM orders_{n} WHERE customer_id = ? AND status = ?"
    return Decision(allowed=True, sql=sql, facts=facts)


def _records(count: int) -> list[StatementRecord]:
    """Distinct, realistic statement records (several sessions, decisions and texts)."""
    sessions = [Session("sqlite", f"agent-{n}", "acme", "main") for n in range(8)]
    decisions = [_decision(n) for n in range(32)]
    records = []
    for n in range(count):
        decision = decisions[n % len(decisions)]
        record = StatementRecord(
            sessions[n % len(sessions)], decision.sql, decision, 0.0, time.time_ns(), n
        )
        record.duration = 0.000_321
        record.await_rows()
        record.add_rows(n % 50, False)
        record.parameterised = True
        records.append(record)
    return records


def writer_throughput(events: int, producers: int, durability: str, where: str | None) -> float:
    """Events per second from the first submit until the last event is on disk."""
    pool = _records(4096)
    with tempfile.TemporaryDirectory(dir=where) as directory:
        log = AuditLog(AuditSettings(directory=Path(directory), durability=durability))  # type: ignore[arg-type]
        share = events // producers

        def produce(offset: int) -> None:
            submit = log.submit
            for n in range(share):
                submit(pool[(offset + n) % len(pool)])

        threads = [threading.Thread(target=produce, args=(p * 512,)) for p in range(producers)]
        start = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        log.flush()
        elapsed = time.perf_counter() - start
        log.close()
        return share * producers / elapsed


def file_system(where: str | None) -> str:
    """The type of the file system the benchmark writes to (``df -T``), or ``?``."""
    try:
        out = subprocess.run(
            ["df", "-T", where or tempfile.gettempdir()], capture_output=True, text=True, check=True
        ).stdout.splitlines()
        return out[1].split()[1]
    except (OSError, subprocess.CalledProcessError, IndexError):
        return "?"


def observer_cost(observer: Observer, statements: int) -> tuple[float, float]:
    """Microseconds of CPU per statement: (query's thread, all threads)."""
    session = Session("sqlite", "agent-1", "acme", "main")
    observer.connected(session)
    started, finished, fetched = observer.started, observer.finished, observer.fetched
    decision = _decision(0)
    sql, params = decision.sql, (1,)
    best = float("inf")
    process_start = time.process_time()
    rounds = 5
    for _ in range(rounds):
        thread_start = time.thread_time()
        for _ in range(statements):
            token = started(session, sql, decision, params)
            finished(session, token, -1, None)
            fetched(session, token, 1, False)
        best = min(best, time.thread_time() - thread_start)
    observer.disconnected(session)
    observer.close()  # waits for the background threads: their CPU is counted below
    total = time.process_time() - process_start
    return best / statements * 1e6, total / (statements * rounds) * 1e6


def _install_sdk() -> None:
    """A TracerProvider (batch processor, exporter that discards) and a MeterProvider."""
    from opentelemetry import metrics, trace
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    class Discard(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(Discard()))
    trace.set_tracer_provider(provider)
    metrics.set_meter_provider(MeterProvider(metric_readers=[InMemoryMetricReader()]))


def main() -> None:
    """Run both benchmarks, print them, and write them to BENCHMARKS.md."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--sync-events", type=int, default=4_000)
    parser.add_argument("--directory", help="where the log files go (a temporary directory)")
    parser.add_argument("--statements", type=int, default=20_000)
    parser.add_argument("--no-write", action="store_true", help="do not update BENCHMARKS.md")
    args = parser.parse_args()

    writer_rows = []
    for producers in (1, 8):
        batched = writer_throughput(args.events, producers, "batched", args.directory)
        synced = writer_throughput(args.sync_events, producers, "sync", args.directory)
        label = f"{producers} producer thread{'s' if producers > 1 else ''}"
        writer_rows.append([label, f"{batched:,.0f}", f"{synced:,.0f}"])
    fs = file_system(args.directory)
    writer = table(
        [
            f"audit writer, signed JSON Lines to a local file ({fs})",
            "batched events/s",
            "sync events/s",
        ],
        writer_rows,
    )
    print(writer, end="\n\n")

    directory = tempfile.mkdtemp()
    configurations: list[tuple[str, Callable[[], Observer]]] = [
        ("no-op Observer (the floor)", Observer),
        ("monitor only (audit off, no SDK)", build_observer),
        ("audit to file + monitor (no SDK)", lambda: build_observer(audit=directory)),
    ]
    rows = []
    for name, make in configurations:
        rows.append([name, *observer_cost(make(), args.statements)])
    _install_sdk()
    for name, make in [
        ("OTel SDK spans + metrics + monitor", build_observer),
        ("audit to file + OTel SDK + monitor", lambda: build_observer(audit=directory)),
    ]:
        rows.append([name, *observer_cost(make(), args.statements)])
    hooks = table(
        ["observer (started + finished + fetched)", "query thread us", "all threads us"], rows
    )
    print(hooks)
    if not args.no_write:
        body = (
            "## Audit writer and observer cost (`benchmarks/audit.py`)\n\n"
            f"Measured {machine()}.\n\n{writer}\n\n"
            "`batched` (the default durability): events per second from the first submit "
            "until the last is written. `sync`: each submit returns once its event is written "
            "and fdatasynced, so one producer thread gets one sync per event, and eight share "
            "syncs (group commit); the numbers are the disk's, and vary with it.\n\n"
            f"{hooks}\n\n"
            "CPU time per statement: `query thread` is what the statement's own thread spends "
            "in the hooks; `all threads` adds the background audit writer and telemetry "
            "worker (JSON, HMAC, file writes, SDK spans and metrics), which run while the "
            "query's thread waits on the database."
        )
        print(f"\nwritten to {write_section('audit', body)}")


if __name__ == "__main__":
    main()

"""Per-query overhead of the fence on a hot path: 20,000 indexed point selects on SQLite.

Variants, run interleaved in rounds over the same random ids (``SELECT ... FROM t WHERE
id = ?`` on a file of 10,000 rows, ``fetchone`` each):

- raw ``sqlite3``;
- ``sqlfence.connect`` with a cached decision (a policy allowing the table, the default
  observer), and the same with the do-nothing observer, to tell the fence from recording;
- ``opentelemetry-instrumentation-dbapi`` (``instrument_connection``) with the run's SDK
  setup: a ``TracerProvider`` with a ``BatchSpanProcessor`` and a ``MeterProvider``;
- the full pipeline (policy + audit to a file + monitor + OpenTelemetry SDK span and
  metrics), with the same SDK setup as the dbapi variant (``sdk_setup``).

Each execute + fetchone is timed with ``perf_counter_ns``; the report gives the median per
query, and each variant's wall and CPU time (every thread) per query with its background
work drained. Targets (issue 15): a cached guarded execute with the default observer adds at
most 2 us to raw (median); the full pipeline costs no more CPU (every thread, background work
drained) than dbapi instrumentation, and at most 15 us more than the SDK floor (one bare span
and one histogram record through the same setup) measured in the same run.

    python benchmarks/overhead.py [--queries N] [--rounds R] [--without-dbapi]

``--without-dbapi`` leaves the dbapi variant out (a quicker run for the fence and the
pipeline against the SDK floor; nothing is written to BENCHMARKS.md then).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import random
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common import machine, median, percentile, table, us, write_section

import sqlfence

ROWS = 10_000
QUERY = "SELECT id, name, score FROM t WHERE id = ?"
POLICY = {"allowed_tables": ["t"]}  # read-only, 1,000-row limit and the rest by default
TARGET_ADDED_US = 2.0
TARGET_PIPELINE_RATIO = 1.0  # the full pipeline's added CPU at most what dbapi's adds
TARGET_ABOVE_FLOOR_US = 15.0  # the full pipeline's CPU at most this above the SDK floor
WARMUP = 500


@dataclass
class Variant:
    """A named way of running the query; ``cursor`` has PEP 249 ``execute``/``fetchone``."""

    name: str
    cursor: Any
    note: str = ""
    samples: list[int] = field(default_factory=list)
    round_medians: list[float] = field(default_factory=list)
    wall_ns: int = 0  # the whole loops, timer calls and checks included, and the drain
    cpu_ns: int = 0  # process CPU time (every thread) over the same span
    drain: Callable[[], None] | None = None  # waits for background recording to finish
    close: Callable[[], None] = lambda: None
    evidence: Callable[[], str] = lambda: ""  # what the variant recorded, read after closing


def create_database(path: Path, seed: int) -> None:
    """``t(id INTEGER PRIMARY KEY, name, score)`` with ROWS rows."""
    rng = random.Random(seed)
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT NOT NULL, score REAL)")
        conn.executemany(
            "INSERT INTO t VALUES (?, ?, ?)",
            ((i, f"name-{i:05d}", rng.random() * 100) for i in range(1, ROWS + 1)),
        )
        conn.commit()


# -- the variants --------------------------------------------------------------------------


def raw_variant(path: Path) -> Variant:
    conn = sqlite3.connect(path, check_same_thread=False)
    return Variant("raw sqlite3", conn.cursor(), "sqlite3 as shipped", close=conn.close)


def fence_variant(path: Path) -> Variant:
    conn = sqlfence.connect(f"sqlite:///{path}", policy=POLICY)
    observer = type(conn._observer).__name__  # which observer "default" means today
    cursor = conn.cursor()
    decision = conn.decide(QUERY)
    note = f"cached decision, default observer ({observer}); sends: {decision.sql}"
    return Variant("sqlfence (cached decision)", cursor, note, close=conn.close)


def bare_fence_variant(path: Path) -> Variant:
    """The fence alone: the same policy with the do-nothing base ``Observer``."""
    from sqlfence.observe.observer import NULL_OBSERVER

    conn = sqlfence.connect(f"sqlite:///{path}", policy=POLICY, observer=NULL_OBSERVER)
    note = "cached decision, observer=NULL_OBSERVER: the fence without any recording"
    return Variant("sqlfence (cached, null observer)", conn.cursor(), note, close=conn.close)


@dataclass
class SDKSetup:
    """One OpenTelemetry SDK setup, given to every instrumented variant of a run.

    Spans go through a ``BatchSpanProcessor`` (the usual production choice) to an exporter
    that counts and discards them; metrics to an in-memory reader that the report reads.
    """

    tracer_provider: Any
    meter_provider: Any
    reader: Any
    exported: list[int]

    def flush(self) -> None:
        self.tracer_provider.force_flush()

    def shutdown(self) -> None:
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()


def sdk_setup() -> SDKSetup:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        SpanExporter,
        SpanExportResult,
    )

    exported = [0]

    class Counting(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            exported[0] += len(spans)
            return SpanExportResult.SUCCESS

    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(Counting()))
    reader = InMemoryMetricReader()
    return SDKSetup(tracer_provider, MeterProvider(metric_readers=[reader]), reader, exported)


def metric_points(reader: Any, sqlfence_scope: bool) -> int:
    """Durations recorded by sqlfence's instrumentation scope, or by any other scope."""
    data = reader.get_metrics_data()
    return sum(
        sum(point.count for point in metric.data.data_points if hasattr(point, "count"))
        for resource in (data.resource_metrics if data else ())
        for scoped in resource.scope_metrics
        if (scoped.scope.name == "sqlfence") == sqlfence_scope
        for metric in scoped.metrics
        if metric.name == "db.client.operation.duration"
    )


def otel_variant(path: Path, sdk: SDKSetup) -> Variant:
    # The stable database conventions, which sqlfence follows: with them (and only with
    # them) the dbapi instrumentation records the db.client.operation.duration and
    # db.client.response.returned_rows histograms too, so both variants emit the same signals.
    os.environ["OTEL_SEMCONV_STABILITY_OPT_IN"] = "database"
    from opentelemetry.instrumentation.dbapi import instrument_connection

    conn = instrument_connection(
        "sqlite3",
        sqlite3.connect(path, check_same_thread=False),
        database_system="sqlite",
        tracer_provider=sdk.tracer_provider,
        meter_provider=sdk.meter_provider,
    )
    note = (
        "instrument_connection with the run's SDK setup and OTEL_SEMCONV_STABILITY_OPT_IN="
        "database (span + db.client.* histograms, as sqlfence)"
    )

    def evidence() -> str:
        return f"{metric_points(sdk.reader, False):,} durations"

    return Variant(
        "OTel dbapi instrumentation",
        conn.cursor(),
        note,
        close=conn.close,
        drain=sdk.flush,
        evidence=evidence,
    )


def full_pipeline(path: Path, workdir: Path, sdk: SDKSetup) -> Variant:
    """Policy + audit to a file + monitor + OpenTelemetry SDK span and metrics.

    The telemetry uses the run's SDK setup (the same providers as the dbapi variant).
    ``evidence`` says how many spans, metric points and audit bytes the run produced, so a
    pipeline that silently records nothing cannot pass for a fast one.
    """
    from sqlfence.observe.settings import TelemetrySettings

    audit = workdir / "audit"
    audit.mkdir(exist_ok=True)
    telemetry = TelemetrySettings(
        tracer_provider=sdk.tracer_provider, meter_provider=sdk.meter_provider
    )
    conn = sqlfence.connect(
        f"sqlite:///{path}",
        policy=POLICY,
        audit=str(audit),
        monitoring={"alert_on_slow_query_ms": 1000, "log_all_queries": True},
        telemetry=telemetry,
    )
    note = f"audit to {audit.name}/, monitoring, OTel span + metrics with the run's SDK setup"

    def evidence() -> str:
        written = sum(f.stat().st_size for f in audit.rglob("*") if f.is_file())
        durations = metric_points(sdk.reader, True)
        return f"{durations:,} durations, {written:,} audit bytes"

    def drain() -> None:
        conn.flush()
        sdk.flush()

    return Variant(
        "sqlfence full pipeline",
        conn.cursor(),
        note,
        close=conn.close,
        evidence=evidence,
        drain=drain,
    )


# -- measuring -----------------------------------------------------------------------------


def run_queries(variant: Variant, ids: list[int], record: bool) -> None:
    """Execute + fetchone per id, each timed on its own."""
    cursor = variant.cursor
    execute, fetchone = cursor.execute, cursor.fetchone
    clock = time.perf_counter_ns
    samples = []
    cpu_began = time.process_time_ns()
    began = clock()
    for key in ids:
        params = (key,)
        start = clock()
        execute(QUERY, params)
        row = fetchone()
        samples.append(clock() - start)
        if row is None or row[0] != key:
            raise RuntimeError(f"{variant.name}: wrong row for id {key}: {row!r}")
    if variant.drain is not None:
        variant.drain()  # background work belongs to this variant, not the next one's round
    if record:
        variant.wall_ns += clock() - began
        variant.cpu_ns += time.process_time_ns() - cpu_began
        variant.samples += samples
        variant.round_medians.append(median(samples))


def interleaved(variants: list[Variant], ids: list[int], rounds: int) -> None:
    """Every variant runs every id; the ids are cut into rounds and the order rotates."""
    for variant in variants:
        run_queries(variant, ids[:WARMUP], record=False)
    size = -(-len(ids) // rounds)
    for number in range(rounds):
        chunk = ids[number * size : (number + 1) * size]
        shift = number % len(variants)
        for variant in variants[shift:] + variants[:shift]:
            gc.collect()
            run_queries(variant, chunk, record=True)


def span_floor_us(sdk: SDKSetup, count: int = 20_000) -> float:
    """CPU per bare span (three attributes) plus one duration-histogram record through the
    run's SDK setup, export drained: the least any instrumentation that makes one span and
    records one duration per statement can add."""
    from opentelemetry.trace import SpanKind

    tracer = sdk.tracer_provider.get_tracer("floor")
    histogram = sdk.meter_provider.get_meter("floor").create_histogram("floor.duration", unit="s")
    attributes = {"db.system.name": "sqlite", "db.operation.name": "SELECT", "db.namespace": "t"}
    sdk.flush()
    began = time.process_time_ns()
    for _ in range(count):
        tracer.start_span("SELECT t", kind=SpanKind.CLIENT, attributes=attributes).end()
        histogram.record(0.0001, attributes)
    sdk.flush()
    return us((time.process_time_ns() - began) / count)


def cached_decide_ns(path: Path) -> float:
    """The cache lookup alone: ``Guard.decide`` on a text seen before (median of 20k)."""
    guard = sqlfence.Guard(POLICY, dialect="sqlite", default_schema="main")
    guard.decide(QUERY)
    clock = time.perf_counter_ns
    samples = []
    for _ in range(20_000):
        start = clock()
        guard.decide(QUERY)
        samples.append(clock() - start)
    return median(samples)


def paired_added_us(variant: Variant, raw: Variant) -> float:
    """The median over rounds of the variant's round median minus raw's in the same round:
    the two ran seconds apart, so a machine that slows down for a while (others' work on a
    shared host) moves both; shown beside the overall medians, not judged."""
    pairs = zip(variant.round_medians, raw.round_medians, strict=True)
    return us(median([mine - theirs for mine, theirs in pairs]))


def per_query(variant: Variant) -> dict[str, float]:
    """Microseconds per query: median on the query's thread, wall and CPU over the loops."""
    count = len(variant.samples)
    return {
        "median": us(median(variant.samples)),
        "wall": us(variant.wall_ns / count),
        "cpu": us(variant.cpu_ns / count),
    }


def rows_for(variants: list[Variant], raw: Variant) -> list[list[object]]:
    base = per_query(raw)
    rows: list[list[object]] = []
    for variant in variants:
        mine = per_query(variant)
        added = ["-"] * 3 if variant is raw else [f"{mine[k] - base[k]:+.2f}" for k in base]
        rows.append(
            [
                variant.name,
                len(variant.samples),
                mine["median"],
                us(percentile(variant.samples, 95)),
                mine["wall"],
                mine["cpu"],
                *added,
                f"{mine['median'] / base['median']:.2f}x",
            ]
        )
    return rows


HEADERS = [
    "variant",
    "queries",
    "median us",
    "p95 us",
    "wall us/query",
    "CPU us/query",
    "added: median",
    "added: wall",
    "added: CPU",
    "ratio to raw (median)",
]


@contextlib.contextmanager
def opened(variants: list[Variant]) -> Iterator[list[Variant]]:
    try:
        yield variants
    finally:
        for variant in variants:
            with contextlib.suppress(Exception):
                variant.close()


def pipeline_verdicts(raw: Variant, dbapi: Variant, full: Variant) -> list[str]:
    """The full pipeline's added cost against dbapi's: the target is on CPU (every thread,
    background work drained); the median and the wall time are shown beside it."""
    base, theirs, ours = per_query(raw), per_query(dbapi), per_query(full)
    lines = []
    for key, label in (
        ("cpu", "CPU time of every thread"),
        ("median", "on the query's thread (median)"),
        ("wall", "wall time, background threads drained"),
    ):
        added_ours, added_theirs = ours[key] - base[key], theirs[key] - base[key]
        ratio = added_ours / added_theirs if added_theirs > 0 else float("inf")
        if key == "cpu":
            verdict = "met" if ratio <= TARGET_PIPELINE_RATIO else "MISSED"
            judged = f" (target <= {TARGET_PIPELINE_RATIO:g}): **{verdict}**"
        else:
            judged = " (shown, not a target)"
        lines.append(
            f"- {label}: full pipeline {added_ours:+.2f} us, dbapi {added_theirs:+.2f} us, "
            f"ratio {ratio:.2f}{judged}"
        )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--queries", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--seed", type=int, default=20250101)
    parser.add_argument("--no-write", action="store_true", help="do not update BENCHMARKS.md")
    parser.add_argument(
        "--without-dbapi",
        action="store_true",
        help="leave out the dbapi variant (implies --no-write)",
    )
    args = parser.parse_args()
    rng = random.Random(args.seed)
    began = time.monotonic()
    sdk = sdk_setup()
    with tempfile.TemporaryDirectory(prefix="sqlfence-overhead-") as tmp:
        workdir = Path(tmp)
        path = workdir / "points.sqlite"
        create_database(path, args.seed)
        ids = [rng.randint(1, ROWS) for _ in range(args.queries)]
        variants = [
            raw_variant(path),
            fence_variant(path),
            bare_fence_variant(path),
            *([] if args.without_dbapi else [otel_variant(path, sdk)]),
            full_pipeline(path, workdir, sdk),
        ]
        with opened(variants):
            interleaved(variants, ids, args.rounds)
        lookup = cached_decide_ns(path)
        floor = span_floor_us(sdk)
        evidence = {v.name: v.evidence() for v in variants}
        evidence["spans exported (both instrumented variants)"] = f"{sdk.exported[0]:,}"
    sdk.shutdown()
    seconds = time.monotonic() - began

    raw, fence, full = variants[0], variants[1], variants[-1]
    added = per_query(fence)["median"] - per_query(raw)["median"]
    verdict = "met" if added <= TARGET_ADDED_US else "MISSED"
    body = table(HEADERS, rows_for(variants, raw))
    notes = [f"- {v.name}: {v.note}" for v in variants if v.note]
    recorded = [f"- {name}: {text}" for name, text in evidence.items() if text]
    verdicts = [] if args.without_dbapi else pipeline_verdicts(raw, variants[3], full)
    above = per_query(full)["cpu"] - per_query(raw)["cpu"] - floor
    floor_verdict = "met" if above <= TARGET_ABOVE_FLOOR_US else "MISSED"
    verdicts.append(
        f"- the SDK floor: one bare span (three attributes) and one histogram record (same "
        f"setup, export drained) cost {floor:.1f} us of CPU, which any per-statement span and "
        f"duration pay; the full pipeline's added CPU is {above:+.2f} us above it (target "
        f"<= {TARGET_ABOVE_FLOOR_US:g}): **{floor_verdict}**"
    )
    print(body)
    print("\n".join(["", *notes, "", "Recorded:", *recorded, "", *verdicts]))
    paired = [f"- {v.name}: {paired_added_us(v, raw):+.2f} us" for v in variants if v is not raw]
    paired_text = (
        "Added per query, paired by round (the median over rounds of each round's median "
        "minus raw's in the same round; shown, not judged):"
    )
    print("\n".join(["", paired_text, *paired]))
    print(f"\ncached Guard.decide lookup alone: {lookup:.0f} ns (median)")
    print(
        f"target: a cached guarded execute adds <= {TARGET_ADDED_US:g} us: {added:+.2f} ({verdict})"
    )
    if not (args.no_write or args.without_dbapi):
        section = "\n".join(
            [
                "## Hot-path overhead (`benchmarks/overhead.py`)",
                "",
                f"Measured {machine()}; the run took {seconds:.0f} s.",
                "",
                f"{args.queries:,} indexed point selects (`{QUERY}`, random ids, `fetchone` "
                f"each) on a SQLite file of {ROWS:,} rows, per variant, interleaved in "
                f"{args.rounds} rounds (order rotating) after {WARMUP} warm-up queries; each "
                "execute + fetchone timed with `perf_counter_ns`. Target: a cached guarded "
                f"execute with the default observer adds at most {TARGET_ADDED_US:g} us to raw "
                "(median): "
                f"**{added:+.2f} us, {verdict}**.",
                "",
                "The two instrumented variants share one OpenTelemetry SDK setup: a "
                "`TracerProvider` with a `BatchSpanProcessor` to an exporter that counts and "
                "drops spans, and a `MeterProvider` with an in-memory reader. *wall us/query* "
                "is each variant's loop time, plus the wait for its background threads (audit "
                "writer, telemetry worker, span processor) to drain after every round; "
                "*CPU us/query* is the process's CPU time (all threads) over the same span. "
                "Targets: the full pipeline's added CPU is at most what dbapi instrumentation "
                f"adds, and at most {TARGET_ABOVE_FLOOR_US:g} us above the SDK floor:",
                "",
                *verdicts,
                "",
                body,
                "",
                paired_text,
                "",
                *paired,
                "",
                *notes,
                "",
                "Recorded during the run:",
                "",
                *recorded,
                f"- a cached `Guard.decide` lookup alone costs {lookup:.0f} ns (median).",
            ]
        )
        print(f"\nwrote {write_section('overhead', section)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

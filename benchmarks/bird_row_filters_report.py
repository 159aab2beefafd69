"""Results of ``bird.py --row-filter`` (``bird_row_filters.py``): what happened to each
statement, the filters, the latency, and their rendering as a section of BENCHMARKS.md."""

from __future__ import annotations

import datetime
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from bird_report import MAX_ROWS, Statement
from common import machine, median, percentile, table, us

ROWS = 6  # per table: enough for joins to meet and filters to keep some rows, few enough
# that a join of four tables stays under max_rows


@dataclass(frozen=True)
class Filter:
    """The row filter one BIRD database gets."""

    database: str
    table: str  # as the database stores it
    column: str  # as the database stores it
    tenant: str

    @property
    def condition(self) -> str:
        return f'"{self.column}" = :tenant'

    def keeps(self, value: object) -> bool:
        return value is not None and str(value) == self.tenant


@dataclass
class Checked:
    """One statement: raw, on the oracle, and through the fence."""

    statement: Statement
    raw_error: str | None = None
    raw_rows: list[Any] = field(default_factory=list)
    oracle_error: str | None = None
    unlimited: list[Any] | None = None  # the oracle's rows without the outer LIMIT
    reordered: list[Any] | None = None  # the oracle's rows, its unordered scans reversed
    fenced_on_oracle: list[Any] | None = None  # the fenced text's rows on the oracle
    rescanned: list[Any] | None = None  # the oracle's rows, masked tables read as the fence does
    expected: list[Any] = field(default_factory=list)
    allowed: bool | None = None
    rules: tuple[str, ...] = ()
    reasons: tuple[str, ...] = ()
    applied: tuple[str, ...] = ()
    final_sql: str = ""
    fence_error: str | None = None
    got: list[Any] = field(default_factory=list)
    by_design: str | None = None

    @property
    def verdict(self) -> str:
        if self.raw_error is not None:
            return "raw error"
        if not self.allowed:
            return "by design" if self.by_design else "false denial"
        if self.fence_error is not None:
            # fails after the fence: broken unless it fails on the tenant's rows alone too
            return "same error" if self.oracle_error is not None else "broken"
        if self.oracle_error is not None:
            return "broken"
        if len(self.got) >= MAX_ROWS or len(self.expected) >= MAX_ROWS:
            return "capped"  # max_rows cut the fenced rows: no comparison
        if normal(self.got) == normal(self.expected):
            return "same rows"
        if self.fenced_on_oracle is not None and normal(self.got) == normal(self.fenced_on_oracle):
            return "order-dependent"  # the rewritten text gives these rows where no hidden
            # row exists too: the other tenant's rows changed nothing, the plan picked a tie
        if self.reordered is not None and normal(self.got) == normal(self.reordered):
            return "order-dependent"  # ties picked in another order (a bare column, a
            # scalar subquery's first row): the oracle gives these rows when it scans backwards
        if self.rescanned is not None and normal(self.got) == normal(self.rescanned):
            return "order-dependent"  # ties picked in the fence's scan order (masked tables
            # read NOT INDEXED, closed to the planner): the oracle read so gives these rows
        if self.unlimited is not None and len(self.got) == len(self.expected):
            # LIMIT over ties: the fenced rows must be among the tenant's rows without it
            pool = Counter(normal(self.unlimited))
            if not Counter(normal(self.got)) - pool:
                return "order-dependent"
        return "broken"

    @property
    def filter_matters(self) -> bool:
        """The filter changes this statement's answer (raw on all rows != on the tenant's)."""
        return self.oracle_error is None and normal(self.raw_rows) != normal(self.expected)


def normal(rows: list[Any]) -> list[tuple[object, ...]]:
    """Rows as a sorted multiset of comparable values (floats to 6 places)."""

    def cell(item: object) -> object:
        if isinstance(item, (float, Decimal)):
            return round(float(item), 6)
        if isinstance(item, (datetime.date, datetime.time, datetime.timedelta)):
            return str(item)
        return item

    return sorted((tuple(cell(item) for item in row) for row in rows), key=repr)


@dataclass
class Latency:
    parse: list[float] = field(default_factory=list)
    plain: list[float] = field(default_factory=list)
    filtered: list[float] = field(default_factory=list)


@dataclass
class DialectRun:
    dialect: str
    filters: list[Filter]
    checked: list[Checked]
    latency: Latency

    def count(self, verdict: str) -> int:
        return sum(1 for c in self.checked if c.verdict == verdict)


SUMMARY = [
    "dialect",
    "statements",
    "raw-accepted",
    "filter applied",
    "filter changes the answer",
    "same rows",
    "same error",
    "capped",
    "order-dependent",
    "denied by design",
    "false denials",
    "broken rewrites",
]
LATENCY = [
    "dialect",
    "statements",
    "parse_one median / p95 us",
    "decide, no filter: median / p95 us",
    "ratio to parse",
    "decide, filter: median / p95 us",
    "ratio to parse",
    "filter / no filter (median)",
]


def summary(runs: list[DialectRun]) -> list[list[object]]:
    return [
        [
            r.dialect,
            len(r.checked),
            sum(1 for c in r.checked if c.raw_error is None),
            sum(1 for c in r.checked if c.applied),
            sum(1 for c in r.checked if c.raw_error is None and c.filter_matters),
            *(
                r.count(v)
                for v in (
                    "same rows",
                    "same error",
                    "capped",
                    "order-dependent",
                    "by design",
                    "false denial",
                    "broken",
                )
            ),
        ]
        for r in runs
    ]


def latency(runs: list[DialectRun]) -> list[list[object]]:
    rows: list[list[object]] = []
    for r in runs:
        lat = r.latency
        if not lat.parse:
            continue

        def pair(values: list[float]) -> str:
            return f"{us(median(values)):.0f} / {us(percentile(values, 95)):.0f}"

        def ratio(values: list[float], parse: list[float] = lat.parse) -> str:
            mid = median(values) / median(parse)
            high = percentile(values, 95) / percentile(parse, 95)
            return f"{mid:.2f}x / {high:.2f}x"

        rows.append(
            [
                r.dialect,
                len(lat.parse),
                pair(lat.parse),
                pair(lat.plain),
                ratio(lat.plain),
                pair(lat.filtered),
                ratio(lat.filtered),
                f"{median(lat.filtered) / median(lat.plain):.2f}x",
            ]
        )
    return rows


def findings(runs: list[DialectRun]) -> list[str]:
    lines = []
    for r in runs:
        for c in r.checked:
            verdict = c.verdict
            if verdict not in ("false denial", "broken", "order-dependent"):
                continue
            sql = " ".join(c.statement.sql.split())
            lines.append(f"- {verdict}, {r.dialect} {c.statement.label}: `{sql}`")
            if verdict == "false denial":
                lines.append(f"  reasons: {'; '.join(c.reasons)}")
                continue
            lines.append(f"  sent: `{' '.join(c.final_sql.split())}`")
            if c.fence_error or c.oracle_error:
                lines.append(f"  fence: {c.fence_error}; oracle: {c.oracle_error}")
            else:
                lines.append(
                    f"  expected {len(c.expected)} rows {_clip(normal(c.expected))}; "
                    f"got {len(c.got)} rows {_clip(normal(c.got))}"
                )
    return lines


def _clip(rows: object, limit: int = 200) -> str:
    text = repr(rows)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def markdown(runs: list[DialectRun], seconds: float) -> str:
    filters = "; ".join(
        f"{r.dialect}: " + ", ".join(f"{f.database} `{f.table}.{f.column}`" for f in r.filters)
        for r in runs
    )
    parts = [
        "## BIRD mini-dev with a row filter (`benchmarks/bird.py --row-filter`)",
        "",
        f"Measured {machine()}; the run took {seconds:.0f} s.",
        "",
        f"Each BIRD database is created twice from the corpus's DDL with {ROWS} synthetic rows "
        "per table (a few values per column, some NULLs). Its most-read table gets the row "
        'filter `"<column>" = :tenant` on the column of that table the statements name most '
        "(as the database stores it), for a tenant holding some of its rows; the second copy, "
        "the oracle, holds only those rows of that table. Every statement runs raw on both "
        "copies and through `sqlfence.connect(..., tenant=...)` on the full one, under "
        "bird.py's read-only policy plus the filter. *Same rows*: the fenced statement gave "
        "the oracle's rows (multisets, floats to 6 places). *Same error*: it fails on the "
        "tenant's rows alone too (a data-dependent error). *Capped*: max_rows cut the rows. "
        "*Order-dependent*: a LIMIT over ties picked other rows, as many, each among the "
        "oracle's rows of the statement without its LIMIT, or (SQLite) the oracle gives the "
        "same rows with its unordered scans reversed (`PRAGMA reverse_unordered_selects`: a "
        "bare column of an aggregate, a scalar subquery's first row), or the rewritten text "
        "gives the same rows on the oracle, where the filter hides nothing (the other "
        "tenant's rows changed nothing; the plan picked other ties) (listed below). "
        "*Filter changes the "
        "answer*: the raw statement gives other rows on the oracle than on the full copy, so "
        "the comparison could catch a missing filter there. A broken rewrite fails "
        "after the fence where the oracle ran, or gives other rows. Target: 0.",
        "",
        f"Filtered tables: {filters}.",
        "",
        table(SUMMARY, summary(runs)),
        "",
        "First-sight decide over the raw-accepted statements the filter applies to (a fresh "
        "`Guard` per sample; minimum of the samples per statement, then median and p95 over "
        "statements), with bird.py's policy and with the row filter, beside "
        "`sqlglot.parse_one` of the same text in the same run; ratios are decide / parse at "
        "the median and at p95.",
        "",
        table(LATENCY, latency(runs)),
    ]
    lines = findings(runs)
    if lines:
        parts += ["", "False denials, broken rewrites and order-dependent differences:", "", *lines]
    return "\n".join(parts)

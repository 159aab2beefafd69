"""Results of the BIRD benchmark (``bird.py``): what happened to each statement, the counts
per dialect, and their rendering as the BIRD section of BENCHMARKS.md and on the terminal."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from common import REPO_ROOT, machine, median, percentile, table, us

TIMEOUT_MS = 5000  # per statement, raw and fenced; an empty database answers in microseconds
MAX_ROWS = 1000
# PostgreSQL statements are parsed twice (sqlglot and PostgreSQL's own grammar, pglast).
TARGET_RATIOS = {"sqlite": 1.5, "postgres": 2.0}


@dataclass(frozen=True)
class Statement:
    """One query of the corpus: who wrote it, for which question and database."""

    source: str  # "gold" or the model's name
    index: int
    database: str
    sql: str

    @property
    def label(self) -> str:
        return f"{self.source}#{self.index} ({self.database})"


@dataclass
class Outcome:
    """What happened to one statement, raw and through the fence."""

    statement: Statement
    raw_error: str | None = None
    allowed: bool | None = None
    reasons: tuple[str, ...] = ()
    rules: tuple[str, ...] = ()
    final_sql: str = ""
    rewritten: bool = False
    fence_error: str | None = None
    by_design: str | None = None  # why a denial of a raw-accepted statement is intended


@dataclass
class Report:
    """Counts and findings of one dialect."""

    dialect: str
    tables: dict[str, int]
    outcomes: list[Outcome] = field(default_factory=list)
    decide_ns: list[float] = field(default_factory=list)
    parse_ns: list[float] = field(default_factory=list)
    parse_failures: int = 0
    stages: list[list[object]] = field(default_factory=list)  # where decide's time goes

    @property
    def accepted(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.raw_error is None]

    @property
    def false_denials(self) -> list[Outcome]:
        return [o for o in self.accepted if o.allowed is False and not o.by_design]

    @property
    def by_design(self) -> list[Outcome]:
        return [o for o in self.accepted if o.allowed is False and o.by_design]

    @property
    def broken(self) -> list[Outcome]:
        return [o for o in self.accepted if o.allowed and o.fence_error is not None]


# -- the corpus ----------------------------------------------------------------------------


def print_findings(report: Report) -> None:
    for outcome in report.by_design:
        label = f"[{report.dialect}] {outcome.statement.label}"
        print(f"\ndenied by design {label}: {outcome.by_design}")
        print(f"  sql:     {outcome.statement.sql}")
        for reason in outcome.reasons:
            print(f"  reason:  {reason}")
    for outcome in report.false_denials:
        print(f"\nFALSE DENIAL [{report.dialect}] {outcome.statement.label}")
        print(f"  sql:     {outcome.statement.sql}")
        for reason in outcome.reasons:
            print(f"  reason:  {reason}")
    for outcome in report.broken:
        print(f"\nBROKEN AFTER THE FENCE [{report.dialect}] {outcome.statement.label}")
        print(f"  original:  {outcome.statement.sql}")
        print(f"  sent:      {outcome.final_sql}  (rewritten: {outcome.rewritten})")
        print(f"  error:     {outcome.fence_error}")


def summary_rows(reports: list[Report]) -> list[list[object]]:
    rows: list[list[object]] = []
    for report in reports:
        accepted = report.accepted
        rows.append(
            [
                report.dialect,
                len(report.outcomes),
                len(accepted),
                sum(1 for o in accepted if o.allowed),
                len(report.by_design),
                len(report.false_denials),
                len(report.broken),
                sum(1 for o in accepted if o.allowed and o.rewritten),
            ]
        )
    return rows


SUMMARY_HEADERS = [
    "dialect",
    "statements",
    "raw-accepted",
    "fence-allowed",
    "denied by design",
    "false denials",
    "broken after rewrite",
    "LIMIT injected",
]


def source_rows(reports: list[Report]) -> list[list[object]]:
    rows: list[list[object]] = []
    for report in reports:
        by_source: dict[str, list[Outcome]] = {}
        for outcome in report.outcomes:
            by_source.setdefault(outcome.statement.source, []).append(outcome)
        for source, outcomes in by_source.items():
            part = Report(report.dialect, {}, outcomes)
            rows.append(
                [
                    f"{report.dialect} {source}",
                    len(outcomes),
                    len(part.accepted),
                    len(part.false_denials),
                    len(part.broken),
                ]
            )
    return rows


SOURCE_HEADERS = ["source", "statements", "raw-accepted", "false denials", "broken after rewrite"]


STAGE_HEADERS = ["stage", "median us", "share of decide"]


def latency_rows(reports: list[Report]) -> list[list[object]]:
    rows: list[list[object]] = []
    for report in reports:
        if not report.decide_ns:
            continue
        decide, parse = report.decide_ns, report.parse_ns
        ratios = [d / p for d, p in zip(decide, parse, strict=True)]
        ratio = median(decide) / median(parse)
        rows.append(
            [
                report.dialect,
                len(decide),
                us(median(parse)),
                us(percentile(parse, 95)),
                us(median(decide)),
                us(percentile(decide, 95)),
                f"{ratio:.2f}x",
                f"{median(ratios):.2f}x",
                f"<= {TARGET_RATIOS[report.dialect]}x: "
                + ("met" if ratio <= TARGET_RATIOS[report.dialect] else "MISSED"),
            ]
        )
    return rows


LATENCY_HEADERS = [
    "dialect",
    "statements",
    "parse_one median us",
    "parse p95 us",
    "decide median us",
    "decide p95 us",
    "median ratio",
    "per-statement ratio (median)",
    "target",
]


def hot_functions(profile: str, count: int = 10) -> list[str]:
    """The first ``count`` rows of the tottime listing, trimmed for the Markdown file."""
    lines = profile.splitlines()
    start = next((i for i, line in enumerate(lines) if line.strip().startswith("ncalls")), None)
    if start is None:
        return []
    rows = []
    for line in lines[start + 1 : start + 1 + count]:
        parts = line.split(None, 5)
        if len(parts) == 6:
            where = parts[5].replace(str(REPO_ROOT) + "/", "")
            where = re.sub(r"^.*/lib/python[\d.]+/(site-packages/)?", "", where)
            rows.append(f"{parts[1]:>7}s tottime, {parts[3]:>7}s cumtime  {where}")
    return rows


def print_tables(reports: list[Report], profiles: dict[str, str]) -> None:
    """The summary, per-source and latency tables, profiles and stages, on the terminal."""
    print()
    print(table(SUMMARY_HEADERS, summary_rows(reports)))
    print()
    print(table(SOURCE_HEADERS, source_rows(reports)))
    print()
    print(table(LATENCY_HEADERS, latency_rows(reports)))
    for dialect, profile in profiles.items():
        print(f"\ncProfile of first-sight decide ({dialect}):\n{profile}")
    for report in reports:
        if report.stages:
            print(f"\nwhere first-sight decide spends its time ({report.dialect}):")
            print(table(STAGE_HEADERS, report.stages))


def markdown(reports: list[Report], profiles: dict[str, str], seconds: float) -> str:
    parts = [
        "## BIRD mini-dev through the fence (`benchmarks/bird.py`)",
        "",
        f"Measured {machine()}; the run took {seconds:.0f} s.",
        "",
        "Every gold query and every model's predicted query of the BIRD mini-dev corpus, run "
        "raw on the 11 empty databases (each in its own rolled-back transaction, "
        f"{TIMEOUT_MS} ms statement timeout) and through `sqlfence.connect(...)` under a "
        "read-only policy allowing all of that database's tables with `max_rows` "
        f"{MAX_ROWS}. A false denial is a statement the database ran raw that the fence "
        "refused; a broken rewrite is one the database ran raw but rejected after the fence. "
        "Both must be 0. *Denied by design* counts raw-accepted statements the fence refuses "
        "on purpose: several statements in one call (one per call unless the policy allows "
        "more; psycopg runs such a text as one simple query, sqlite3 refuses it) and writes "
        "that the database also refuses in a READ ONLY transaction.",
        "",
        "Tables created per database: "
        + "; ".join(
            f"{r.dialect}: "
            + ", ".join(f"{name} {count}" for name, count in sorted(r.tables.items()))
            for r in reports
        )
        + " (SQLite runs the corpus DDL as is; PostgreSQL gets `datetime` -> `timestamp`).",
        "",
        table(SUMMARY_HEADERS, summary_rows(reports)),
        "",
        table(SOURCE_HEADERS, source_rows(reports)),
        "",
        "First-sight latency over the raw-accepted statements sqlglot parses: a fresh "
        "`Guard` per sample (nothing cached) against `sqlglot.parse_one(sql, read=dialect)`, "
        "minimum of the samples per statement (`perf_counter_ns`, GC off during samples), then "
        "median and p95 over statements. Target: decide median at most 1.5x the parse median "
        "(2.0x on PostgreSQL, where PostgreSQL's own grammar reads every statement too).",
        "",
        table(LATENCY_HEADERS, latency_rows(reports)),
    ]
    findings = [
        *(("false denial", r.dialect, o) for r in reports for o in r.false_denials),
        *(("broken after rewrite", r.dialect, o) for r in reports for o in r.broken),
        *(("denied by design", r.dialect, o) for r in reports for o in r.by_design),
    ]
    if findings:
        parts += ["", "Every denial of a raw-accepted statement and every broken rewrite:", ""]
    for kind, dialect, outcome in findings:
        sql = " ".join(outcome.statement.sql.split())
        why = outcome.fence_error if kind == "broken after rewrite" else "; ".join(outcome.reasons)
        if outcome.by_design:
            why = f"{outcome.by_design}: {why}"
        parts.append(f"- {kind}, {dialect} {outcome.statement.label}: {why}. `{_clip(sql)}`")
        if kind == "broken after rewrite":
            parts.append(f"  sent: `{_clip(' '.join(outcome.final_sql.split()))}`")
    for report in reports:
        if report.stages:
            parts += [
                "",
                f"Where first-sight `decide` spends its time ({report.dialect}; per-statement "
                "minimum of 3 samples, median over statements; stages timed one by one, so "
                "they need not add up exactly):",
                "",
                table(STAGE_HEADERS, report.stages),
            ]
    for dialect, profile in profiles.items():
        rows = hot_functions(profile)
        if rows:
            parts += [
                "",
                f"Hot functions of first-sight `decide` ({dialect}, cProfile, by own time; "
                "the profiler inflates Python-level code against the compiled parser):",
                "",
                "```",
                *rows,
                "```",
            ]
    return "\n".join(parts)


def _clip(text: str, limit: int = 160) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."

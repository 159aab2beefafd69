"""BIRD mini-dev through the fence: false denials, broken rewrites, first-sight decide latency.

For SQLite and PostgreSQL, the 11 BIRD databases are created empty from the corpus's DDL,
then every gold query and every model's predicted query of that dialect runs

- raw (sqlite3 / psycopg), each in its own transaction that is rolled back, and
- through ``sqlfence.connect(...)`` under a read-only policy whose ``allowed_tables`` are all
  of that database's tables, with ``max_rows`` 1000.

A *false denial* is a statement the database ran raw that the fence refused (every one is
printed with its reasons); a *broken rewrite* is one the database ran raw but rejected after
the fence (printed with the original and the SQL the fence sent). Both must be 0. Two kinds of
denial are by design and counted apart (and printed too): a write refused by the read-only
rule that the database also refuses in a READ ONLY transaction, and several statements in
one call (DESIGN.md: one statement per call unless the policy allows more; sqlite3 refuses
them itself, psycopg sends them as one simple query).

Latency: over the raw-accepted statements, first-sight ``Guard.decide`` (a fresh Guard per
sample, so nothing is cached) beside sqlglot's ``parse_one`` of the same text with the same
dialect; per statement the minimum of several samples, then median and p95 over statements.
Target: decide median at most 1.5x the parse median (2.0x on PostgreSQL, parsed twice).

The corpus is read from ``$SQLFENCE_BIRD_DIR`` (default ``../shared/corpora/bird-minidev``
beside the repository) and never copied. Exit status 1 when a must-be-zero count is not 0.

    python benchmarks/bird.py [--dialect sqlite|postgres] [--repeats N] [--profile]
    python benchmarks/bird.py --row-filter [...]   # with a row filter: bird_row_filters.py
    python benchmarks/bird.py --mask [...]         # with column masks: bird_masks.py
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import gc
import io
import json
import os
import pstats
import re
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import sqlglot
from bird_report import (
    MAX_ROWS,
    TARGET_RATIOS,
    TIMEOUT_MS,
    Outcome,
    Report,
    Statement,
    markdown,
    print_findings,
    print_tables,
)
from common import REPO_ROOT, median, us, write_section
from sqlglot.dialects.dialect import Dialect

import sqlfence
from sqlfence import databases

DEFAULT_DIR = REPO_ROOT.parent / "shared" / "corpora" / "bird-minidev"
DIALECTS = {"sqlite": "sqlite", "postgres": "postgresql"}  # sqlglot name -> corpus file suffix
# what sqlfence.connect qualifies unqualified names with, by dialect (the databases' profiles)
DEFAULT_SCHEMAS = {name: databases.profile(name).default_schema for name in DIALECTS}
Runner = Callable[[str], list[Any]]  # runs one statement raw, rolled back: its rows


def corpus_dir() -> Path:
    """The BIRD directory, or exit with a message saying where it was looked for."""
    root = Path(os.environ.get("SQLFENCE_BIRD_DIR") or DEFAULT_DIR).resolve()
    if not (root / "schemas").is_dir():
        sys.exit(
            f"bird.py: the BIRD mini-dev corpus is not at {root}; set SQLFENCE_BIRD_DIR to the "
            "directory holding gold_sqlite.sql, predicted/ and schemas/"
        )
    return root


def load_statements(root: Path, dialect: str) -> list[Statement]:
    """Gold queries then every model's predictions for ``dialect``, in corpus order."""
    suffix = DIALECTS[dialect]
    statements = []
    gold = (root / f"gold_{suffix}.sql").read_text(encoding="utf-8").splitlines()
    for index, line in enumerate(gold):
        sql, _, database = line.rpartition("\t")
        statements.append(Statement("gold", index, database.strip(), sql))
    for path in sorted((root / "predicted").glob(f"*_{suffix}.json")):
        model = path.name[: -len(f"_{suffix}.json")]
        answers = json.loads(path.read_text(encoding="utf-8"))
        for key, value in sorted(answers.items(), key=lambda item: int(item[0])):
            sql, _, database = value.rpartition("\t")
            sql = sql.rsplit("\t----- bird -----", 1)[0]
            statements.append(Statement(model, int(key), database.strip(), sql))
    return statements


def schemas(root: Path) -> dict[str, str]:
    """Database name -> its DDL text."""
    paths = sorted(root.glob("schemas/*.sql"))
    return {path.stem: path.read_text(encoding="utf-8") for path in paths}


def table_names(ddl: str) -> list[str]:
    """The tables a DDL script creates, as written (the policy normalises them per dialect)."""
    return re.findall(r'CREATE TABLE\s+"?(\w+)"?', ddl, flags=re.IGNORECASE)


def ddl_statements(ddl: str, dialect: str) -> list[str]:
    """The DDL split into statements, lightly adapted to ``dialect``.

    The corpus DDL is SQLite's. PostgreSQL has no ``datetime`` type: it becomes ``timestamp``.
    """
    if dialect == "postgres":
        ddl = re.sub(r"\bdatetime\b(?=,?\s*$)", "timestamp", ddl, flags=re.MULTILINE)
    return [part for part in re.split(r";\s*$", ddl, flags=re.MULTILINE) if part.strip()]


# -- the two databases ---------------------------------------------------------------------


class SQLiteTarget:
    """One SQLite file per BIRD database in a temporary directory."""

    dialect = "sqlite"

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir

    def path(self, database: str) -> Path:
        return self.workdir / f"{database}.sqlite"

    def create(self, database: str, ddl: str) -> int:
        with contextlib.closing(sqlite3.connect(self.path(database))) as conn:
            for statement in ddl_statements(ddl, self.dialect):
                conn.execute(statement)
            conn.commit()
            row = conn.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table'").fetchone()
            return int(row[0])

    @contextlib.contextmanager
    def raw(self, database: str, read_only: bool = False) -> Iterator[Runner]:
        """A runner executing one statement in its own rolled-back transaction (its rows)."""
        conn = sqlite3.connect(self.path(database), isolation_level=None)
        deadline = [0.0]
        conn.set_progress_handler(lambda: int(time.monotonic() > deadline[0]), 1000)
        if read_only:
            conn.execute("PRAGMA query_only = ON")

        def run(sql: str) -> list[Any]:
            deadline[0] = time.monotonic() + TIMEOUT_MS / 1000
            cursor = conn.cursor()
            cursor.execute("BEGIN")
            try:
                cursor.execute(sql)
                return cursor.fetchall()
            finally:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                cursor.close()

        try:
            yield run
        finally:
            conn.close()

    def fence_url(self, database: str) -> str:
        return f"sqlite:///{self.path(database)}"

    def close(self) -> None:
        pass


class PostgresTarget:
    """One database per BIRD database on a throwaway server (the tests' helper starts it)."""

    dialect = "postgres"

    def __init__(self) -> None:
        sys.path.insert(0, str(REPO_ROOT))
        from tests.postgres_server import PostgresServer, find_bindir

        bindir = find_bindir()
        if bindir is None:
            raise RuntimeError("PostgreSQL is not installed (no initdb found)")
        self.server = PostgresServer(bindir)
        self.server.start()

    def url(self, database: str) -> str:
        return self.server.url.rsplit("/", 1)[0] + "/" + database

    def create(self, database: str, ddl: str) -> int:
        import psycopg

        with psycopg.connect(self.server.url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{database}"')
        with psycopg.connect(self.url(database), autocommit=True) as conn:
            for statement in ddl_statements(ddl, self.dialect):
                conn.execute(statement)
            row = conn.execute(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
            ).fetchone()
            return int(row[0]) if row else 0

    @contextlib.contextmanager
    def raw(self, database: str, read_only: bool = False) -> Iterator[Runner]:
        import psycopg

        options = f"-c statement_timeout={TIMEOUT_MS}"
        if read_only:
            options += " -c default_transaction_read_only=on"
        conn = psycopg.connect(self.url(database), options=options)

        def run(sql: str) -> list[Any]:
            try:
                with conn.cursor() as cursor:
                    cursor.execute(sql)
                    return cursor.fetchall() if cursor.description is not None else []
            finally:
                conn.rollback()

        try:
            yield run
        finally:
            conn.close()

    def fence_url(self, database: str) -> str:
        return self.url(database)

    def close(self) -> None:
        self.server.stop()


Target = SQLiteTarget | PostgresTarget


# -- running the corpus --------------------------------------------------------------------


def policy_for(tables: list[str]) -> sqlfence.Policy:
    """Read-only, every table of the database allowed, at most 1,000 rows."""
    return sqlfence.Policy(
        read_only=True,
        allowed_tables=tuple(tables),
        max_rows=MAX_ROWS,
        statement_timeout_ms=TIMEOUT_MS,
    )


def first_line(error: BaseException) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0] if text else ''}"


def run_database(
    target: Target, database: str, statements: list[Statement], policy: sqlfence.Policy
) -> list[Outcome]:
    """Every statement of one database, raw and then through the fence."""
    outcomes = [Outcome(statement) for statement in statements]
    with target.raw(database) as run:
        for outcome in outcomes:
            try:
                run(outcome.statement.sql)
            except Exception as error:  # the database's verdict, whatever the driver raises
                outcome.raw_error = first_line(error)
    conn = sqlfence.connect(target.fence_url(database), policy=policy)
    try:
        for outcome in outcomes:
            fence(conn, outcome)
    finally:
        conn.close()
    denied = [o for o in outcomes if o.raw_error is None and o.allowed is False]
    for outcome in denied:
        if set(outcome.rules) == {"multiple_statements"}:
            outcome.by_design = "several statements in one call"
    writes = [o for o in denied if set(o.rules) == {"read_only"}]
    if writes:
        with target.raw(database, read_only=True) as run:
            for outcome in writes:
                try:
                    run(outcome.statement.sql)
                except Exception:  # refused read-only by the database too: a fair denial
                    outcome.by_design = "a write the database refuses read-only too"
    return outcomes


def fence(conn: sqlfence.GuardedConnection, outcome: Outcome) -> None:
    """Decide and, when allowed, execute through the fence; record what happened."""
    sql = outcome.statement.sql
    decision = conn.decide(sql)
    outcome.allowed = decision.allowed
    outcome.reasons = tuple(str(reason) for reason in decision.reasons)
    outcome.rules = tuple(reason.rule for reason in decision.reasons)
    outcome.final_sql = decision.sql
    outcome.rewritten = decision.rewritten
    if not decision.allowed:
        return
    cursor = conn.cursor()
    try:
        cursor.execute(sql)
        if cursor.description is not None:
            cursor.fetchall()
    except sqlfence.PolicyViolation as error:  # the engine-side check (SQLite authorizer)
        outcome.allowed = False
        outcome.reasons = (f"engine-side: {error}",)
        outcome.rules = ("engine_side",)
    except sqlfence.Error as error:
        outcome.fence_error = first_line(error)
    finally:
        cursor.close()
        with contextlib.suppress(sqlfence.Error):
            conn.rollback()


# -- latency -------------------------------------------------------------------------------


def measure_latency(report: Report, policies: dict[str, sqlfence.Policy], repeats: int) -> None:
    """First-sight decide beside parse_one, per raw-accepted statement (minimum of samples)."""
    dialect_name = report.dialect
    statements = [o.statement for o in report.accepted]
    dialect = Dialect.get_or_raise(dialect_name)
    schema = DEFAULT_SCHEMAS[dialect_name]

    def fresh(statement: Statement) -> sqlfence.Guard:
        return sqlfence.Guard(
            policies[statement.database], dialect=dialect_name, default_schema=schema
        )

    def parse(sql: str) -> None:
        sqlglot.parse_one(sql, read=dialect)

    parse_ok = []
    for statement in statements:  # warm-up, and which texts sqlglot parses at all
        fresh(statement).decide(statement.sql)
        try:
            parse(statement.sql)
        except sqlglot.errors.SqlglotError:
            report.parse_failures += 1
            continue
        parse_ok.append(statement)
    best_parse = [float("inf")] * len(parse_ok)
    best_decide = [float("inf")] * len(parse_ok)
    clock = time.perf_counter_ns
    for sample in range(repeats):
        gc.collect()
        gc.disable()  # as timeit does; the minimum over samples absorbs the rest of the noise
        try:
            for position, statement in enumerate(parse_ok):
                sql = statement.sql
                guard = fresh(statement)
                if sample % 2:  # alternate the order so neither always runs on a warm cache
                    start = clock()
                    guard.decide(sql)
                    middle = clock()
                    parse(sql)
                    end = clock()
                    decide, parsed = middle - start, end - middle
                else:
                    start = clock()
                    parse(sql)
                    middle = clock()
                    guard.decide(sql)
                    end = clock()
                    parsed, decide = middle - start, end - middle
                best_parse[position] = min(best_parse[position], parsed)
                best_decide[position] = min(best_decide[position], decide)
        finally:
            gc.enable()
    report.parse_ns = best_parse
    report.decide_ns = best_decide


def breakdown(report: Report, policies: dict[str, sqlfence.Policy], repeats: int = 3) -> None:
    """Median per-statement cost of decide's stages, from the library's public functions.

    Facts collection and the rules are not separate functions, so they are differences:
    analyze - parse - fingerprint, and decide - analyze - limit_rows.
    """
    from sqlfence.sql.analysis import analyze, parse
    from sqlfence.sql.fingerprint import fingerprint_tokens
    from sqlfence.sql.rewrite import limit_rows

    dialect = Dialect.get_or_raise(report.dialect)
    schema = DEFAULT_SCHEMAS[report.dialect]
    names = ("parse", "fingerprint", "analyze", "limit", "decide")
    statements = [o.statement for o in report.accepted]
    best = {name: [float("inf")] * len(statements) for name in names}
    clock = time.perf_counter_ns
    for _ in range(repeats):
        gc.collect()
        gc.disable()
        try:
            for position, statement in enumerate(statements):
                sql = statement.sql
                guard = sqlfence.Guard(
                    policies[statement.database], dialect=report.dialect, default_schema=schema
                )
                spent = {}
                start = clock()
                tokens, _ = parse(sql, dialect)
                spent["parse"] = clock() - start
                start = clock()
                fingerprint_tokens(tokens)
                spent["fingerprint"] = clock() - start
                start = clock()
                analysis = analyze(sql, dialect, guard.namer)
                spent["analyze"] = clock() - start
                start = clock()
                if analysis.trees:
                    limit_rows(analysis, MAX_ROWS)
                spent["limit"] = clock() - start
                start = clock()
                guard.decide(sql)
                spent["decide"] = clock() - start
                for name, value in spent.items():
                    best[name][position] = min(best[name][position], value)
        finally:
            gc.enable()
    # The fingerprint is computed lazily (only allowlists and audit need it): not in analyze.
    facts = [a - p for a, p in zip(best["analyze"], best["parse"], strict=True)]
    rules = [
        d - a - li for d, a, li in zip(best["decide"], best["analyze"], best["limit"], strict=True)
    ]
    whole = median(best["decide"])
    rows: list[tuple[str, float]] = [
        ("tokenize + parse (`analysis.parse`)", median(best["parse"])),
        ("fingerprint, when needed (`fingerprint_tokens`)", median(best["fingerprint"])),
        ("facts collection (analyze - parse)", median(facts)),
        ("rules, Decision, cache (decide - analyze - limit_rows)", median(rules)),
        ("row limit (`rewrite.limit_rows`)", median(best["limit"])),
        ("decide, first sight (whole)", whole),
    ]
    report.stages = [[name, us(value), f"{100 * value / whole:.0f}%"] for name, value in rows]


def profile_decide(report: Report, policies: dict[str, sqlfence.Policy], top: int = 18) -> str:
    """cProfile of one first-sight decide per raw-accepted statement: the hot functions."""
    guards = [
        (
            sqlfence.Guard(
                policies[o.statement.database],
                dialect=report.dialect,
                default_schema=DEFAULT_SCHEMAS[report.dialect],
            ),
            o.statement.sql,
        )
        for o in report.accepted
    ]
    profiler = cProfile.Profile()
    profiler.enable()
    for guard, sql in guards:
        guard.decide(sql)
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)
    return out.getvalue()


# -- reporting -----------------------------------------------------------------------------


def run_dialect(
    target: Target, root: Path, repeats: int, profile: bool
) -> tuple[Report, str | None]:
    ddl = schemas(root)
    statements = load_statements(root, target.dialect)
    unknown = Counter(s.database for s in statements if s.database not in ddl)
    if unknown:
        print(f"  statements for databases without a schema (skipped): {dict(unknown)}")
    report = Report(target.dialect, {})
    policies = {}
    for database, text in ddl.items():
        report.tables[database] = target.create(database, text)
        policies[database] = policy_for(table_names(text))
    print(f"  tables created: {report.tables}")
    for database in ddl:
        mine = [s for s in statements if s.database == database]
        report.outcomes += run_database(target, database, mine, policies[database])
    print(f"  executed {len(report.outcomes)} statements raw and through the fence")
    measure_latency(report, policies, repeats)
    text = None
    ratio = median(report.decide_ns) / median(report.parse_ns) if report.decide_ns else 0.0
    if profile or ratio > TARGET_RATIOS[target.dialect]:
        breakdown(report, policies)
        text = profile_decide(report, policies)
    return report, text


def each_target(dialects: list[str], label: str) -> Iterator[Target]:
    """Each dialect's target, in a scratch directory, closed after its turn; a dialect whose
    server cannot be had is reported skipped."""
    for dialect in dialects:
        print(f"{dialect}{label}:")
        with tempfile.TemporaryDirectory(prefix="sqlfence-bird-") as workdir:
            try:
                target: Target = (
                    SQLiteTarget(Path(workdir)) if dialect == "sqlite" else PostgresTarget()
                )
            except RuntimeError as error:
                print(f"  skipped: {error}")
                continue
            try:
                yield target
            finally:
                target.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dialect", choices=sorted(DIALECTS), action="append")
    parser.add_argument("--repeats", type=int, default=5, help="latency samples per statement")
    parser.add_argument("--profile", action="store_true", help="print cProfile of decide")
    parser.add_argument("--no-write", action="store_true", help="do not update BENCHMARKS.md")
    rule = parser.add_mutually_exclusive_group()
    rule.add_argument(
        "--row-filter",
        action="store_true",
        help="a row filter on each database's most-read table, checked by a differential "
        "oracle (bird_row_filters.py; its own section of BENCHMARKS.md)",
    )
    rule.add_argument(
        "--mask",
        action="store_true",
        help="column masks on each database's two most-read text columns, checked by a "
        "differential oracle (bird_masks.py; its own section of BENCHMARKS.md)",
    )
    args = parser.parse_args()
    root = corpus_dir()
    dialects = args.dialect or ["sqlite", "postgres"]
    if args.row_filter or args.mask:
        # they import this module's targets: loaded only when asked
        import bird_masks
        import bird_row_filters

        run = bird_masks.main if args.mask else bird_row_filters.main
        return run(root, dialects, args.repeats, not args.no_write)
    began = time.monotonic()
    reports: list[Report] = []
    profiles: dict[str, str] = {}
    for target in each_target(dialects, ""):
        report, profile = run_dialect(target, root, args.repeats, args.profile)
        reports.append(report)
        if profile:
            profiles[target.dialect] = profile
    seconds = time.monotonic() - began
    for report in reports:
        print_findings(report)
    print_tables(reports, profiles)
    if not args.no_write:
        print(f"\nwrote {write_section('bird', markdown(reports, profiles, seconds))}")
    bad = sum(len(r.false_denials) + len(r.broken) for r in reports)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

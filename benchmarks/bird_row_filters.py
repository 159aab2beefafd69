"""BIRD mini-dev with a row filter: false denials, broken rewrites, the filter's decide cost.

``bird.py --row-filter`` runs this. For SQLite and PostgreSQL, each of the 11 BIRD databases
is created from the corpus's DDL twice and filled with the same few synthetic rows per table
(small value domains, so joins and comparisons meet; some NULLs). Its most-read table (the
one most statements name) gets a row filter ``"<column>" = :tenant`` on the column of that
table the statements name most, written as the database stores it (PostgreSQL folds the
corpus's unquoted mixed-case names to lower case: ``cdscode``, not ``CDSCode``), and the
tenant is a value that column holds in some rows but not all. The second copy (the
*oracle*) holds only the filtered table's rows that meet the filter.

Every statement of the corpus runs raw on the full copy and on the oracle, and through
``sqlfence.connect(..., tenant=...)`` on the full copy under bird.py's read-only policy plus
the row filter. A *false denial* is a statement the database ran raw that the fence refused
(the read-only rule's writes and several statements in one call are by design, as in
bird.py); a *broken rewrite* is an allowed statement that fails after the fence where it ran
on the oracle, or whose rows differ from the oracle's (the differential oracle: the fenced
statement on everyone's rows must give what the raw statement gives on the tenant's rows
alone; rows compared as multisets, floats to 6 places). A LIMIT over ties of its ORDER BY
may pick other rows without a fence bug: such a difference is *order-dependent* (counted
apart and printed) only when as many rows came back and each is among the oracle's rows of
the statement without its LIMIT, or when the rewritten text gives the same rows on the oracle
(where the filter hides nothing: the other tenant's rows changed nothing), or, on SQLite, when
the oracle gives the fenced rows with its unordered scans reversed (``PRAGMA
reverse_unordered_selects``: which of several tied rows a bare column of an aggregate or a
scalar subquery takes is the scan order's), or, under masks (whose oracle holds the masked
values), when the statement with only the fence's tie-breakers (``canonical_order``) gives
the fenced rows on the oracle (an inner LIMIT over ties picks by the rows' values); any
other difference is broken.

Latency: over the raw-accepted statements the filter applies to, first-sight ``Guard.decide``
with the filter and without it (bird.py's policy), beside ``parse_one`` of the same text, per
statement the minimum of several samples, then median and p95 over statements.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import gc
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlglot
from bird import (
    DEFAULT_SCHEMAS,
    SQLiteTarget,
    Target,
    first_line,
    load_statements,
    policy_for,
    schemas,
)
from bird_report import Statement
from bird_row_filters_report import (
    LATENCY,
    ROWS,
    SUMMARY,
    Checked,
    DialectRun,
    Filter,
    Latency,
    findings,
    latency,
    markdown,
    summary,
)
from common import table, write_section
from sqlglot import exp
from sqlglot.dialects.dialect import Dialect

import sqlfence
from sqlfence.sql.canonical_order import canonical_order, ordered_aggregates

ORACLE = "{}__tenant"  # the copy holding only the tenant's rows of the filtered table
Data = dict[str, tuple[list[str], list[Any]]]  # table -> (its columns, its rows)


# -- the data ------------------------------------------------------------------------------


def columns(target: Target, database: str) -> dict[str, list[tuple[str, str]]]:
    """Table -> [(column, declared type)], as the database stores the names."""
    if isinstance(target, SQLiteTarget):
        import sqlite3

        with contextlib.closing(sqlite3.connect(target.path(database))) as conn:
            names = [
                row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
            ]
            return {
                name: [
                    (row[1], row[2].lower()) for row in conn.execute(f'PRAGMA table_info("{name}")')
                ]
                for name in names
            }
    import psycopg

    found: dict[str, list[tuple[str, str]]] = {}
    with psycopg.connect(target.url(database)) as conn:
        for name, column, kind in conn.execute(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'public' ORDER BY table_name, ordinal_position"
        ):
            found.setdefault(name, []).append((column, kind))
    return found


def value(kind: str, row: int, position: int, dialect: str, seen: list[str]) -> object:
    """The synthetic value of one cell: a few values per column, some NULLs; a text column
    also takes the literals the statements compare it with (``seen``), so WHERE meets rows."""
    if (row + position) % 5 == 4:
        return None
    pick = (row * (position % 3 + 1) + position) % 3
    if seen and kind == "text" and row % 2:
        return seen[(row // 2) % len(seen)]
    if kind.startswith("int"):
        return pick + 1
    if kind in ("real", "double precision", "numeric"):
        return pick + 0.5
    if kind == "date":
        day = datetime.date(2020, pick + 1, 1)
        return day if dialect == "postgres" else day.isoformat()
    if kind.startswith(("datetime", "timestamp")):
        moment = datetime.datetime(2020, 1, pick + 1, 10, 0, 0)
        return moment if dialect == "postgres" else moment.isoformat(sep=" ")
    return str(pick + 1)


def rows_of(
    table_columns: list[tuple[str, str]], dialect: str, texts: list[str]
) -> list[tuple[object, ...]]:
    seen = [compared(column, texts) for column, _ in table_columns]
    return [
        tuple(
            value(kind, row, position, dialect, seen[position])
            for position, (_, kind) in enumerate(table_columns)
        )
        for row in range(ROWS)
    ]


def compared(column: str, texts: list[str], most: int = 2) -> list[str]:
    """The string literals the statements compare ``column`` with (``= 'x'``), most used."""
    name = re.escape(column)
    pattern = re.compile(
        rf"(?<![\w]){name}\"?`?\]?\s*(?:=|LIKE)\s*'([^'%_]{{1,40}})'", re.IGNORECASE
    )
    found = Counter(match for text in texts for match in pattern.findall(text))
    return [literal for literal, _ in found.most_common(most)]


def fill(target: Target, database: str, data: Data) -> None:
    """Insert ``data`` (table -> (columns, rows)) into ``database``."""

    def insert(table_name: str, names: list[str], marker: str) -> str:
        quoted = ", ".join('"' + name.replace('"', '""') + '"' for name in names)
        marks = ", ".join(marker for _ in names)
        return f'INSERT INTO "{table_name}" ({quoted}) VALUES ({marks})'

    if isinstance(target, SQLiteTarget):
        import sqlite3

        with contextlib.closing(sqlite3.connect(target.path(database))) as conn:
            for name, (names, rows) in data.items():
                conn.executemany(insert(name, names, "?"), rows)
            conn.commit()
        return
    import psycopg
    from psycopg import sql

    with psycopg.connect(target.url(database)) as server, server.cursor() as cursor:
        for name, (names, rows) in data.items():
            for row in rows:  # literals, no parameters: some column names hold a % sign
                statement = sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
                    sql.Identifier(name),
                    sql.SQL(", ").join(map(sql.Identifier, names)),
                    sql.SQL(", ").join(map(sql.Literal, row)),
                )
                cursor.execute(statement)


def synthetic_data(
    dialect: str, tables: dict[str, list[tuple[str, str]]], statements: list[Statement]
) -> Data:
    """The synthetic rows of every table, the same for every copy of one database."""
    texts = [s.sql for s in statements]
    return {
        name: ([c for c, _ in cols], rows_of(cols, dialect, texts)) for name, cols in tables.items()
    }


def naming(texts: list[str], *names: str) -> list[str]:
    """The texts that name every one of ``names`` (as a whole word, any letter case)."""
    patterns = [
        re.compile(r"(?<![\w])" + re.escape(name) + r"(?![\w])", re.IGNORECASE) for name in names
    ]
    return [text for text in texts if all(p.search(text) for p in patterns)]


def choose_filter(
    target: Target,
    database: str,
    tables: dict[str, list[tuple[str, str]]],
    statements: list[Statement],
) -> tuple[Filter, Data]:
    """The most-read table, its most-named integer or text column, a tenant it holds; and the
    synthetic rows of every table."""
    texts = [s.sql for s in statements]

    def mentions(name: str) -> int:
        return len(naming(texts, name))

    data = synthetic_data(target.dialect, tables, statements)
    busiest = max(sorted(tables), key=mentions)
    rows = data[busiest][1]
    candidates = [
        (position, column)
        for position, (column, kind) in enumerate(tables[busiest])
        if kind.startswith("int") or kind == "text"
    ]
    position, column = max(candidates, key=lambda item: (mentions(item[1]), -item[0]))
    held = Counter(str(row[position]) for row in rows if row[position] is not None)
    tenant = held.most_common(1)[0][0]
    return Filter(database, busiest, column, tenant), data


# -- running -------------------------------------------------------------------------------


def policy_with(tables: list[str], **rules: Any) -> sqlfence.Policy:
    """bird.py's read-only policy plus ``rules`` (``row_filters=``, ``masked_columns=``)."""
    base = policy_for(tables)
    return sqlfence.Policy(
        read_only=True,
        allowed_tables=base.allowed_tables,
        max_rows=base.max_rows,
        statement_timeout_ms=base.statement_timeout_ms,
        **rules,
    )


@dataclass(frozen=True)
class Copies:
    """The two copies of one BIRD database a run compares, and whom the fence acts for."""

    database: str  # every row as it is, read through the fence
    oracle: str  # what the agent may see, read raw
    tenant: str | None = None
    # Whether a difference may be excused when the fenced text gives the same rows on the
    # oracle: it may where the fence hides rows (the oracle has none to hide), not where it
    # computes values (on the oracle they would be computed twice).
    rewritten_on_oracle: bool = True
    # Tables the fence reads in rowid order (SQLite's NOT INDEXED, under masks): a tie may
    # be excused when the oracle, read in that order too, gives the fenced rows.
    unindexed: frozenset[str] = frozenset()


def in_total_order(sql: str, dialect: str) -> str | None:
    """``sql`` with only the fence's tie-breakers added (no filter, no mask): on the oracle
    it picks among tied rows as the fenced statement does (a scalar subquery's ``ORDER BY
    birth_date LIMIT 1`` over two clients born the same day)."""
    try:
        tree = sqlglot.parse_one(sql, read=dialect)
    except sqlglot.errors.ParseError:
        return None
    if dialect == "postgres":
        ordered_aggregates(tree)
    return canonical_order(tree, dialect).sql(dialect=dialect)


def run_database(
    target: Target, copies: Copies, statements: list[Statement], policy: sqlfence.Policy
) -> list[Checked]:
    """Every statement raw on both copies and through the fence on the first; then what
    excuses a difference (a LIMIT over ties, another scan order)."""
    database, oracle = copies.database, copies.oracle
    checked = [Checked(statement) for statement in statements]
    with target.raw(database) as run:
        for item in checked:
            try:
                item.raw_rows = run(item.statement.sql)
            except Exception as error:  # the database's verdict, whatever the driver raises
                item.raw_error = first_line(error)
    with target.raw(oracle) as run:
        for item in checked:
            if item.raw_error is None:
                try:
                    item.expected = run(item.statement.sql)
                except Exception as error:  # e.g. a cast the tenant's rows alone fail
                    item.oracle_error = first_line(error)
    conn = sqlfence.connect(
        target.fence_url(database), policy=policy, tenant=copies.tenant, telemetry=False
    )
    try:
        for item in checked:
            if item.raw_error is None:
                fence(conn, item)
    finally:
        conn.close()
    with target.raw(oracle) as run:
        for item in checked:
            if item.verdict == "broken" and item.fence_error is None and item.got:
                text = without_limit(item.statement.sql, target.dialect)
                if text is not None:
                    with contextlib.suppress(Exception):
                        item.unlimited = run(text)
    with target.raw(oracle) as run:  # the rewritten text where it hides none
        for item in checked if copies.rewritten_on_oracle else ():
            if item.verdict == "broken" and item.fence_error is None and item.final_sql:
                with contextlib.suppress(Exception):
                    item.fenced_on_oracle = run(item.final_sql)
    with target.raw(oracle) as run:  # in the fence's own total order, where it masks values
        for item in () if copies.rewritten_on_oracle else checked:
            if item.verdict == "broken" and item.fence_error is None:
                ordered = in_total_order(item.statement.sql, target.dialect)
                if ordered is not None:
                    with contextlib.suppress(Exception):
                        item.fenced_on_oracle = run(ordered)
    if target.dialect == "sqlite":  # the same statements on the oracle, scanned backwards
        with target.raw(oracle) as run:
            run("PRAGMA reverse_unordered_selects = ON")
            for item in checked:
                if item.verdict == "broken" and item.fence_error is None:
                    with contextlib.suppress(Exception):
                        item.reordered = run(item.statement.sql)
    if target.dialect == "sqlite" and copies.unindexed:  # in the fence's scan order
        with target.raw(oracle) as run:
            for item in checked:
                text = not_indexed(item.statement.sql, copies.unindexed)
                if item.verdict == "broken" and item.fence_error is None and text is not None:
                    with contextlib.suppress(Exception):
                        item.rescanned = run(text)
    for item in checked:
        if item.allowed is False and set(item.rules) == {"multiple_statements"}:
            item.by_design = "several statements in one call"
    writes = [c for c in checked if c.allowed is False and set(c.rules) == {"read_only"}]
    with target.raw(database, read_only=True) as run:
        for item in writes:
            try:
                run(item.statement.sql)
            except Exception:  # refused read-only by the database too: a fair denial
                item.by_design = "a write the database refuses read-only too"
    return checked


def not_indexed(sql: str, tables: frozenset[str]) -> str | None:
    """``sql`` (SQLite) with each of ``tables`` (lower-case names) read as the fence reads a
    masked table: ``(SELECT * FROM t NOT INDEXED LIMIT -1) AS t``."""
    try:
        tree = sqlglot.parse_one(sql, read="sqlite")
    except sqlglot.errors.SqlglotError:
        return None
    for node in list(tree.find_all(exp.Table)):
        if node.name.lower() not in tables or not isinstance(node.this, exp.Identifier):
            continue
        alias = node.args.get("alias")
        inner = exp.Table(this=node.this.copy(), db=node.args.get("db"), indexed=False)
        select = exp.Select(expressions=[exp.Star()]).from_(inner, copy=False)
        select.set("limit", exp.Limit(expression=exp.Neg(this=exp.Literal.number(1))))
        name = alias.copy() if alias is not None else exp.TableAlias(this=node.this.copy())
        derived = exp.Subquery(this=select, alias=name)
        for arg in ("joins", "laterals"):
            if node.args.get(arg):
                derived.set(arg, node.args[arg])
        node.replace(derived)
    return tree.sql(dialect="sqlite")


def without_limit(sql: str, dialect: str) -> str | None:
    """``sql`` without its outermost LIMIT/OFFSET, or None when it has none."""
    try:
        tree = sqlglot.parse_one(sql, read=dialect)
    except sqlglot.errors.SqlglotError:
        return None
    if not isinstance(tree, exp.Query) or tree.args.get("limit") is None:
        return None
    tree.set("limit", None)
    tree.set("offset", None)
    return tree.sql(dialect=dialect)


def fence(conn: sqlfence.GuardedConnection, item: Checked) -> None:
    decision = conn.decide(item.statement.sql)
    item.allowed = decision.allowed
    item.rules = tuple(reason.rule for reason in decision.reasons)
    item.reasons = tuple(str(reason) for reason in decision.reasons)
    item.applied = decision.row_filters + decision.masks
    item.final_sql = decision.sql
    if not decision.allowed:
        return
    cursor = conn.cursor()
    try:
        cursor.execute(item.statement.sql)
        item.got = cursor.fetchall() if cursor.description is not None else []
    except sqlfence.PolicyViolation as error:  # the engine-side check (SQLite authorizer)
        item.allowed = False
        item.rules = ("engine_side",)
        item.reasons = (f"engine-side: {error}",)
    except sqlfence.Error as error:
        item.fence_error = first_line(error)
    finally:
        cursor.close()
        with contextlib.suppress(sqlfence.Error):
            conn.rollback()


# -- latency -------------------------------------------------------------------------------


Timed = tuple[Statement, Callable[[], sqlfence.Guard], Callable[[], sqlfence.Guard]]
# a statement, and how to make a fresh guard without the rule measured and with it


def fresh_guard(
    dialect_name: str, policy: sqlfence.Policy, tenant: str | None = None
) -> Callable[[], sqlfence.Guard]:
    """A maker of new guards (nothing cached) for ``policy``."""
    return functools.partial(
        sqlfence.Guard,
        policy,
        dialect=dialect_name,
        default_schema=DEFAULT_SCHEMAS[dialect_name],
        tenant=tenant,
    )


def measure(dialect_name: str, items: list[Timed], repeats: int) -> Latency:
    """First-sight decide without the rule and with it beside parse_one, minimum of samples,
    over the statements sqlglot parses."""
    dialect = Dialect.get_or_raise(dialect_name)

    def parses(sql: str) -> bool:
        try:
            sqlglot.parse_one(sql, read=dialect)
        except sqlglot.errors.SqlglotError:
            return False
        return True

    items = [item for item in items if parses(item[0].sql)]
    best = [[float("inf")] * len(items) for _ in range(3)]
    clock = time.perf_counter_ns
    for sample in range(repeats):
        gc.collect()
        gc.disable()
        try:
            for position, (statement, plain, ruled) in enumerate(items):
                sql = statement.sql
                steps: list[Callable[[str], object]] = [
                    functools.partial(sqlglot.parse_one, read=dialect),
                    plain().decide,
                    ruled().decide,
                ]
                order = [0, 1, 2] if sample % 2 == 0 else [2, 1, 0]
                for which in order:  # alternated so that none always runs on a warm cache
                    step = steps[which]
                    start = clock()
                    step(sql)
                    best[which][position] = min(best[which][position], clock() - start)
        finally:
            gc.enable()
    return Latency(*best)


# -- reporting -----------------------------------------------------------------------------


def run_dialect(target: Target, root: Any, repeats: int) -> DialectRun:
    ddl = schemas(root)
    statements = load_statements(root, target.dialect)
    filters, checked = [], []
    timing: list[Timed] = []
    for database, text in ddl.items():
        target.create(database, text)
        target.create(ORACLE.format(database), text)
        tables = columns(target, database)
        mine = [s for s in statements if s.database == database]
        row_filter, data = choose_filter(target, database, tables, mine)
        filters.append(row_filter)
        fill(target, database, data)
        names, rows = data[row_filter.table]
        where = names.index(row_filter.column)
        kept = [row for row in rows if row_filter.keeps(row[where])]
        fill(target, ORACLE.format(database), {**data, row_filter.table: (names, kept)})
        plain = fresh_guard(target.dialect, policy_for(list(tables)))
        filtered = policy_with(list(tables), row_filters={row_filter.table: row_filter.condition})
        copies = Copies(database, ORACLE.format(database), row_filter.tenant)
        done = run_database(target, copies, mine, filtered)
        checked += done
        ruled = fresh_guard(target.dialect, filtered, row_filter.tenant)
        timing += [(c.statement, plain, ruled) for c in done if c.applied]
        print(f"  {database}: {row_filter.table}.{row_filter.column} = {row_filter.tenant!r}")
    return DialectRun(target.dialect, filters, checked, measure(target.dialect, timing, repeats))


def publish(tables: list[str], lines: list[str], section: str | None, text: str) -> None:
    """Print a run's tables and findings; write ``text`` as ``section`` of BENCHMARKS.md
    unless that is None."""
    for rendered in tables:
        print()
        print(rendered)
    for line in lines:
        print(line)
    if section is not None:
        print(f"\nwrote {write_section(section, text)}")


def main(root: Any, dialects: list[str], repeats: int, write: bool) -> int:
    """Run the row-filter benchmark; 1 when a must-be-zero count is not 0."""
    from bird import each_target

    began = time.monotonic()
    runs = []
    for target in each_target(dialects, " (row filter)"):
        runs.append(run_dialect(target, root, repeats))
    text = markdown(runs, time.monotonic() - began)
    tables = [table(SUMMARY, summary(runs)), table(LATENCY, latency(runs))]
    publish(tables, findings(runs), "bird-row-filters" if write else None, text)
    return 1 if any(r.count("broken") or r.count("false denial") for r in runs) else 0

"""BIRD mini-dev with column masks: false denials, broken rewrites, raw values, decide cost.

``bird.py --mask`` runs this. For SQLite and PostgreSQL, each of the 11 BIRD databases is
created from the corpus's DDL twice and filled with the row-filter run's synthetic rows
(``bird_row_filters.py``). The two text columns the statements name most (each counted in
the statements naming its table too) are masked, the first with ``hash`` and the second with
``redact``, ``partial(0, 2)`` or ``email`` in turn from one database to the next; one row of
each masked column holds a marked value (``<value>-s3cr3t-<column>``, an address under
``email``) so that a raw value that escapes can be recognised. The second copy (the
*oracle*) holds the masked values of those columns, computed in Python from the README's
definition of each masker (``bird_masks_report.Masked.hide``), not by the fence's SQL.

Every statement of the corpus runs raw on both copies, and through ``sqlfence.connect`` on
the real copy under bird.py's read-only policy plus ``masked_columns``. A *false denial* is a
statement the database ran raw that the fence refused (the read-only rule's writes and
several statements in one call are by design); a *broken rewrite* is an allowed statement
that fails after the fence where it ran on the oracle, or whose rows differ from the
oracle's, with the row-filter run's tolerance for a LIMIT over ties and (SQLite) for another
scan order, the fence's own among them (``(SELECT * FROM t NOT INDEXED LIMIT -1)``); its third
excuse, the rewritten text giving the same rows on the oracle, does not hold here (the
oracle's values would be masked twice). A *raw value* is a cell of a fenced
result that equals a masked column's real value, or holds one of 6 characters or more, where
no unmasked column of the database holds that value and the statement's text does not name
it. All three must be 0.

Latency: over the raw-accepted statements the masks apply to, first-sight ``Guard.decide``
with bird.py's policy and with the masks, each from a guard made by ``sqlfence.connect`` (it
knows the columns of every table) copied afresh per sample, beside ``parse_one``.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable
from pathlib import Path

from bird import Target, each_target, load_statements, policy_for, schemas
from bird_masks_report import (
    LATENCY,
    SUMMARY,
    Leak,
    Masked,
    MaskRun,
    findings,
    latency,
    markdown,
    summary,
)
from bird_report import Statement
from bird_row_filters import (
    Copies,
    Data,
    Timed,
    columns,
    compared,
    fill,
    measure,
    naming,
    policy_with,
    publish,
    run_database,
    synthetic_data,
)
from bird_row_filters_report import Checked, DialectRun
from common import table

import sqlfence

ORACLE = "{}__masked"  # the copy holding the masked columns' masked values
SECOND = ("redact", "partial(0, 2)", "email")  # the second column's masker, in turn
SHORTEST_INSIDE = 6  # a raw value this long is a leak inside a longer cell too


# -- the masks and the data ----------------------------------------------------------------


def choose_masks(
    database: str,
    number: int,
    tables: dict[str, list[tuple[str, str]]],
    statements: list[Statement],
) -> list[Masked]:
    """The two text columns the statements name most (with their table): ``hash`` for the
    first, ``SECOND[number % 3]`` for the second. Only plainly named columns (a policy key
    is ``table.column``)."""
    texts = [s.sql for s in statements]
    candidates = [
        (name, column)
        for name, cols in sorted(tables.items())
        for column, kind in cols
        if kind == "text" and re.fullmatch(r"\w+", column)
    ]
    read = {candidate: len(naming(texts, *candidate)) for candidate in candidates}
    first, second = sorted(candidates, key=lambda c: -read[c])[:2]
    return [
        Masked(database, *first, "hash"),
        Masked(database, *second, SECOND[number % len(SECOND)]),
    ]


def mark_secrets(data: Data, masks: list[Masked], texts: list[str]) -> Data:
    """``data`` with the first non-NULL value of each masked column that is not a literal of
    the statements replaced by a marked one."""
    marked = dict(data)
    for mask in masks:
        names, rows = marked[mask.table]
        at = names.index(mask.column)
        literals = compared(mask.column, texts)
        for number, row in enumerate(rows):
            if row[at] is not None and row[at] not in literals:
                secret = f"{row[at]}-s3cr3t-{mask.column}".lower()
                if mask.masker == "email":
                    secret = f"{secret}@{mask.column}.example".lower()
                cells = list(row)
                cells[at] = secret
                marked[mask.table] = (names, [*rows[:number], tuple(cells), *rows[number + 1 :]])
                break
    return marked


def masked_data(data: Data, masks: list[Masked]) -> Data:
    """``data`` as the oracle holds it: each masked column's values masked."""
    hidden = dict(data)
    for mask in masks:
        names, rows = hidden[mask.table]
        at = names.index(mask.column)
        hidden[mask.table] = (
            names,
            [(*row[:at], mask.hide(row[at]), *row[at + 1 :]) for row in rows],
        )
    return hidden


def secrets_of(data: Data, masks: list[Masked]) -> set[str]:
    """The masked columns' real values (lower case) that no unmasked column holds."""
    masked = {(m.table, m.column) for m in masks}
    values: dict[bool, set[str]] = {True: set(), False: set()}
    for name, (names, rows) in data.items():
        for at, column in enumerate(names):
            is_masked = (name, column) in masked
            values[is_masked] |= {str(row[at]).lower() for row in rows if row[at] is not None}
    return values[True] - values[False]


def leaks(checked: list[Checked], secrets: set[str]) -> list[Leak]:
    """The cells of fenced results holding a secret the statement's text does not name."""
    found = []
    for item in checked:
        text = item.statement.sql.lower()
        unnamed = [secret for secret in secrets if secret not in text]
        for row in item.got:
            for cell in row:
                if not isinstance(cell, str):
                    continue
                low = cell.lower()
                found += [
                    Leak(item.statement, cell, secret)
                    for secret in unnamed
                    if low == secret or (len(secret) >= SHORTEST_INSIDE and secret in low)
                ]
    return found


# -- running -------------------------------------------------------------------------------


def connected_guard(
    target: Target, database: str, policy: sqlfence.Policy
) -> Callable[[], sqlfence.Guard]:
    """A maker of new guards (nothing cached) knowing what ``sqlfence.connect`` learns of
    ``database`` under ``policy`` (the columns of masked tables among it)."""
    with contextlib.closing(
        sqlfence.connect(target.fence_url(database), policy=policy, telemetry=False)
    ) as conn:
        guard = conn.guard
    return guard.with_catalog


def run_dialect(target: Target, root: Path, repeats: int) -> MaskRun:
    ddl = schemas(root)
    statements = load_statements(root, target.dialect)
    chosen: list[Masked] = []
    checked: list[Checked] = []
    found: list[Leak] = []
    timing: list[Timed] = []
    for number, (database, text) in enumerate(ddl.items()):
        target.create(database, text)
        target.create(ORACLE.format(database), text)
        tables = columns(target, database)
        mine = [s for s in statements if s.database == database]
        masks = choose_masks(database, number, tables, mine)
        chosen += masks
        data = mark_secrets(
            synthetic_data(target.dialect, tables, mine), masks, [s.sql for s in mine]
        )
        fill(target, database, data)
        fill(target, ORACLE.format(database), masked_data(data, masks))
        policy = policy_with(list(tables), masked_columns={m.key: m.masker for m in masks})
        unindexed = frozenset(m.table.lower() for m in masks)
        copies = Copies(
            database, ORACLE.format(database), rewritten_on_oracle=False, unindexed=unindexed
        )
        done = run_database(target, copies, mine, policy)
        checked += done
        found += leaks(done, secrets_of(data, masks))
        plain = connected_guard(target, database, policy_for(list(tables)))
        ruled = connected_guard(target, database, policy)
        timing += [(c.statement, plain, ruled) for c in done if c.applied]
        print(f"  {database}: " + ", ".join(f"{m.table}.{m.column} {m.masker}" for m in masks))
    latency_ = measure(target.dialect, timing, repeats)
    return MaskRun(DialectRun(target.dialect, [], checked, latency_), chosen, found)


def main(root: Path, dialects: list[str], repeats: int, write: bool) -> int:
    """Run the mask benchmark; 1 when a must-be-zero count is not 0."""
    began = time.monotonic()
    runs = [run_dialect(target, root, repeats) for target in each_target(dialects, " (masks)")]
    text = markdown(runs, time.monotonic() - began)
    tables = [table(SUMMARY, summary(runs)), table(LATENCY, latency(runs))]
    publish(tables, findings(runs), "bird-masks" if write else None, text)
    bad = (r.run.count("broken") + r.run.count("false denial") + len(r.leaks) for r in runs)
    return 1 if any(bad) else 0

"""Results of ``bird.py --mask`` (``bird_masks.py``): the masked columns, each masker's value
computed here from the README's definition, raw values found in fenced results, and the
rendering as a section of BENCHMARKS.md. Each statement's verdict, the counts and the latency
rows are the row-filter run's (``bird_row_filters_report``), over the same ``DialectRun``."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import bird_row_filters_report as filters
from bird_report import Statement
from bird_row_filters_report import ROWS, DialectRun
from common import machine, table

HIDDEN = "****"


@dataclass(frozen=True)
class Masked:
    """One masked column of one BIRD database."""

    database: str
    table: str  # as the database stores it
    column: str  # as the database stores it
    masker: str  # as the policy spells it: hash, redact, email, partial(0, 2)

    @property
    def key(self) -> str:
        """The policy key, quoted: PostgreSQL keeps a quoted ``"Date"`` (the corpus quotes
        some columns) where an unquoted key would mean ``date``."""
        return f'"{self.table}"."{self.column}"'

    def hide(self, value: object) -> object:
        """``value`` as the agent may see it, by the masker's definition (README, "Column
        masks"), not by the fence's SQL: NULL stays NULL; ``redact`` is '****'; ``hash`` the
        SHA-256 of the text in hex; ``email`` the first character, '***@' and what follows
        the first '@' (after the first character), else '****'; ``partial(a, b)`` the first
        a and last b characters around '****' when at least 4 characters stay hidden, else
        '****'."""
        if value is None:
            return None
        text = str(value)
        kind, _, args = self.masker.partition("(")
        if kind == "redact":
            return HIDDEN
        if kind == "hash":
            return hashlib.sha256(text.encode("utf-8")).hexdigest()
        if kind == "email":
            at = text.find("@")
            return f"{text[0]}***@{text[at + 1 :]}" if at > 0 else HIDDEN
        if kind == "partial":
            first, last = (int(number) for number in args.rstrip(")").split(","))
            if len(text) - first - last < len(HIDDEN):  # 4 characters hidden at least
                return HIDDEN
            return text[:first] + HIDDEN + text[len(text) - last :]
        raise ValueError(f"no Python definition of the masker {self.masker!r}")


@dataclass(frozen=True)
class Leak:
    """A raw value of a masked column found in a cell of a fenced result."""

    statement: Statement
    cell: str
    secret: str


@dataclass
class MaskRun:
    """One dialect's run: the statements as the row-filter run counts them, the masks, and
    the raw values found in fenced results."""

    run: DialectRun
    masks: list[Masked]
    leaks: list[Leak]


# The row-filter run's columns, said of masks; then the leak count.
SUMMARY = [
    *(name.replace("filter applied", "masks applied") for name in filters.SUMMARY),
    "raw values in fenced results",
]
SUMMARY[SUMMARY.index("filter changes the answer")] = "masks change the answer"
LATENCY = [name.replace("filter", "masks") for name in filters.LATENCY]


def summary(runs: list[MaskRun]) -> list[list[object]]:
    rows = filters.summary([r.run for r in runs])
    return [[*row, len(r.leaks)] for row, r in zip(rows, runs, strict=True)]


def latency(runs: list[MaskRun]) -> list[list[object]]:
    return filters.latency([r.run for r in runs])


def findings(runs: list[MaskRun]) -> list[str]:
    lines = filters.findings([r.run for r in runs])
    for r in runs:
        for leak in r.leaks:
            sql = " ".join(leak.statement.sql.split())
            lines.append(f"- raw value, {r.run.dialect} {leak.statement.label}: `{sql}`")
            lines.append(f"  cell {leak.cell!r} holds {leak.secret!r}")
    return lines


def _masked_columns(run: MaskRun) -> str:
    """``database `table.column` masker and ...``, database after database."""
    by_database: dict[str, list[str]] = {}
    for m in run.masks:
        by_database.setdefault(m.database, []).append(f"`{m.table}.{m.column}` {m.masker}")
    return ", ".join(f"{name} {' and '.join(masks)}" for name, masks in by_database.items())


def markdown(runs: list[MaskRun], seconds: float) -> str:
    masks = "; ".join(f"{r.run.dialect}: {_masked_columns(r)}" for r in runs)
    parts = [
        "## BIRD mini-dev with column masks (`benchmarks/bird.py --mask`)",
        "",
        f"Measured {machine()}; the run took {seconds:.0f} s.",
        "",
        f"Each BIRD database is created twice from the corpus's DDL with the row-filter run's "
        f"{ROWS} synthetic rows per table (a few values per column, some NULLs, the literals "
        "the statements compare a column with). The two text columns the statements name "
        "most (with their table) are masked: the first with `hash`, the second with `redact`, "
        "`partial(0, 2)` or `email` in turn from one database to the next; one row of each "
        "masked column holds a marked value (`...-s3cr3t-...`, shaped as an address under "
        "`email`). The second copy, the oracle, holds those columns' masked values, computed "
        "in Python from the README's definition of each masker. Every statement runs raw on "
        "both copies and through `sqlfence.connect(...)` on the real one, under bird.py's "
        "read-only policy plus `masked_columns`. The verdicts are the row-filter run's: "
        "*same rows* (the oracle's rows: multisets, floats to 6 places), *same error* (fails "
        "on the oracle too), *capped*, *order-dependent* (a LIMIT over ties picked other rows, "
        "as many, each among the oracle's rows without its LIMIT; or, on SQLite, the oracle "
        "gives them with its unordered scans reversed, or with its masked tables read as the "
        "fence reads them (`(SELECT * FROM t NOT INDEXED LIMIT -1)`); or the statement with "
        "only the fence's tie-breakers (`canonical_order`) gives them on the oracle, where an "
        "inner LIMIT over ties picks by the rows' values; the rewritten text itself is not "
        "run on the oracle, where it would mask masked values again). *Masks change the "
        "answer*: the "
        "raw statement gives other rows on the oracle than on the real copy. A broken rewrite "
        "fails after the fence where the oracle ran, or gives other rows; a raw value in a "
        "fenced result is a cell equal to a masked column's real value (or holding one of 6 "
        "characters or more) that no unmasked column holds and the statement's text "
        "does not contain. Target: 0 for all three.",
        "",
        f"Masked columns: {masks}.",
        "",
        table(SUMMARY, summary(runs)),
        "",
        "First-sight decide over the raw-accepted statements the masks apply to (a fresh "
        "guard per sample, knowing what `sqlfence.connect` learnt of the database's catalog; "
        "minimum of the samples per statement, then median and p95 over statements), with "
        "bird.py's policy and with the masks, beside `sqlglot.parse_one` of the same text in "
        "the same run; ratios are decide / parse at the median and at p95.",
        "",
        table(LATENCY, latency(runs)),
    ]
    lines = findings(runs)
    heading = "False denials, broken rewrites, order-dependent differences and raw values:"
    return "\n".join(parts + (["", heading, "", *lines] if lines else []))

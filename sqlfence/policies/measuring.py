"""What measures every tenant's rows or every session's work: refused under row filters and
masks, which hide the other tenants' rows that such a measure would count (the statement's
own rows are the only ones it may tell about)."""

from __future__ import annotations

from collections.abc import Iterator

from sqlfence.policies.tables import statistics_functions
from sqlfence.sql.analysis import StatementFacts
from sqlfence.sql.postgres_grammar import EngineReading
from sqlfence.sql.system_columns import TRANSACTION_COLUMNS


def measures(dialect: str, facts: StatementFacts, engine: EngineReading | None) -> Iterator[str]:
    """Why each measure a statement takes is refused: a function that sizes a table or
    reads a counter of every session's writes, a transaction id column of any table."""
    measuring = statistics_functions(dialect)
    sizes = facts.functions & measuring
    if engine is not None:
        sizes |= {name.lower() for name in engine.functions} & measuring
    for name in sorted(sizes):
        yield (
            f"{name}() measures every row of a table or every session's writes (it moves "
            "with other tenants' rows), which row filters and masks hide: it is not "
            "called under them"
        )
    stamps = TRANSACTION_COLUMNS.get(dialect, frozenset())
    read = {column for _, column in facts.columns}
    if engine is not None:  # PostgreSQL's grammar names every column, wherever it is
        read |= {column.rpartition(".")[2].lower() for column in engine.columns}
    for name in sorted(read & stamps):
        yield (
            f"{name} is the id of the transaction that wrote a row: it counts every "
            "session's transactions, other tenants' too, and is not read under row "
            "filters or masks"
        )

"""Policy names compare as the database compares identifiers (sqlfence/sql/names.py): a
quoted name in a policy is exact on PostgreSQL and case-insensitive on SQLite, so a quoted
deny entry can never match nothing where the database would read the same table."""

from __future__ import annotations

import warnings

import pytest

from sqlfence.policies.engine import Guard

QUERIES = {
    "sqlite": [
        "SELECT * FROM notes",
        'SELECT * FROM "Notes"',
        "SELECT * FROM NOTES",
        "SELECT * FROM main.notes",
        'SELECT * FROM "main"."NOTES"',
        "SELECT * FROM [Notes]",
        "SELECT * FROM `notes`",
    ],
    "postgres": ["SELECT * FROM notes", "SELECT * FROM NOTES", 'SELECT * FROM "notes"'],
}
# (dialect, the policy's entry, what each of the dialect's queries must be)
CASES = [
    ("sqlite", "Notes", "D" * 7),
    ("sqlite", '"Notes"', "D" * 7),
    ("sqlite", '"notes"', "D" * 7),
    ("sqlite", 'main."Notes"', "D" * 7),
    ("sqlite", '"main"."notes"', "D" * 7),
    ("postgres", "Notes", "DDD"),  # unquoted: folded, as PostgreSQL folds the queries
    ("postgres", '"notes"', "DDD"),
    ("postgres", '"Notes"', "aaa"),  # another table: "Notes" is not notes on PostgreSQL
]


@pytest.mark.parametrize(("dialect", "entry", "expected"), CASES)
def test_a_quoted_policy_name_matches_as_the_database_reads_it(
    dialect: str, entry: str, expected: str
) -> None:
    schema = "main" if dialect == "sqlite" else "public"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        guard = Guard(
            {"denied_tables": [entry], "max_rows": None}, dialect=dialect, default_schema=schema
        )
    found = "".join("a" if guard.decide(q).allowed else "D" for q in QUERIES[dialect])
    assert found == expected


def test_postgres_reads_a_quoted_mixed_case_table_as_its_own() -> None:
    guard = Guard({"denied_tables": ['"Notes"'], "max_rows": None}, dialect="postgres")
    assert not guard.decide('SELECT * FROM "Notes"').allowed

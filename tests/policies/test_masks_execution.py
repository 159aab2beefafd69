"""Column masks against real SQLite and PostgreSQL: the differential oracle.

Two databases per dialect hold the same tables: one with the real values, one where every
masked column already holds its masked value, computed here in Python from the masker's
definition (not by the fence's SQL). Each shape of ``data_masks/shapes.yaml`` is decided by a
masking guard; an allowed statement, rewritten, must give on the real database what the
statement as written gives on the pre-masked one, leave the tables as it leaves them there,
and return no secret value anywhere in any cell. Denied shapes are denied with the reason
given. Both policy forms are run: columns named table by table, and ``*.column`` keys.
A third form adds a row filter, so that filters and masks are run together.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from sqlfence.policies.engine import Guard
from sqlfence.sql.masks import SQLITE_HASH_FUNCTION, sha256_text
from tests.policies import oracle
from tests.postgres_server import PostgresServer

DATA = Path(__file__).parent / "data_masks" / "shapes.yaml"
SHAPES: list[dict[str, Any]] = yaml.safe_load(DATA.read_text())
TABLES = ("customers", "orders", "staff", "products", "archive")
SCHEMA = """
CREATE TABLE customers (id INTEGER PRIMARY KEY, tenant_id TEXT, name TEXT, email TEXT,
                        phone TEXT, ssn TEXT);
CREATE TABLE orders (id INTEGER PRIMARY KEY, tenant_id TEXT, customer_id INTEGER,
                     total INTEGER, note TEXT);
CREATE TABLE staff (id INTEGER PRIMARY KEY, email TEXT, badge TEXT);
CREATE TABLE products (id INTEGER PRIMARY KEY, name TEXT, price INTEGER);
CREATE TABLE archive (id INTEGER PRIMARY KEY, copied TEXT);
CREATE VIEW v_customers AS SELECT * FROM customers
"""
COLUMNS = {
    "customers": ("id", "tenant_id", "name", "email", "phone", "ssn"),
    "orders": ("id", "tenant_id", "customer_id", "total", "note"),
    "staff": ("id", "email", "badge"),
    "products": ("id", "name", "price"),
    "archive": ("id", "copied"),
    "v_customers": ("id", "tenant_id", "name", "email", "phone", "ssn"),
}
ROWS: dict[str, list[tuple[Any, ...]]] = {
    "customers": [
        (1, "A", "zoe", "zoe.quill@example.com", "555-0101", "111-22-3333"),
        (2, "A", "yuri", "yuri@mail.test", "+4-2", None),
        (3, "A", "kim", None, None, "999-88-7777"),
        (4, "B", "zoe", "zq@other.org", "555-0199", "222-33-4444"),
        (5, "B", "olga", "@nolocal.test", "123456789", "333-44-5555"),
        (6, "B", "ivan", "plainvalue", "55-51", ""),
    ],
    "orders": [
        (10, "A", 1, 10, "ring zoe at home"), (11, "A", 2, 25, None), (12, "A", 3, 40, "vip"),
        (20, "B", 4, 99, "owes money"), (21, "B", 5, 50, "vip"), (22, "B", 6, 7, None),
    ],
    "staff": [(1, "ops.lead@example.com", "B-7"), (2, "night@example.com", "B-9")],
    "products": [(100, "pen", 2), (101, "ink", 5)],
    "archive": [(1, "old")],
}  # fmt: skip
MASKS = {"email": "email", "phone": "partial(0,4)", "ssn": "redact", "name": "hash"}
POLICIES: dict[str, dict[str, Any]] = {
    "named": {
        "masked_columns": {
            **{f"customers.{column}": masker for column, masker in MASKS.items()},
            "orders.note": "null",
            "staff.email": "email",
        }
    },
    "by_column": {
        "masked_columns": {
            "*.email": "email",
            "*.phone": "partial(0,4)",
            "*.ssn": "redact",
            "customers.name": "hash",
            "orders.note": "null",
        }
    },
}
MASKED = {
    "customers": MASKS,
    "orders": {"note": "null"},
    "staff": {"email": "email"},
}


def _text(value: Any) -> str:
    return value if isinstance(value, str) else str(value)


def _email(value: Any) -> Any:
    text = _text(value)
    at = text.find("@")
    return text[0] + "***@" + text[at + 1 :] if at > 0 else "****"


def _partial(keep_first: int, keep_last: int) -> Callable[[Any], Any]:
    def mask(value: Any) -> Any:
        text = _text(value)
        if len(text) >= keep_first + keep_last + 4:  # 4 characters hidden at least
            return text[:keep_first] + "****" + text[len(text) - keep_last :]
        return "****"

    return mask


PYTHON_MASKERS: dict[str, Callable[[Any], Any]] = {
    "email": _email,
    "partial(0,4)": _partial(0, 4),
    "redact": lambda value: "****",
    "hash": lambda value: hashlib.sha256(_text(value).encode()).hexdigest(),
    "null": lambda value: None,
}


def masked_row(table: str, row: tuple[Any, ...]) -> tuple[Any, ...]:
    """The row as an agent may see it: each masked column by its masker's definition."""
    masks = MASKED.get(table, {})
    columns = COLUMNS[table]
    return tuple(
        None
        if value is None and masks.get(c) != "null"
        else PYTHON_MASKERS[masks[c]](value)
        if c in masks
        else value
        for c, value in zip(columns, row, strict=True)
    )


SECRETS = sorted(
    {
        str(row[COLUMNS[table].index(column)])
        for table, masks in MASKED.items()
        for column in masks
        for row in ROWS[table]
        if row[COLUMNS[table].index(column)] not in (None, "")
    }
)


def _cases() -> list[Any]:
    cases = []
    for dialect in ("sqlite", "postgres"):
        for index, shape in enumerate(SHAPES):
            if shape.get("only", dialect) != dialect:
                continue
            for form in (*POLICIES, "filtered"):
                marks = [pytest.mark.postgres] if dialect == "postgres" else []
                cases.append(
                    pytest.param(dialect, form, shape, id=f"{dialect}-{form}-{index}", marks=marks)
                )
    return cases


def _fill(execute: Any, premasked: bool, mark: str) -> None:
    for statement in SCHEMA.split(";"):
        execute(statement)
    for table, rows in ROWS.items():
        for row in rows:
            values = masked_row(table, row) if premasked else row
            execute(f"INSERT INTO {table} VALUES ({', '.join(mark for _ in row)})", values)


class Pair:
    """The real and the pre-masked database of one dialect, and a masking guard per form."""

    def __init__(self, dialect: str, real: Any, premasked: Any) -> None:
        self.dialect = dialect
        self.real = real
        self.premasked = premasked
        schema = "main" if dialect == "sqlite" else "public"
        columns = {f"{schema}.{name}": list(cols) for name, cols in COLUMNS.items()}
        forms = dict(POLICIES)
        forms["filtered"] = {
            **POLICIES["named"],
            "row_filters": {"products": "price > 0"},  # every row: the same on both databases
        }
        base = {"read_only": False, "statements": ["*"], "max_rows": None}
        self.guards = {
            form: Guard(
                {**base, **policy},
                dialect=dialect,
                tenant="A",
                views={f"{schema}.v_customers": [f"{schema}.customers"]},
                table_columns=columns,
                star_columns=columns,
            )
            for form, policy in forms.items()
        }

    def run(self, connection: Any, sql: str, params: list[Any] | None) -> tuple[Any, ...]:
        """The rows a statement returns (None for none) and every table's rows after it."""
        return oracle.run(connection, self.dialect, sql, params, TABLES)


def _cells(rows: list[tuple[Any, ...]] | None) -> Iterator[str]:
    for row in rows or ():
        for cell in row:
            yield str(cell)


def _hash_function(connection: Any) -> None:
    connection.create_function(SQLITE_HASH_FUNCTION, 1, sha256_text, deterministic=True)


@pytest.fixture(scope="module")
def sqlite_pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    """SQLite: the real database and the pre-masked one."""
    databases = oracle.sqlite_pair(tmp_path_factory.mktemp("masks"), _fill, _hash_function)
    yield Pair("sqlite", *next(databases))
    next(databases, None)


@pytest.fixture(scope="module")
def postgres_pair(postgres_server: PostgresServer) -> Iterator[Pair]:
    """PostgreSQL: the real database and the pre-masked one, on the session's server."""
    databases = oracle.postgres_pair(postgres_server, "mask", _fill)
    yield Pair("postgres", *next(databases))
    next(databases, None)


@pytest.mark.parametrize(("dialect", "form", "shape"), _cases())
def test_shape(
    dialect: str, form: str, shape: dict[str, Any], request: pytest.FixtureRequest
) -> None:
    """An allowed shape, rewritten, sees on the real values what it sees on the masked
    ones, changes the tables alike, and returns no secret; a denied shape is denied for the
    reason given."""
    pair: Pair = request.getfixturevalue(f"{dialect}_pair")
    sql = shape["sql"] if dialect == "sqlite" else shape["sql"].replace("?", "%s")
    params = shape.get("params")
    decision = pair.guards[form].decide(sql)
    if shape.get("expect", "same") == "denied":
        assert not decision.allowed, decision.sql
        assert shape["reason"] in decision.explain()
        return
    assert decision.allowed, decision.explain()
    expected_rows, expected_state = pair.run(pair.premasked, sql, params)
    rows, state = pair.run(pair.real, decision.sql, params)
    assert rows == expected_rows, decision.sql
    for table in TABLES:
        seen = oracle.rows([masked_row(table, tuple(row)) for row in state[table]])
        assert seen == oracle.rows(expected_state[table]), (table, decision.sql)
    leaked = [cell for cell in _cells(rows) for secret in SECRETS if secret in cell]
    assert not leaked, (leaked, decision.sql)


def test_corpus_is_big_enough() -> None:
    """The corpus holds at least 150 shapes."""
    assert len(SHAPES) >= 150


def test_python_maskers_are_the_definition() -> None:
    """The oracle's maskers, on the edge values the corpus holds."""
    assert _email("zoe.quill@example.com") == "z***@example.com"
    assert _email("@nolocal.test") == "****"
    assert _email("plainvalue") == "****"
    assert _partial(0, 4)("555-0101") == "****0101"
    assert _partial(0, 4)("55-51") == "****"
    assert _partial(0, 4)("+4-2") == "****"
    assert _partial(0, 4)("123456789") == "****6789"
    assert masked_row("customers", ROWS["customers"][2])[3:] == (None, None, "****")

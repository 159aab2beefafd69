"""The database profiles (cases in data/databases.yaml): every name resolves to one, and the
parts that used to keep their own tables read it."""

from __future__ import annotations

import contextlib
import importlib
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlglot.dialects.dialect import Dialect

import sqlfence.sql.dialects.iris  # noqa: F401  (registers the iris dialect with sqlglot)
from sqlfence import databases
from sqlfence.errors import ConfigurationError
from sqlfence.policies.engine import Guard
from sqlfence.policies.model import Policy
from sqlfence.proxy import drivers

CASES = yaml.safe_load((Path(__file__).parent / "data" / "databases.yaml").read_text())
PROFILES = {each.name: each for each in databases.PROFILES}


@pytest.mark.parametrize("case", CASES["names"], ids=[c["name"] for c in CASES["names"]])
def test_a_name_resolves_to_its_profile(case: dict[str, str]) -> None:
    """Every spelling of a database (alias, scheme, dialect, system, any case) finds it."""
    assert databases.profile(case["name"]) is PROFILES[case["kind"]]
    assert databases.find(case["name"]) is PROFILES[case["kind"]]


@pytest.mark.parametrize("name", CASES["unknown"])
def test_an_unknown_name_is_refused_naming_the_known_kinds(name: str) -> None:
    """profile() refuses a name of no database and lists the kinds; find() says None."""
    with pytest.raises(ConfigurationError, match=r"\(known: sqlite, postgres, iris\)"):
        databases.profile(name)
    assert databases.find(name) is None


@pytest.mark.parametrize("case", CASES["profiles"], ids=[c["kind"] for c in CASES["profiles"]])
def test_a_profile_holds_what_its_database_is(case: dict[str, Any]) -> None:
    """Each profile's facts are the ones the drivers, engine and catalogs used before."""
    found = PROFILES[case["kind"]]
    image = found.image.name if found.image is not None else None
    assert {
        "kind": found.name,
        "system": found.system,
        "dialect": found.dialect,
        "default_schema": found.default_schema,
        "paramstyle": found.paramstyle,
        "driver_module": found.driver_module,
        "url_schemes": list(found.url_schemes),
        "default_port": found.default_port,
        "read_only_options": dict(found.read_only_options),
        "image": image,
    } == case


def test_no_name_belongs_to_two_databases() -> None:
    """The names of the profiles are disjoint, so a lookup cannot depend on their order."""
    names = [name.lower() for each in databases.PROFILES for name in each.names]
    assert len(names) == len(set(names))


@pytest.mark.parametrize("database", databases.PROFILES, ids=lambda p: p.name)
def test_the_profile_names_a_sqlglot_dialect_and_its_driver_module(
    database: databases.DatabaseProfile,
) -> None:
    """sqlglot knows the dialect, and the DBAPI module declares the profile's paramstyle."""
    assert Dialect.get_or_raise(database.dialect)
    module = importlib.import_module(database.driver_module)
    assert module.paramstyle == database.paramstyle
    assert database.driver_module.split(".")[0] in database.driver_packages


@pytest.mark.parametrize("database", databases.PROFILES, ids=lambda p: p.name)
def test_the_driver_and_the_guard_read_the_profile(database: databases.DatabaseProfile) -> None:
    """Each URL scheme and name finds the profile's driver; a guard of its dialect
    qualifies unqualified names with its default schema."""
    for scheme in database.url_schemes:
        driver = drivers.for_url(drivers.ConnectionURL.parse(f"{scheme}://h/db"))
        assert driver.database is database
        assert (driver.dialect, driver.system) == (database.dialect, database.system)
    for name in database.names:
        assert drivers.for_dialect(name).database is database
    guard = Guard(Policy.unrestricted(), dialect=database.dialect)
    assert guard.namer.default_schema == guard.namer.normalize(database.default_schema)


@pytest.mark.parametrize("database", databases.PROFILES, ids=lambda p: p.name)
def test_every_catalog_name_holds_a_mark(database: databases.DatabaseProfile) -> None:
    """The cheap test before a name is split passes every catalog table, schema and prefix."""
    catalog = database.system_catalog
    names = (*catalog.tables, *catalog.schemas, *catalog.table_prefixes, *catalog.schema_prefixes)
    assert names
    for name in names:
        assert any(mark in name for mark in catalog.marks), name


def test_the_sqlite_catalog_queries_answer_in_their_shapes() -> None:
    """SQLite's list, describe, explain and schema stamp queries run and give their rows."""
    queries = databases.SQLITE.catalog
    with contextlib.closing(sqlite3.connect(":memory:")) as raw:
        raw.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, total REAL NOT NULL)")
        raw.execute("CREATE VIEW big AS SELECT id FROM orders WHERE total > 100")
        assert raw.execute(queries.list_tables).fetchall() == [
            (None, "big", 1),
            (None, "orders", 0),
        ]
        assert not queries.describe_with_schema
        assert raw.execute(queries.describe_table, ("orders",)).fetchall() == [
            ("id", "INTEGER", 0, 1),
            ("total", "REAL", 1, 0),
        ]
        assert raw.execute(queries.explain_prefix + "SELECT * FROM orders").fetchall()
        assert queries.schema_stamp is not None
        before = raw.execute(queries.schema_stamp).fetchone()
        raw.execute("CREATE TABLE lines (id INTEGER)")
        assert raw.execute(queries.schema_stamp).fetchone() != before

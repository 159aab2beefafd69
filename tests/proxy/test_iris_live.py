"""The guarded driver against a live IRIS, when ``SQLFENCE_IRIS_URL`` points at one.

IRIS cannot run on the CI machines, so this module is skipped without the variable (the one
exception to "missing components fail in CI"). Run it with the IRIS Community container:
``SQLFENCE_IRIS_URL=iris://_SYSTEM:SYS@localhost:1972/USER pytest tests/proxy/test_iris_live.py``.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote, urlsplit

import iris
import iris.dbapi
import pytest

import sqlfence
from sqlfence.proxy.iris_driver import DRIVER, is_licence_refusal

IRIS_URL = os.environ.get("SQLFENCE_IRIS_URL")
pytestmark = [
    pytest.mark.iris,
    pytest.mark.skipif(not IRIS_URL, reason="SQLFENCE_IRIS_URL is not set"),
]


@pytest.fixture
def table() -> Iterator[str]:
    """A scratch table with ten rows, dropped afterwards."""
    assert IRIS_URL is not None
    name = f"SQLUser.Fence{uuid.uuid4().hex[:8]}"
    admin = sqlfence.connect(IRIS_URL, policy=sqlfence.Policy.unrestricted())
    admin.execute(f"CREATE TABLE {name} (ID INTEGER PRIMARY KEY, Name VARCHAR(20))")
    cursor = admin.cursor()
    cursor.executemany(
        f"INSERT INTO {name} (ID, Name) VALUES (?, ?)", [(i, f"n{i}") for i in range(10)]
    )
    admin.commit()
    yield name
    admin.execute(f"DROP TABLE {name}")
    admin.commit()
    admin.close()


def test_select_with_injected_top(table: str) -> None:
    """A scan gets TOP n injected and returns at most max_rows rows."""
    assert IRIS_URL is not None
    with sqlfence.connect(IRIS_URL, policy={"max_rows": 3}) as conn:
        cursor = conn.execute(f"SELECT ID FROM {table} ORDER BY ID")
        assert [row[0] for row in cursor.fetchall()] == [0, 1, 2]
        assert cursor.decision is not None
        assert "TOP 3" in cursor.decision.sql


def test_trailing_semicolon_is_stripped(table: str) -> None:
    """IRIS rejects a trailing ';' (SQLCODE -25); the fence removes it."""
    assert IRIS_URL is not None
    with sqlfence.connect(IRIS_URL, policy={"max_rows": 100}) as conn:
        assert len(conn.execute(f"SELECT ID FROM {table};").fetchall()) == 10


def test_denial_and_error_mapping(table: str) -> None:
    """Denials raise PolicyViolation; IRIS errors become sqlfence classes with SQLCODE."""
    assert IRIS_URL is not None
    with sqlfence.connect(IRIS_URL, policy={"denied_tables": [table]}) as conn:
        with pytest.raises(sqlfence.PolicyViolation):
            conn.execute(f"SELECT * FROM {table}")
        with pytest.raises(sqlfence.DatabaseError):
            conn.execute("SELECT * FROM SQLUser.NoSuchTableAnywhere")


# -- issue 18: arrows, index hints and the licence limit on a live server -----------------

_CLASSES = {
    "Company": "Property Name As %String;",
    "Employee": "Property Name As %String;\nProperty Company As {package}.Company;",
    "Invoice": "Property Buyer As %String;\n"
    "Relationship Lines As {package}.LineItem [ Cardinality = children, Inverse = Invoice ];",
    "LineItem": "Property SKU As %String;\n"
    "Relationship Invoice As {package}.Invoice [ Cardinality = parent, Inverse = Lines ];",
}


@pytest.fixture
def classes() -> Iterator[str]:
    """A package of persistent classes with a reference and a parent-child relationship,
    one row each, compiled through the Native API and deleted afterwards."""
    assert IRIS_URL is not None
    package = f"Fence{uuid.uuid4().hex[:8]}"
    raw = _raw()
    native = iris.createIRIS(raw)
    names = ",".join(f"{package}.{name}" for name in _CLASSES)
    try:
        for name, body in _CLASSES.items():
            text = (
                f"Class {package}.{name} Extends %Persistent [ DdlAllowed ]\n"
                f"{{\n{body.format(package=package)}\n}}\n"
            )
            status = native.classMethodValue(
                "%Compiler.UDL.TextServices",
                "SetTextFromString",
                urlsplit(IRIS_URL).path.lstrip("/") or "USER",
                f"{package}.{name}",
                text,
            )
            assert status == 1, native.classMethodValue("%SYSTEM.Status", "GetErrorText", status)
        status = native.classMethodValue("%SYSTEM.OBJ", "Compile", names, "ck-d")
        assert status == 1, native.classMethodValue("%SYSTEM.Status", "GetErrorText", status)
        cursor = raw.cursor()
        cursor.execute(f"INSERT INTO {package}.Company (Name) VALUES ('Acme')")
        cursor.execute(f"INSERT INTO {package}.Employee (Name, Company) VALUES ('Ann', 1)")
        cursor.execute(f"INSERT INTO {package}.Invoice (Buyer) VALUES ('Bob')")
        cursor.execute(f"INSERT INTO {package}.LineItem (Invoice, SKU) VALUES (1, 'A-1')")
        raw.commit()
        yield package
    finally:
        for name in _CLASSES:
            with contextlib.suppress(Exception):
                native.classMethodValue(f"{package}.{name}", "%KillExtent")
        native.classMethodValue("%SYSTEM.OBJ", "Delete", names, "-d")
        raw.close()


def _raw() -> Any:
    assert IRIS_URL is not None
    parts = urlsplit(IRIS_URL)
    return iris.dbapi.connect(
        hostname=parts.hostname,
        port=parts.port or 1972,
        namespace=parts.path.lstrip("/") or "USER",
        username=unquote(parts.username or ""),
        password=unquote(parts.password or ""),
    )


def test_the_catalog_is_read_from_the_class_dictionary(classes: str) -> None:
    """Reference, parent and children columns come from %Dictionary, with their tables."""
    raw = _raw()
    try:
        catalog = {k.lower(): v.lower() for k, v in DRIVER.load_catalog(raw).items()}
    finally:
        raw.close()
    package = classes.lower()
    assert catalog[f"{package}.employee.company"] == f"{package}.company"
    assert catalog[f"{package}.lineitem.invoice"] == f"{package}.invoice"
    assert catalog[f"{package}.invoice.lines"] == f"{package}.lineitem"


def test_a_reference_arrow_is_judged_and_runs(classes: str) -> None:
    """Company->Name is denied when Company is, and runs when the package is allowed."""
    assert IRIS_URL is not None
    sql = f"SELECT Company->Name FROM {classes}.Employee"
    denied = {"denied_tables": [f"{classes}.Company"]}
    with (
        sqlfence.connect(IRIS_URL, policy=denied) as conn,
        pytest.raises(sqlfence.PolicyViolation, match="Company"),
    ):
        conn.execute(sql)
    with sqlfence.connect(IRIS_URL, policy={"allowed_tables": [f"{classes}.*"]}) as conn:
        assert [tuple(row) for row in conn.execute(sql).fetchall()] == [("Acme",)]


def test_a_parent_arrow_runs(classes: str) -> None:
    """The child's parent reference is an arrow to the parent table."""
    assert IRIS_URL is not None
    with sqlfence.connect(IRIS_URL, policy={"allowed_tables": [f"{classes}.*"]}) as conn:
        rows = conn.execute(f"SELECT Invoice->Buyer FROM {classes}.LineItem").fetchall()
        assert [tuple(row) for row in rows] == [("Bob",)]


def test_a_children_arrow_runs(classes: str) -> None:
    """The parent's children relationship, as the documentation's "relationship property
    of a parent table", reaches the child table (from the documentation only until this
    passes against a server)."""
    assert IRIS_URL is not None
    with sqlfence.connect(IRIS_URL, policy={"allowed_tables": [f"{classes}.*"]}) as conn:
        rows = conn.execute(f"SELECT Lines->SKU FROM {classes}.Invoice").fetchall()
        assert [tuple(row) for row in rows] == [("A-1",)]


def test_ignoreindex_star_runs(table: str) -> None:
    """FROM %IGNOREINDEX * (all indexes of the table) is accepted by the fence and IRIS."""
    assert IRIS_URL is not None
    with sqlfence.connect(IRIS_URL, policy={"max_rows": 100}) as conn:
        rows = conn.execute(f"SELECT ID FROM %IGNOREINDEX * {table} WHERE ID < 3").fetchall()
        assert sorted(row[0] for row in rows) == [0, 1, 2]


def test_a_full_server_names_its_licence_limit() -> None:
    """When IRIS refuses a connection for want of a licence unit, the fence says so (skipped
    when this server's licence allows more connections than the test opens)."""
    assert IRIS_URL is not None
    held = []
    refusal: BaseException | None = None
    try:
        for _ in range(40):
            try:
                held.append(_raw())
            except iris.dbapi.Error as error:
                refusal = error
                break
        if refusal is None:
            pytest.skip("40 connections were accepted: this server's licence is larger")
        assert is_licence_refusal(refusal), f"refused, but not for the licence: {refusal}"
        with pytest.raises(sqlfence.OperationalError, match="licence limit"):
            sqlfence.connect(IRIS_URL, policy={"max_rows": 1})
    finally:
        for connection in held:
            connection.close()

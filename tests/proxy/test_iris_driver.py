"""The IRIS driver's pure pieces: the arrow catalog read from the class dictionary, and the
message a licence refusal gets. The queries themselves run in test_iris_live.py."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import iris.dbapi
import pytest
import yaml

import sqlfence
from sqlfence import Guard
from sqlfence.proxy.iris_driver import (
    DRIVER,
    LICENCE_LIMIT,
    is_licence_refusal,
    reference_catalog,
)

DATA = yaml.safe_load((Path(__file__).parent / "data" / "iris_dictionary.yaml").read_text())
CATALOG = reference_catalog(DATA["rows"])


def test_the_catalog_holds_the_columns_arrows_follow() -> None:
    """References and one/parent relationships are columns, children the relationship's
    name; collections, the many side, dotted names and clashing columns are left out."""
    assert reference_catalog(DATA["rows"]) == DATA["catalog"]


ARROWS: list[tuple[dict[str, Any], str, bool, str | None]] = [
    ({"denied_tables": ["Sample.Company"]}, "SELECT Company->Name FROM Sample.Employee", False,
     "denied_tables"),
    ({"denied_tables": ["Sample.Invoice"]}, "SELECT Cparent->Buyer FROM Sample.LineItem", False,
     "denied_tables"),
    ({"denied_tables": ["Sample.LineItem"]}, "SELECT Pchildren->ProductSKU FROM Sample.Invoice",
     False, "denied_tables"),
    ({"denied_tables": ["Sample.Employee"]}, "SELECT e.Mentor->Name FROM Sample.Employee e",
     False, "denied_tables"),
    ({"allowed_tables": ["Sample.*"]}, "SELECT Company->Headquarters->City FROM Sample.Employee",
     True, None),
    ({"allowed_tables": ["Sample.*"]}, "SELECT Projects->Name FROM Sample.Employee", False,
     "unresolved_table"),
    ({"allowed_tables": ["Sample.*"]}, "SELECT Spouse->Name FROM Sample.Person", False,
     "unresolved_table"),
]  # fmt: skip


@pytest.mark.parametrize(("policy", "sql", "allowed", "rule"), ARROWS, ids=[a[1] for a in ARROWS])
def test_arrows_are_judged_by_the_table_they_reach(
    policy: dict[str, Any], sql: str, allowed: bool, rule: str | None
) -> None:
    """With the dictionary's catalog the reached table is judged; what it cannot place is
    denied under table rules."""
    decision = Guard(policy, dialect="iris", catalog=CATALOG).decide(sql)
    assert decision.allowed is allowed, decision.explain()
    if rule is not None:
        assert rule in {reason.rule for reason in decision.reasons}


@pytest.mark.parametrize(
    ("message", "refusal"),
    [
        ("<LICENSE LIMIT EXCEEDED>", True),
        ("Connection refused: license limit exceeded", True),
        ("No license units available", True),
        ("Access Denied", False),
        ("[SQLCODE: <-30>:<Table 'SQLUser.LicenseLimit' not found>]", False),
        ("<COMMUNICATION LINK ERROR> Failed to connect to server; Details: Error code: -1", False),
    ],
)
def test_licence_refusals_are_told_apart(message: str, refusal: bool) -> None:
    """Only IRIS's licence-limit refusal reads as one (not a table that happens to be named so)."""
    assert is_licence_refusal(message) is refusal


def test_a_licence_refusal_names_the_limit() -> None:
    """The driver's own OperationalError for a licence refusal becomes sqlfence's, saying why."""
    translated = DRIVER.translate(iris.dbapi.OperationalError("<LICENSE LIMIT EXCEEDED>"))
    assert isinstance(translated, sqlfence.OperationalError)
    assert LICENCE_LIMIT in str(translated)
    assert "<LICENSE LIMIT EXCEEDED>" in str(translated)


def test_a_refused_connection_is_an_operational_error() -> None:
    """A port nobody listens on gives sqlfence.OperationalError, without the licence text."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(sqlfence.OperationalError) as raised:
        sqlfence.connect(
            f"iris://u:p@127.0.0.1:{port}/USER?timeout=2&sharedmemory=false",
            policy=sqlfence.Policy.unrestricted(),
        )
    assert LICENCE_LIMIT not in str(raised.value)

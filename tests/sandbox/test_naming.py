"""Namespace names are valid identifiers everywhere, unique and readable."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from sqlfence.sandbox import naming

WHEN = datetime(2026, 11, 26, 11, 8, 52, tzinfo=timezone.utc)


def test_agent_name_has_the_design_shape() -> None:
    """An agent's namespace is AGENT_<ID>_<YYYYMMDD_HHMMSS>."""
    assert (
        naming.namespace_name("assistant-123", when=WHEN) == "AGENT_ASSISTANT_123_20261126_110852"
    )


def test_tenant_name_has_the_design_shape() -> None:
    """A tenant's agent gets TENANT_<T>_AGENT_<ID>_<stamp>_<token>."""
    name = naming.namespace_name("a1", tenant="acme-corp", when=WHEN, token="3f9a")
    assert name == "TENANT_ACME_CORP_AGENT_A1_20261126_110852_3F9A"


@pytest.mark.parametrize(
    "raw", ["héllo wörld", "a;DROP TABLE x--", "123", "__x__", "ÅÄÖ-9", "a" * 200, "🙂x"]
)
def test_every_name_is_a_valid_identifier(raw: str) -> None:
    """Whatever the agent id, the name is a letter first, [A-Za-z0-9_], at most 63 chars."""
    name = naming.namespace_name(raw, tenant=raw, when=WHEN, token="ab12")
    assert naming.is_valid(name)
    assert len(name) <= naming.MAX_LENGTH


def test_truncated_names_stay_unique() -> None:
    """Two long ids differing only at the end get different names (hash suffix)."""
    first = naming.namespace_name("x" * 80 + "1", when=WHEN)
    second = naming.namespace_name("x" * 80 + "2", when=WHEN)
    assert first != second
    assert len(first) == len(second) == naming.MAX_LENGTH


def test_empty_ids_are_refused() -> None:
    """An id with nothing usable in it is an error, not an empty name."""
    with pytest.raises(ValueError, match="no letters or digits"):
        naming.sanitise("--- !!")


def test_derived_names_fit() -> None:
    """A snapshot clone name of a 63-char name still fits and differs from the original."""
    name = naming.namespace_name("y" * 80, when=WHEN)
    clone = naming.derived(name, "snap-before")
    assert naming.is_valid(clone)
    assert clone != name


def test_sandbox_names_are_recognised() -> None:
    """Names sqlfence makes are recognisable by their prefix; others are not."""
    assert naming.is_sandbox_name("agent_a1_20261126_110852")
    assert not naming.is_sandbox_name("postgres")

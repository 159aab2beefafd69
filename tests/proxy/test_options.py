"""The fence's options (sqlfence/proxy/options.py): declared once in ``FenceOptions``, spelt
out alike by connect() and wrap() and by everything that takes or forwards them, and
resolved before a database is reached."""

from __future__ import annotations

import dataclasses
import inspect
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any, ForwardRef

import pytest

import sqlfence
from sqlfence.integrations import mcp, mcp_serve
from sqlfence.integrations import sqlalchemy as fenced
from sqlfence.observe.fanout import build_observer
from sqlfence.observe.observer import NULL_OBSERVER
from sqlfence.observe.settings import AuditSettings, MonitorSettings, TelemetrySettings
from sqlfence.proxy.options import CONNECT_OPTIONS, FENCE_OPTIONS, SESSION_LABELS, FenceOptions
from sqlfence.sandbox import AgentSandbox
from sqlfence.sandbox.options import SandboxOptions

POLICY = {"read_only": True}
NO_DEFAULT = inspect.Parameter.empty
DECLARED = {field.name: (field.default, field.type) for field in dataclasses.fields(FenceOptions)}


def _annotation(value: object) -> object:
    # Every module says ``from __future__ import annotations``: annotations are their text
    # (a TypedDict's are ForwardRefs of it), so the same type is spelt the same.
    return value.__forward_arg__ if isinstance(value, ForwardRef) else value


def _keywords(function: Callable[..., Any]) -> dict[str, tuple[object, object]]:
    """Default and annotation of each parameter that can be given by keyword."""
    return {
        name: (parameter.default, _annotation(parameter.annotation))
        for name, parameter in inspect.signature(function).parameters.items()
        if parameter.kind in (parameter.KEYWORD_ONLY, parameter.POSITIONAL_OR_KEYWORD)
    }


def _only_keywords(function: Callable[..., Any]) -> tuple[str, ...]:
    parameters = inspect.signature(function).parameters.values()
    return tuple(p.name for p in parameters if p.kind is p.KEYWORD_ONLY)


# -- declared once, spelt alike ---------------------------------------------------------


def test_connect_spells_out_the_declared_options_in_order() -> None:
    """connect()'s keywords are the fence options, then the session labels, as declared."""
    assert _only_keywords(sqlfence.connect) == CONNECT_OPTIONS == (*FENCE_OPTIONS, *SESSION_LABELS)
    keywords = _keywords(sqlfence.connect)
    assert {name: keywords[name] for name in FENCE_OPTIONS} == DECLARED


def test_wrap_spells_out_the_declared_options_in_order() -> None:
    """wrap()'s keywords are the fence options between dialect and module, as declared."""
    assert _only_keywords(sqlfence.wrap) == ("dialect", *FENCE_OPTIONS, "module")
    keywords = _keywords(sqlfence.wrap)
    assert {name: keywords[name] for name in FENCE_OPTIONS} == DECLARED


# What else takes fence options, and which: the same names, defaults and types as declared.
CONSUMERS: list[tuple[str, Callable[[], dict[str, tuple[object, object]]], tuple[str, ...]]] = [
    ("build_observer", lambda: _keywords(build_observer), ("audit", "monitoring", "telemetry")),
    ("MCPSettings", lambda: _keywords(mcp.MCPSettings), ("policy", "agent_id", "tenant", "audit")),
    ("mcp_serve.serve", lambda: _keywords(mcp_serve.serve), ("policy", "agent_id", "audit")),
    ("AgentSandbox.create", lambda: _keywords(AgentSandbox.create), ("monitoring", "audit")),
    ("AgentSandbox.open", lambda: _keywords(AgentSandbox.open), ("monitoring", "audit")),
    ("AgentSandbox()", lambda: _keywords(AgentSandbox), ("monitoring", "audit")),
]


@pytest.mark.parametrize(
    ("where", "read", "names"), CONSUMERS, ids=[where for where, _, _ in CONSUMERS]
)
def test_every_consumer_takes_the_options_as_declared(
    where: str, read: Callable[[], dict[str, tuple[object, object]]], names: tuple[str, ...]
) -> None:
    """A consumer's fence options have the declared defaults and types."""
    taken = read()
    assert {name: taken[name] for name in names} == {name: DECLARED[name] for name in names}


def test_the_pools_sandbox_options_carry_the_declared_types() -> None:
    """SandboxOptions' audit and monitoring are the fence options' types."""
    hints = {name: _annotation(value) for name, value in SandboxOptions.__annotations__.items()}
    assert hints["audit"] == DECLARED["audit"][1]
    assert hints["monitoring"] == DECLARED["monitoring"][1]


def test_the_sqlalchemy_dialects_take_every_fence_option() -> None:
    """The dialects pick the declared options out of connect_args and the URL query."""
    assert fenced.FENCE_OPTIONS is FENCE_OPTIONS


# -- resolved before a database is reached ------------------------------------------------


def test_resolved_gives_each_observing_option_its_settings() -> None:
    """resolved() turns audit, monitoring and telemetry into settings and keeps the rest."""
    options = FenceOptions(policy=POLICY, audit=True, monitoring={"slow_query_ms": 5})
    resolved = options.resolved()
    assert resolved.audit == AuditSettings()
    assert resolved.monitoring == MonitorSettings(slow_query_ms=5)
    assert resolved.telemetry == TelemetrySettings()
    assert (resolved.policy, resolved.agent_id, resolved.catalog) == (POLICY, None, None)
    assert resolved.resolved() == resolved


# (option, a value it refuses, the error, what the message says)
REFUSED: list[tuple[str, object, type[Exception], str]] = [
    ("audit", {"retention_day": 9}, sqlfence.ConfigurationError, "invalid audit= settings"),
    ("audit", 42, TypeError, "audit= takes .*, not int 42"),
    ("monitoring", {"webhook": "ftp://x"}, sqlfence.ConfigurationError, "invalid monitoring="),
    ("monitoring", "on", TypeError, "monitoring= takes .*, not str 'on'"),
    ("telemetry", {"span": False}, sqlfence.ConfigurationError, "invalid telemetry= settings"),
    ("telemetry", 0, TypeError, "telemetry= takes .*, not int 0"),
]


@pytest.mark.parametrize(
    ("option", "given", "error", "message"),
    REFUSED,
    ids=[f"{option}-{error.__name__}" for option, _, error, _ in REFUSED],
)
def test_a_wrong_option_is_named(
    option: str, given: object, error: type[Exception], message: str
) -> None:
    """Invalid settings are a ConfigurationError and a wrong shape a TypeError, each naming
    the option and what was given."""
    with pytest.raises(error, match=message):
        FenceOptions(**{option: given}).resolved()  # type: ignore[arg-type]  # refused shapes


@pytest.mark.parametrize(("option", "given", "error", "message"), REFUSED[:2])
def test_connect_refuses_a_wrong_option_before_opening_the_database(
    option: str, given: object, error: type[Exception], message: str, tmp_path: Path
) -> None:
    """connect() names a wrong option before it reaches the database (which is missing, and
    would be an OperationalError)."""
    missing = tmp_path / "missing.db"
    with pytest.raises(error, match=message):
        sqlfence.connect(f"sqlite:///{missing}", policy=POLICY, **{option: given})  # type: ignore[arg-type]  # refused shapes


def test_wrap_refuses_a_wrong_option_before_touching_the_connection() -> None:
    """wrap() names a wrong option before it hardens the caller's connection."""
    raw = sqlite3.connect(":memory:")
    with pytest.raises(sqlfence.ConfigurationError, match="invalid telemetry= settings"):
        sqlfence.wrap(raw, policy=POLICY, telemetry={"span": False})
    assert raw.execute("PRAGMA query_only").fetchone() == (0,)  # not made read-only
    raw.close()


def test_an_observer_given_replaces_the_three_unlooked_at(tmp_path: Path) -> None:
    """With observer=, audit, monitoring and telemetry are not used, so not resolved."""
    options = FenceOptions(observer=NULL_OBSERVER, audit=42)  # type: ignore[arg-type]  # refused, were it looked at
    assert options.resolved() is options
    with sqlfence.connect(
        f"sqlite:///{tmp_path / 'x.db'}?mode=rwc",
        policy=POLICY,
        observer=NULL_OBSERVER,
        audit=42,  # type: ignore[arg-type]  # refused, were it looked at
    ) as connection:
        assert connection.execute("SELECT 1").fetchone() == (1,)


def test_a_keyword_the_driver_does_not_take_lists_the_declared_options(tmp_path: Path) -> None:
    """An unknown keyword is the driver's; the error lists sqlfence's own options."""
    with pytest.raises(sqlfence.ConfigurationError) as raised:
        sqlfence.connect(f"sqlite:///{tmp_path / 'x.db'}?mode=rwc", policy=POLICY, colour="blue")
    assert f"sqlfence's own options are: {', '.join(CONNECT_OPTIONS)};" in str(raised.value)

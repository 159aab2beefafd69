"""What sandboxes are made with (sqlfence/sandbox/options.py): the options a pool passes to
every sandbox are AgentSandbox.create's, and a wrong one fails at once, before anything is
made, instead of each sandbox failing in the pool's background."""

from __future__ import annotations

import inspect
import time
from pathlib import Path
from typing import Any, ForwardRef

import pytest

from sqlfence.errors import ConfigurationError
from sqlfence.observe.settings import AuditSettings, MonitorSettings
from sqlfence.sandbox import AgentSandbox, SandboxPool
from sqlfence.sandbox.options import SANDBOX_OPTIONS, SandboxOptions, observing
from tests.sandbox.conftest import leftovers

POOLS_OWN = ("backend", "runtime", "placement", "image", "server_url", "root")


def _text(annotation: object) -> object:
    # ``from __future__ import annotations``: a TypedDict's types are ForwardRefs of the text.
    return annotation.__forward_arg__ if isinstance(annotation, ForwardRef) else annotation


def test_the_sandbox_options_are_creates_beyond_the_pools_own() -> None:
    """SandboxOptions is AgentSandbox.create's keywords less the pool's own and the agent it
    sets, in create's order and with its types."""
    parameters = inspect.signature(AgentSandbox.create).parameters
    expected = {
        name: parameter.annotation
        for name, parameter in parameters.items()
        if name not in (*POOLS_OWN, "agent_id")
    }
    declared = {name: _text(value) for name, value in SandboxOptions.__annotations__.items()}
    assert declared == expected
    assert tuple(expected) == SANDBOX_OPTIONS


def test_the_pools_own_parameters_are_not_sandbox_options() -> None:
    """The pool's own parameters are create's too, but the pool's to set."""
    pool = inspect.signature(SandboxPool).parameters
    assert set(POOLS_OWN) <= set(pool)
    assert not set(SANDBOX_OPTIONS) & set(pool)


def test_observing_resolves_audit_and_monitoring() -> None:
    """audit and monitoring come back as settings; an enabled audit_log stands for audit."""
    assert observing() == (AuditSettings(enabled=False), MonitorSettings())
    audit, monitoring = observing(None, {"slow_query_ms": 5}, {"directory": "logs"})
    assert (audit, monitoring) == (
        AuditSettings(directory=Path("logs")),
        MonitorSettings(slow_query_ms=5),
    )
    assert observing(audit_log={"enabled": False})[0] == AuditSettings(enabled=False)
    assert observing(True, audit_log={"directory": "ignored"})[0] == AuditSettings()


# (the options, the error, what its message says)
WRONG: list[tuple[dict[str, Any], type[Exception], str]] = [
    ({"monitorin": {}}, TypeError, "unexpected keyword arguments: monitorin"),
    ({"audit": 42}, TypeError, r"audit= takes .*, not int 42"),
    ({"monitoring": {"alert_on_cpu": 80}}, ConfigurationError, "invalid monitoring= settings"),
    ({"audit_log": {"retention_day": 9}}, ConfigurationError, "invalid audit= settings"),
]


@pytest.mark.parametrize(
    ("options", "error", "message"), WRONG, ids=[next(iter(options)) for options, _, _ in WRONG]
)
def test_a_pool_refuses_a_wrong_sandbox_option_at_once(
    options: dict[str, Any], error: type[Exception], message: str, root: Path
) -> None:
    """A misspelt or wrong option raises from SandboxPool(), before any sandbox is made."""
    started = time.monotonic()
    with pytest.raises(error, match=message):
        SandboxPool(size=1, backend="sqlite", root=root, **options)
    assert time.monotonic() - started < 5  # not an acquire timeout
    assert leftovers(root) == []


@pytest.mark.parametrize(
    ("options", "error", "message"), WRONG[1:], ids=[next(iter(o)) for o, _, _ in WRONG[1:]]
)
def test_create_refuses_a_wrong_option_before_making_anything(
    options: dict[str, Any], error: type[Exception], message: str, root: Path
) -> None:
    """AgentSandbox.create names a wrong audit or monitoring before a namespace exists."""
    with pytest.raises(error, match=message):
        AgentSandbox.create(agent_id="a1", root=root, **options)
    assert leftovers(root) == []


def test_a_sandbox_passes_its_options_to_its_connections(root: Path) -> None:
    """The pool's monitoring reaches every sandbox's fence connections."""
    pool = SandboxPool(size=1, backend="sqlite", root=root, monitoring={"slow_query_ms": 7})
    with pool, pool.acquire(agent_id="a1") as sandbox, sandbox.get_connection() as connection:
        monitor = connection._observer.monitor  # type: ignore[attr-defined]  # the pipeline's
        assert monitor.settings == MonitorSettings(slow_query_ms=7)

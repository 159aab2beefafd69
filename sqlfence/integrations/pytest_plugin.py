"""pytest plugin: an ``agent_sandbox`` fixture giving each test its own SQLite sandbox.

The sandbox's policy comes from the ``sqlfence_policy`` marker (a mapping, a YAML path or a
``Policy``), on the test, its class or its module; without one the sandbox default applies
(the agent owns its namespace: reads, writes and DDL, no side doors). The sandbox lives under
the test's ``tmp_path`` and is destroyed after the test, whatever its outcome::

    @pytest.mark.sqlfence_policy({"read_only": True, "max_rows": 10})
    def test_agent(agent_sandbox):
        conn = agent_sandbox.get_connection()

Enabled by the ``pytest11`` entry point ``sqlfence``, or by
``-p sqlfence.integrations.pytest_plugin``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sqlfence.policies.loader import load_policy
from sqlfence.policies.model import Policy
from sqlfence.sandbox import AgentSandbox

MARKER = "sqlfence_policy"


def pytest_configure(config: pytest.Config) -> None:
    """Declare the marker, so ``--strict-markers`` accepts it."""
    config.addinivalue_line(
        "markers",
        f"{MARKER}(policy): the sqlfence policy of this test's agent_sandbox "
        "(a mapping, a YAML path or a sqlfence.Policy)",
    )


@pytest.fixture
def agent_sandbox(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[AgentSandbox]:
    """A fresh SQLite sandbox for this test, with the marker's policy; destroyed afterwards."""
    marker = request.node.get_closest_marker(MARKER)
    policy = _policy(marker.args[0] if marker and marker.args else None)
    agent_id = re.sub(r"[^A-Za-z0-9_-]+", "-", request.node.name)[:40] or "test"
    sandbox = AgentSandbox.create(
        agent_id=agent_id,
        backend="sqlite",
        access_policy=policy,
        root=tmp_path / ".sqlfence",
    )
    try:
        yield sandbox
    finally:
        sandbox.destroy()


def _policy(given: Any) -> Policy | dict[str, Any] | None:
    if given is None or isinstance(given, (Policy, dict)):
        return given
    return load_policy(given).resolve()

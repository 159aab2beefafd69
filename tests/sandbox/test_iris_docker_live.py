"""IRIS sandboxes in a Docker container, when ``SQLFENCE_TEST_IRIS_IMAGE`` names a local
IRIS community image (``intersystemsdc/iris-community``: its hook applies IRIS_USERNAME /
IRIS_PASSWORD) and an engine runs. No IRIS image can be pulled on the CI machines, so this
module is skipped without the variable, like the other IRIS live tests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from sqlfence.errors import SandboxError
from sqlfence.sandbox import AgentSandbox, reap
from sqlfence.sandbox.runtimes import docker as runtime

IMAGE = os.environ.get("SQLFENCE_TEST_IRIS_IMAGE")
pytestmark = [
    pytest.mark.iris,
    pytest.mark.docker,
    pytest.mark.skipif(not IMAGE, reason="SQLFENCE_TEST_IRIS_IMAGE is not set"),
]


@pytest.fixture
def home(root: Path) -> Iterator[Path]:
    """A sandbox root on a running engine; no container of it may outlive the test."""
    try:
        runtime.client()
    except SandboxError:
        pytest.skip("no Docker engine answers")
    resolved = root.resolve()
    yield resolved
    runtime.stop_shared()
    left = [c.name for c in runtime.containers(resolved)]
    reap(resolved, everything=True)
    assert left == [], f"containers leaked: {left}"


def test_an_iris_container_is_ready_only_with_its_password_and_stays_healthy(home: Path) -> None:
    """The sandbox is made only once the admin login with the new password works (the image
    hook's line seen), and the health probe, a real login, keeps calling it healthy."""
    with AgentSandbox.create(
        agent_id="a1", backend="iris", runtime="docker", image=IMAGE, root=home,
        limits={"max_connections": 2},
    ) as sb:  # fmt: skip
        assert sb.healthy(probe=True)
        with sb.get_connection() as conn:
            assert conn.execute("SELECT 1").fetchone()[0] == 1
        assert sb.healthy(probe=True)

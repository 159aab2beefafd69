"""The pytest plugin's agent_sandbox fixture, run in an inner pytest session (pytester)."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

INNER = """
import pytest
from pathlib import Path

import sqlfence

SEEN = []


def test_writer_by_default(agent_sandbox):
    conn = agent_sandbox.get_connection()
    conn.execute("CREATE TABLE t (i INTEGER)")
    conn.execute("INSERT INTO t VALUES (1)")
    conn.commit()
    assert conn.execute("SELECT i FROM t").fetchall() == [(1,)]
    SEEN.append(Path(agent_sandbox.namespace.location))


@pytest.mark.sqlfence_policy({"read_only": True, "denied_tables": ["secrets"]})
def test_policy_from_marker(agent_sandbox):
    conn = agent_sandbox.get_connection()
    assert conn.policy.read_only
    with pytest.raises(sqlfence.PolicyViolation):
        conn.execute("CREATE TABLE t (i INTEGER)")
    with pytest.raises(sqlfence.PolicyViolation):
        conn.execute("SELECT * FROM secrets")
    SEEN.append(Path(agent_sandbox.namespace.location))


def test_sandboxes_were_isolated_and_destroyed(agent_sandbox):
    conn = agent_sandbox.get_connection()
    with pytest.raises(sqlfence.OperationalError):  # the first test's table is not here
        conn.execute("SELECT i FROM t")
    assert len(SEEN) == 2 and SEEN[0] != SEEN[1]
    assert not any(path.exists() for path in SEEN)
"""


def test_agent_sandbox_fixture(pytester: pytest.Pytester) -> None:
    """Each test gets its own sandbox with the marker's policy, destroyed after the test."""
    pytester.makepyfile(test_inner=INNER)
    # The plugin is found through its pytest11 entry point, as in a user's project.
    result = pytester.runpytest_subprocess("--strict-markers", "-q")
    result.assert_outcomes(passed=3)

"""``policy learn`` (sqlfence/policies/learning.py): learning only narrows. The learned
allowlist goes where the agent's rules live, every other section is kept, and the agent's
resolved policy is the base's plus the allowlist; without a base the policy is as strict as
what the audit log shows."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from sqlfence.policies.learning import Seen, learned_policy
from sqlfence.policies.loader import load_policy

CASES = yaml.safe_load((Path(__file__).parent / "learning" / "cases.yaml").read_text())
SHAPES = ["0123456789abcdef", "fedcba9876543210"]
REPO = Path(__file__).resolve().parents[2]
READS = Seen(frozenset({"select"}), 37)


def _at(data: dict[str, Any], path: list[str]) -> dict[str, Any]:
    for key in path:
        data = data[key]
    return data


def _resolutions(data: dict[str, Any]) -> dict[tuple[str | None, str | None], dict[str, Any]]:
    """Every (agent, tenant) the file names, resolved, allowlist left out."""
    policies = load_policy(data)
    sections = data if any(k in data for k in ("default", "tenants", "agents")) else {}
    tenants = sections.get("tenants") or {}
    pairs: set[tuple[str | None, str | None]] = {(None, None)}
    pairs |= {(agent, None) for agent in sections.get("agents") or {}}
    for tenant, section in tenants.items():
        pairs.add((None, tenant))
        pairs |= {(agent, tenant) for agent in (section or {}).get("agents") or {}}
    found = {}
    for agent, tenant in pairs:
        dumped = policies.resolve(agent, tenant).model_dump()
        dumped.pop("allowlist")
        found[(agent, tenant)] = dumped
    return found


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_the_allowlist_goes_where_the_agents_rules_live(
    case: dict[str, Any], tmp_path: Path
) -> None:
    base = tmp_path / "base.yaml"
    base.write_text(yaml.safe_dump(case["base"]))
    agent, tenant = case.get("agent"), case.get("tenant")
    learned = learned_policy(SHAPES, READS, base=base, agent_id=agent, tenant=tenant)
    assert _at(learned, case["at"])["allowlist"] == sorted({*SHAPES, *case.get("already", [])})
    # The agent's policy is the base's plus the allowlist, and nobody else's changed.
    before = _resolutions(case["base"])
    after = _resolutions(learned)
    for pair, policy in before.items():
        assert after[pair] == policy, pair
    assert load_policy(learned).resolve(agent, tenant).allowlist == tuple(
        sorted({*SHAPES, *case.get("already", [])})
    )


@pytest.mark.parametrize("path", sorted((REPO / "policies").glob("*.yaml")), ids=lambda p: p.name)
def test_learning_on_the_repositorys_policies_never_loosens(path: Path) -> None:
    data = yaml.safe_load(path.read_text())
    before = _resolutions(data)
    for agent, tenant in before:
        learned = learned_policy(SHAPES, READS, base=path, agent_id=agent, tenant=tenant)
        after = _resolutions(learned)
        for pair, policy in before.items():
            assert after[pair] == policy, (agent, tenant, pair)


@pytest.mark.parametrize(
    ("events", "expected"),
    [
        ([("select", 37), ("select", 3)], {"read_only": True, "max_rows": 37}),
        ([("select", 0)], {"read_only": True, "max_rows": 1}),
        ([("select", 5000)], {"read_only": True, "max_rows": 1000}),
        ([("select", None)], {"read_only": True}),
        ([("select", 2), ("insert", None)], {"read_only": False, "max_rows": 2}),
        ([(None, None)], {"read_only": False}),
    ],
)
def test_without_a_base_the_policy_is_as_strict_as_what_was_seen(
    events: list[tuple[str | None, int | None]], expected: dict[str, Any]
) -> None:
    seen = Seen.of(SimpleNamespace(operation=op, rows_returned=rows) for op, rows in events)
    learned = learned_policy(SHAPES, seen)
    assert learned == {**expected, "allowlist": SHAPES}
    load_policy(learned)  # a policy that loads

"""``policy learn``: a policy whose allowlist holds the statement shapes an agent ran.

Learning only narrows. With a base policy the whole file is kept (default, tenants, other
agents) and the learned allowlist is added where the agent's own rules live, merged with any
allowlist already there; the result is checked to resolve, for that agent, to exactly the
base policy plus the allowlist. Without a base nothing is known about the limits the agent
ran under, so the learned policy is as strict as what was seen: read-only when every learned
statement read, and ``max_rows`` no more than the most rows any of them returned.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlfence.errors import PolicyError
from sqlfence.policies.loader import load_policy, read_policy_data
from sqlfence.policies.model import Policy

_SECTIONS = ("default", "tenants", "agents")
_READS = frozenset({"select", "explain", "show", "describe", "pragma"})


@dataclass(frozen=True)
class Seen:
    """What the audit log says about the learned statements."""

    operations: frozenset[str]
    most_rows: int | None  # the most rows one statement returned (None: never counted)

    @classmethod
    def of(cls, events: Iterable[Any]) -> Seen:
        """From audit events (``operation``, ``rows_returned``)."""
        operations: set[str] = set()
        most: int | None = None
        for event in events:
            operations.add(str(getattr(event, "operation", None) or "unknown"))
            rows = getattr(event, "rows_returned", None)
            if isinstance(rows, int):
                most = rows if most is None else max(most, rows)
        return cls(frozenset(operations), most)


def learned_policy(
    allowlist: Iterable[str],
    seen: Seen,
    *,
    base: str | os.PathLike[str] | None = None,
    agent_id: str | None = None,
    tenant: str | None = None,
) -> dict[str, Any]:
    """The learned policy as a mapping ready to be written as YAML."""
    shapes = sorted(set(allowlist))
    if base is None:
        return _strict(shapes, seen)
    data = read_policy_data(base)
    learned = _with_allowlist(copy.deepcopy(data), shapes, agent_id, tenant)
    before = load_policy(data).resolve(agent_id, tenant)
    after = load_policy(learned).resolve(agent_id, tenant)
    if _without_allowlist(before) != _without_allowlist(after):  # pragma: no cover - a bug
        raise PolicyError("learning changed more than the allowlist: nothing was written")
    return learned


def _strict(shapes: list[str], seen: Seen) -> dict[str, Any]:
    policy: dict[str, Any] = {"read_only": seen.operations <= _READS}
    default_rows = Policy.model_fields["max_rows"].default
    if seen.most_rows is not None:
        policy["max_rows"] = max(1, min(seen.most_rows, default_rows))
    policy["allowlist"] = shapes
    return policy


def _with_allowlist(
    data: dict[str, Any], shapes: list[str], agent_id: str | None, tenant: str | None
) -> dict[str, Any]:
    """``data`` with ``shapes`` added to the section that holds the agent's own rules."""
    if not any(key in data for key in _SECTIONS):
        if agent_id is None:
            return _merged(data, shapes)
        data = {"default": data}  # a flat file: its keys become the default section
    if agent_id is None:
        holder, key = data, "default"
    elif tenant is not None and tenant in (data.get("tenants") or {}):
        section = data["tenants"][tenant] = data["tenants"][tenant] or {}
        holder = section["agents"] = section.get("agents") or {}
        key = agent_id
    else:
        key = agent_id
        holder = data["agents"] = data.get("agents") or {}
    holder[key] = _merged(holder.get(key) or {}, shapes)
    return data


def _merged(section: dict[str, Any], shapes: list[str]) -> dict[str, Any]:
    existing = section.get("allowlist") or []
    section["allowlist"] = sorted({*map(str, existing), *shapes})
    return section


def _without_allowlist(policy: Policy) -> dict[str, Any]:
    dumped = policy.model_dump()
    dumped.pop("allowlist", None)
    return dumped

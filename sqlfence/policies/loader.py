"""Loading policies from YAML files, YAML text, mappings or objects, with errors at file:line."""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Union

import yaml
from pydantic import ValidationError

from sqlfence.errors import PolicyError
from sqlfence.policies import bounded_yaml
from sqlfence.policies.model import ALIASES, Policy, PolicySet

PolicySource = Union[Policy, PolicySet, Mapping[str, Any], str, "os.PathLike[str]", None]
_SECTION_KEYS = frozenset({"default", "tenants", "agents"})
_MAX_PROBLEMS = 10  # per message and per section: a hostile file can have thousands


def load_policy(source: PolicySource) -> PolicySet:
    """A ``PolicySet`` from a path, YAML text, a mapping, a ``Policy`` or a ``PolicySet``.

    ``None`` gives the safe default (read-only, built-in function deny list, 1,000 rows).
    Raises PolicyError naming the file and line of the first problem.
    """
    if isinstance(source, PolicySet):
        return source
    if source is None:
        return PolicySet({})
    if isinstance(source, Policy):
        return _from_policy(source)
    if isinstance(source, Mapping):
        return _from_mapping(source, {}, "<policy mapping>")
    text, name = _read(source)
    data, lines = _parse_yaml(text, name)
    return _from_mapping(data, lines, name)


def read_policy_data(source: str | os.PathLike[str]) -> dict[str, Any]:
    """The mapping a policy file (or YAML text) holds, as written: sections and all, not
    resolved. Raises PolicyError as ``load_policy`` does."""
    text, name = _read(source)
    data, _ = _parse_yaml(text, name)
    return dict(data)


def validate(data: Mapping[str, Any], origins: Mapping[str, str]) -> Policy:
    """A ``Policy`` from a flat mapping; errors name the key and where it was written."""
    try:
        policy = Policy.model_validate(dict(data))
    except ValidationError as error:
        raise PolicyError(_describe(error, origins)) from None
    return policy.with_origins(origins)


def _from_policy(policy: Policy) -> PolicySet:
    data = policy.model_dump(exclude_unset=True)
    origins: dict[tuple[str, ...], str] = {
        ("default", key): where for key, where in policy.origins.items() if key
    }
    return PolicySet(data, origins=origins)


def _read(source: str | os.PathLike[str]) -> tuple[str, str]:
    if isinstance(source, str) and _looks_like_yaml(source):
        return source, "<policy text>"
    path = Path(source)
    return bounded_yaml.read_file(path), path.name


def _looks_like_yaml(text: str) -> bool:
    if "\n" in text:
        return True
    if ": " not in text and not text.lstrip().startswith("{"):
        return False
    try:
        return not Path(text).exists()
    except OSError:
        return True


def _parse_yaml(text: str, name: str) -> tuple[Any, dict[tuple[str, ...], str]]:
    document = bounded_yaml.compose(text, name)
    if document.node is None:
        return {}, {}
    lines: dict[tuple[str, ...], str] = {}
    _index(document.node, (), name, lines)  # before construct() flattens merge keys
    data = document.construct()
    if not isinstance(data, Mapping):
        raise PolicyError(f"{name}:1: a policy file must be a mapping of keys to values")
    return data, lines


def _index(
    node: yaml.Node, path: tuple[str, ...], name: str, lines: dict[tuple[str, ...], str]
) -> None:
    lines.setdefault(path, f"{name}:{node.start_mark.line + 1}")
    if not isinstance(node, yaml.MappingNode):
        return
    seen: set[str] = set()
    for key_node, value_node in node.value:
        key = str(key_node.value)
        if key in seen:
            raise PolicyError(f"{name}:{key_node.start_mark.line + 1}: duplicate key {key!r}")
        seen.add(key)
        lines[(path + (key,))] = f"{name}:{key_node.start_mark.line + 1}"
        _index(value_node, (path + (key,)), name, lines)


def _from_mapping(
    data: Mapping[str, Any], lines: Mapping[tuple[str, ...], str], name: str
) -> PolicySet:
    if not data.keys() & _SECTION_KEYS:
        origins = {("default", *path): where for path, where in lines.items()}
        if lines:
            origins[("default",)] = lines[()]
        data = {"default": dict(data)}
        lines = origins
    else:
        unknown = sorted(set(data) - _SECTION_KEYS)
        if unknown:
            where = lines.get((unknown[0],), name)
            raise PolicyError(
                f"{where}: unknown key {unknown[0]!r} beside default/tenants/agents "
                "(put policy keys under 'default:')"
            )
    problems: list[str] = []  # every section is checked; all problems are reported at once
    default = _section(data.get("default") or {}, ("default",), lines, name, problems)
    tenants = _sections(data.get("tenants") or {}, ("tenants",), lines, name, problems, True)
    agents = _sections(data.get("agents") or {}, ("agents",), lines, name, problems, False)
    if problems:
        raise PolicyError(_joined(problems))
    return PolicySet(default, tenants, agents, origins=lines)


def _sections(
    data: Any,
    path: tuple[str, ...],
    lines: Mapping[tuple[str, ...], str],
    name: str,
    problems: list[str],
    nested_agents: bool,
) -> dict[str, dict[str, Any]]:
    if not isinstance(data, Mapping):
        problems.append(f"{lines.get(path, name)}: '{path[-1]}' must map names to policies")
        return {}
    return {
        str(key): _section(value or {}, (*path, str(key)), lines, name, problems, nested_agents)
        for key, value in data.items()
    }


def _section(
    data: Any,
    path: tuple[str, ...],
    lines: Mapping[tuple[str, ...], str],
    name: str,
    problems: list[str],
    nested_agents: bool = False,
) -> dict[str, Any]:
    where = lines.get(path, name)
    if not isinstance(data, Mapping):
        problems.append(f"{where}: {'.'.join(path)} must be a mapping of policy keys")
        return {}
    section = dict(data)
    agents = section.pop("agents", None) if nested_agents else None
    origins = {key: lines[(path + (key,))] for key in section if (path + (key,)) in lines}
    if path in lines:
        origins[""] = where
    try:
        validate(section, origins)  # every section is checked on load, not first use
    except PolicyError as error:
        problems.append(str(error))
    if agents is not None:
        section["agents"] = _sections(agents, (path + ("agents",)), lines, name, problems, False)
    return section


def _describe(error: ValidationError, origins: Mapping[str, str]) -> str:
    problems = []
    items = error.errors()
    for item in items[:_MAX_PROBLEMS]:
        loc = item.get("loc", ())
        key = str(loc[0]) if loc else ""
        where = origins.get(key) or origins.get("") or "policy"
        field = ".".join(str(part) for part in loc) or "policy"
        message = item.get("msg", "invalid")
        if item.get("type") == "extra_forbidden":
            canonical = ALIASES.get(key)
            if canonical is not None:  # pydantic takes one of the two; both is a conflict
                message = f"{key!r} is another name for {canonical!r}: give only one of them"
            else:
                known = [*Policy.model_fields, *ALIASES]
                close = difflib.get_close_matches(key, known, n=1)
                hint = (
                    f"did you mean {close[0]!r}?"
                    if close
                    else "`sqlfence policy schema` lists keys"
                )
                message = f"unknown key {key!r} ({hint})"
            field = key
        problems.append(f"{where}: {field}: {message}")
    return _joined(problems, len(items))


def _joined(problems: list[str], total: int | None = None) -> str:
    """The first problems, and how many more there are."""
    more = (len(problems) if total is None else total) - _MAX_PROBLEMS
    shown = "; ".join(problems[:_MAX_PROBLEMS])
    return f"{shown}; and {more:,} more" if more > 0 else shown

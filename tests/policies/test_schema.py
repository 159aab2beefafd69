"""The generated JSON Schema (`sqlfence policy schema`) accepts every policy the loader
accepts: each policy file of the repository, each policy in the README, and the aliases;
and it refuses what the loader refuses."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]  # no stubs: types-jsonschema is not a dev dependency
import pytest
import yaml

from sqlfence.policies.loader import load_policy
from sqlfence.policies.model import ALIASES, Policy

ROOT = Path(__file__).resolve().parents[2]
BROKEN = {"misspelt.yaml", "bad_value.yaml"}  # refused on purpose (loader tests)
SECTIONS = {"default", "tenants", "agents"}
KEYS = set(Policy.model_fields) | set(ALIASES) | SECTIONS


def _readme_policies() -> list[str]:
    blocks = re.findall(r"```yaml\n(.*?)```", (ROOT / "README.md").read_text(), re.DOTALL)
    found = []
    for block in blocks:
        data = yaml.safe_load(block)
        if isinstance(data, dict) and data and set(data) <= KEYS:
            found.append(block)
    return found


FILES = sorted(
    path
    for path in [*ROOT.glob("policies/*.yaml"), *ROOT.glob("tests/policies/files/*.yaml")]
    if path.name not in BROKEN
)
VALIDATOR = jsonschema.Draft202012Validator(Policy.json_schema())


def _errors(data: Any) -> list[str]:
    return [error.message for error in VALIDATOR.iter_errors(data)]


@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(ROOT)) for p in FILES])
def test_every_policy_file_fits_the_schema(path: Path) -> None:
    load_policy(path)  # the loader accepts it...
    assert _errors(yaml.safe_load(path.read_text())) == []  # ...and so does the schema


def test_every_readme_policy_fits_the_schema() -> None:
    policies = _readme_policies()
    assert policies, "the README shows policies"
    for text in policies:
        load_policy(text)
        assert _errors(yaml.safe_load(text)) == [], text


def test_aliases_and_tenant_agents_fit() -> None:
    assert _errors({"deny_tables": ["x"], "max_row_limit": 5}) == []
    nested = {"tenants": {"acme": {"max_rows": 3, "agents": {"bot": {"read_only": False}}}}}
    assert _errors(nested) == []


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_what_the_loader_refuses_the_schema_refuses(name: str) -> None:
    path = ROOT / "tests" / "policies" / "files" / name
    assert _errors(yaml.safe_load(path.read_text()))

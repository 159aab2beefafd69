"""Literal masking of query text (sqlfence/observe/masking.py), driven by data/masking.yaml."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from sqlfence.observe.masking import mask_literals

CASES: list[dict[str, Any]] = yaml.safe_load(
    (Path(__file__).parent / "data" / "masking.yaml").read_text()
)


@pytest.mark.parametrize("case", CASES, ids=[c["sql"][:40] for c in CASES])
def test_literals_are_masked(case: dict[str, Any]) -> None:
    """Every literal becomes ``?``; identifiers, comments and placeholders stay."""
    assert mask_literals(case["sql"]) == case["masked"]


def test_masking_is_cached_and_stable() -> None:
    """The same text masks to the same result twice (the second time from the cache)."""
    sql = "SELECT * FROM t WHERE secret = 'hunter2'"
    assert mask_literals(sql) is mask_literals(sql)
    assert "hunter2" not in mask_literals(sql)

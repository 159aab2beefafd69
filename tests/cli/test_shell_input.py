"""Typed lines into statements (``shell_input``), from the cases in shell_data/statements.yaml."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlglot.dialects.dialect import Dialect

from sqlfence.cli.shell_input import StatementBuffer

CASES: list[dict[str, Any]] = yaml.safe_load(
    (Path(__file__).parent / "shell_data" / "statements.yaml").read_text()
)


@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
def test_lines_become_statements(case: dict[str, Any]) -> None:
    """Each case's lines give exactly its statements, each a slice of what was typed."""
    buffer = StatementBuffer(Dialect.get_or_raise(case.get("dialect", "sqlite")))
    statements = [statement for line in case["lines"] for statement in buffer.add(line)]
    assert statements == case["statements"]
    assert buffer.pending == bool(case.get("pending"))
    assert buffer.finish() == case.get("pending")


def test_clear_forgets_a_statement_begun() -> None:
    """Ctrl-C at the prompt drops what was typed of a statement."""
    buffer = StatementBuffer(Dialect.get_or_raise("sqlite"))
    assert buffer.add("SELECT") == []
    buffer.clear()
    assert not buffer.pending
    assert buffer.add("SELECT 2;") == ["SELECT 2;"]

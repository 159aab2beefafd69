"""What the MCP tools answer: typed results (their output schemas), compact JSON, and rows
sized for a context window.

Each tool returns a ``CallToolResult`` carrying the same payload twice, as the SDK expects
for tools with an output schema: ``structuredContent`` for clients that read data, and one
compact JSON text for those that read text. The byte budgets count that text.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from mcp.types import CallToolResult, TextContent
from typing_extensions import TypedDict  # pydantic reads these as schemas on Python < 3.12


class QueryResult(TypedDict):
    """The rows of one statement (``row_count`` is the rows affected for a write)."""

    columns: list[str]
    rows: list[list[Any]]
    row_count: int
    truncated: bool
    truncated_by: list[str]


class TablesResult(TypedDict):
    """The tables and views this identity may read (``views``: which of them are views)."""

    tables: list[str]
    views: list[str]


class Column(TypedDict):
    """One column of a table."""

    name: str
    type: str
    not_null: bool
    primary_key: bool


class TableResult(TypedDict):
    """The readable columns of one table."""

    table: str
    columns: list[Column]


class PlanResult(TypedDict):
    """The database's plan rows for one statement."""

    plan: list[list[Any]]


@dataclass(frozen=True)
class Budget:
    """How much one result may carry."""

    max_rows: int
    max_result_bytes: int
    max_cell_bytes: int


def tool_result(payload: Any) -> CallToolResult:
    """``payload`` as structured content and as one compact JSON text."""
    return CallToolResult(
        content=[TextContent(type="text", text=to_json(payload))], structured_content=payload
    )


def to_json(value: Any) -> str:
    """Compact JSON, the form a context window pays least for."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def rows_result(columns: list[str], fetched: list[Any], rowcount: int, budget: Budget,
                cut: list[str]) -> QueryResult:  # fmt: skip
    """The result of a statement: at most ``max_rows`` of ``fetched`` (``max_rows + 1`` were
    fetched to tell whether more exist), within the byte budgets; ``cut`` names the limits
    that cut. Raises ValueError when the column names alone are over the result budget."""
    if len(fetched) > budget.max_rows and "max_rows" not in cut:
        cut.append("max_rows")
    names = len(to_json(columns).encode("utf-8"))
    if names > budget.max_result_bytes:
        raise ValueError(
            f"the column names alone take {names} bytes, over max_result_bytes "
            f"({budget.max_result_bytes}): name fewer columns"
        )
    rows = sized(fetched[: budget.max_rows], budget, cut, names)
    return {
        "columns": columns,
        "rows": rows,
        "row_count": len(rows) if columns else rowcount,
        "truncated": bool(cut),
        "truncated_by": cut,
    }


def sized(rows: list[Any], budget: Budget, cut: list[str], used: int = 0) -> list[list[Any]]:
    """Rows as JSON values within the per-value and per-result byte budgets, counted as the
    JSON sent (escapes included; ``used`` is what the rest of the result takes); ``cut``
    says which limit cut."""
    room = budget.max_result_bytes - used
    cell_limit = budget.max_cell_bytes
    result: list[list[Any]] = []
    taken = 2  # the enclosing []
    for row in rows:
        values = []
        for raw in row:
            value = jsonable(_cut_bytes(raw, cell_limit, cut))
            if isinstance(value, str) and len(value) > cell_limit // 6:
                value = _cut(value, cell_limit, cut)
            values.append(value)
        size = len(to_json(values).encode("utf-8")) + 1
        if taken + size > room:
            cut.append("max_result_bytes")
            break
        taken += size
        result.append(values)
    return result


def _cut_bytes(value: Any, limit: int, cut: list[str]) -> Any:
    """Bytes longer than their hex can show within ``limit``: only the prefix that fits
    (hex of a 200 MB value would take 400 MB before being cut)."""
    if isinstance(value, (bytes, bytearray, memoryview)) and len(value) * 2 > limit:
        if "max_cell_bytes" not in cut:
            cut.append("max_cell_bytes")
        return bytes(value[: limit // 2])
    return value


def _cut(value: str, limit: int, cut: list[str]) -> str:
    """``value`` shortened until its JSON text is at most ``limit`` bytes."""
    if len(to_json(value).encode("utf-8")) <= limit:
        return value
    low, high = 0, min(len(value), limit)
    while low < high:  # the longest prefix whose JSON fits (escapes can take 6 bytes a char)
        middle = (low + high + 1) // 2
        if len(to_json(value[:middle]).encode("utf-8")) <= limit:
            low = middle
        else:
            high = middle - 1
    if "max_cell_bytes" not in cut:
        cut.append("max_cell_bytes")
    return value[:low]


def jsonable(value: Any) -> Any:
    """``value`` as a JSON value: bytes as hex, anything else JSON lacks (decimals, dates,
    infinities) as its text."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no Infinity or NaN: "inf", "-inf", "nan"
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    try:
        json.dumps(value)
    except TypeError:
        return str(value)
    return value

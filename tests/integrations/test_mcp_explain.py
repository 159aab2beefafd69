"""The MCP ``explain`` tool is refused under row filters and masks: PostgreSQL chooses a plan
from statistics over every row (an outside attack read another tenant's diagnoses and their
frequencies from ``rows=``, and the tenth from the plan's shape alone: Hash Join or Nested
Loop, HashAggregate or Sort)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import psycopg
import pytest
from mcp import Client
from mcp.types import Implementation

from tests.integrations.mcp_helpers import stdio_server, text_of

FILTERED = """\
read_only: true
privileged_sessions: warn
row_filters:
  patients: tenant_id = :tenant
"""


async def _explain(params: Any, sql: str) -> Any:
    async with Client(params, client_info=Implementation(name="t", version="1")) as client:
        return await client.call_tool("explain", {"sql": sql})


@pytest.mark.filterwarnings("ignore::sqlfence.PrivilegeWarning")
def test_postgres_explain_under_a_row_filter_is_refused(tmp_path: Path, pg_url: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as admin:
        admin.execute("CREATE TABLE patients (id int, tenant_id text, diagnosis text)")
        admin.execute(
            "INSERT INTO patients SELECT g, CASE WHEN g % 4 = 0 THEN 'A' ELSE 'B' END,"
            " CASE WHEN g % 4 = 0 THEN 'flu' ELSE 'rare' END FROM generate_series(1, 400) g"
        )
        admin.execute("ANALYZE patients")
    params = stdio_server(tmp_path, FILTERED, "--tenant", "A", pg_url)
    result = anyio.run(_explain, params, "SELECT * FROM patients WHERE diagnosis = 'rare'")
    assert result.is_error
    assert "not available under row filters or masks" in text_of(result)

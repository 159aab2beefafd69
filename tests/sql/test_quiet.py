"""sqlglot's warnings while the fence judges SQL stay out of the user's stderr; the
application's own sqlglot calls still log."""

from __future__ import annotations

import subprocess
import sys

FENCE = """
import sqlfence
for dialect in ("sqlite", "postgres"):
    guard = sqlfence.Guard({"allow_system_catalog": True}, dialect=dialect)
    for sql in ("EXPLAIN QUERY PLAN SELECT 1", "VACUUM", "SELECT 1 FROM t WHERE a IS ? ",
                "ANALYZE t", "SELECT * FROM t USING SAMPLE 10"):
        guard.decide(sql)
"""


def _stderr(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    return done.stderr


def test_judging_writes_nothing_to_stderr() -> None:
    assert _stderr(FENCE) == ""


def test_the_applications_own_sqlglot_still_logs() -> None:
    code = (
        FENCE
        + "\nimport sqlglot\nsqlglot.parse_one('EXPLAIN QUERY PLAN SELECT 2', read='sqlite')\n"
    )
    assert "Falling back to parsing as a 'Command'" in _stderr(code)

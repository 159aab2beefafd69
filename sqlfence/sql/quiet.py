"""sqlglot's warnings while the fence reads SQL are the fence's business, not the user's.

sqlglot logs a warning when it falls back to a generic ``Command`` or meets syntax it does
not support; the fence turns exactly those cases into decisions with reasons, so on stderr
(Python's last-resort handler) they are only noise in the user's program, CLI or MCP server.
``quiet_sqlglot()`` drops sqlglot's records on the current thread while the block runs; the
application's own sqlglot use, on any thread, logs as before.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_state = threading.local()


class _WhileJudging(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(_state, "depth", 0)


_FILTER = _WhileJudging()
logging.getLogger("sqlglot").addFilter(_FILTER)


@contextmanager
def quiet_sqlglot() -> Iterator[None]:
    """sqlglot logs nothing from this thread inside the block."""
    _state.depth = getattr(_state, "depth", 0) + 1
    try:
        yield
    finally:
        _state.depth -= 1

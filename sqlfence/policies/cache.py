"""The Guard's decision cache: bounded in entries and in the bytes its entries hold.

Keyed by SQL text. Every entry counts against both bounds, the texts the guard rewrote
included. A full cache lets its oldest entries go (first in, first out: a hit costs one
dictionary look-up and no bookkeeping). Sizes are estimates from what an entry holds (texts, names,
reasons): an upper bound of what tracemalloc measures for it.
"""

from __future__ import annotations

import sys
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlfence.policies.engine import Decision

DEFAULT_ENTRIES = 4096
DEFAULT_BYTES = 64 * 1024 * 1024
# What an entry costs besides what the functions below count: the dict slot, the Decision
# and its StatementFacts (about twenty fields) and their small containers. tracemalloc
# measures 1.2-1.7 KB of them for a plain SELECT (tests/policies/test_cache.py checks the
# estimate against it); the constant rounds up.
_ENTRY_BYTES = 2048
_SLOT_BYTES = 40  # one element of a set or tuple, the table's spare room included
_PAIR_BYTES = 56  # the (table, column) tuple of a column fact
_REASON_BYTES = 120  # a Violation besides its message


class DecisionCache:
    """SQL text -> Decision, within ``max_entries`` and about ``max_bytes``. Thread-safe."""

    def __init__(self, max_entries: int = DEFAULT_ENTRIES, max_bytes: int = DEFAULT_BYTES) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._entries: dict[str, tuple[Decision, int]] = {}
        self._bytes = 0
        self._lock = threading.Lock()  # taken by writers only; a look-up is one dict.get

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def bytes(self) -> int:
        """The estimated bytes the entries hold now (never over ``max_bytes``)."""
        return self._bytes

    def get(self, sql: str) -> Decision | None:
        """The cached decision on ``sql``, or None."""
        entry = self._entries.get(sql)
        return entry[0] if entry is not None else None

    def put(self, sql: str, decision: Decision, *, replace: bool = True) -> None:
        """Cache ``decision`` under ``sql``, letting the oldest entries go to make room.

        ``replace=False`` keeps an entry already there. A decision too big for the byte
        bound on its own is not cached.
        """
        if self.max_entries <= 0:
            return
        size = weight(sql, decision)
        if size > self.max_bytes:
            return
        entries = self._entries
        with self._lock:
            old = entries.get(sql)
            if old is not None:
                if not replace:
                    return
                del entries[sql]
                self._bytes -= old[1]
            while entries and (
                len(entries) >= self.max_entries or self._bytes + size > self.max_bytes
            ):
                oldest = next(iter(entries))
                self._bytes -= entries.pop(oldest)[1]
            entries[sql] = (decision, size)
            self._bytes += size

    def clear(self) -> None:
        """Forget every decision."""
        with self._lock:
            self._entries.clear()
            self._bytes = 0


def weight(sql: str, decision: Decision) -> int:
    """The estimated bytes an entry for ``decision`` under ``sql`` holds (texts counted once)."""
    facts = decision.facts
    size = _ENTRY_BYTES + sys.getsizeof(sql)
    if decision.sql is not sql:
        size += sys.getsizeof(decision.sql)
    source = facts.source
    if source is not None and source[0] is not sql and source[0] is not decision.sql:
        size += sys.getsizeof(source[0])
    for names in (
        facts.tables,
        facts.written,
        facts.star_tables,
        facts.functions,
        facts.bound_functions,
        facts.ctes,
        facts.types,
        facts.unresolved,
    ):
        if names:
            size += sum(map(sys.getsizeof, names)) + len(names) * _SLOT_BYTES
    if facts.columns:  # owners are the tables' own strings: only the column names are new
        size += len(facts.columns) * (_PAIR_BYTES + _SLOT_BYTES)
        size += sum(sys.getsizeof(column) for _owner, column in facts.columns)
    size += len(facts.operations) * _SLOT_BYTES
    size += sys.getsizeof(facts.summary) + len(facts.unparsed or "")
    for reason in decision.reasons:
        size += _REASON_BYTES + sys.getsizeof(reason.message)
    return size

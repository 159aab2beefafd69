"""The decision cache stays within its entry and byte bounds, whatever the number of texts."""

from __future__ import annotations

import gc
import tracemalloc

import pytest

from sqlfence import Guard
from sqlfence.policies.cache import weight
from sqlfence.sql.fingerprint import fingerprint


@pytest.mark.slow
def test_many_distinct_statements_stay_within_both_bounds() -> None:
    """25,000 distinct statements that get a row limit (six times the bound, each adding a
    rewritten text too) leave at most cache_size entries and at most cache_bytes of
    accounted bytes. benchmarks/scale.py measures the RSS over a million."""
    guard = Guard({}, dialect="sqlite", cache_size=4096)
    cache = guard._cache
    for n in range(25_000):
        decision = guard.decide(f"SELECT {n}")
        assert len(cache) <= 4096
    assert decision.rewritten
    assert decision.sql == "SELECT 24999 LIMIT 1000"
    assert len(cache) == 4096
    assert cache.bytes <= cache.max_bytes
    assert cache.bytes == sum(weight(sql, entry[0]) for sql, entry in cache._entries.items())
    assert guard.decide("SELECT 24999 LIMIT 1000") is cache.get("SELECT 24999 LIMIT 1000")


def test_rewritten_texts_count_against_the_entry_bound() -> None:
    """A statement and the text the guard rewrote it to are two entries of the same bound."""
    guard = Guard({}, dialect="sqlite", cache_size=10)
    for n in range(10):
        guard.decide(f"SELECT {n}")
    assert len(guard._cache) == 10
    assert guard._cache.get("SELECT 9 LIMIT 1000") is not None  # the newest pairs stay
    assert guard._cache.get("SELECT 0") is None


def test_the_byte_bound_holds_for_large_statements() -> None:
    """Large texts fill the byte bound before the entry bound; a decision too large for the
    bound on its own is judged every time and never cached."""
    bound = 128 * 1024
    guard = Guard({}, dialect="sqlite", cache_bytes=bound)
    padding = " OR ".join(f"a = {i}" for i in range(500))  # about 5 KB of text
    for n in range(60):
        guard.decide(f"SELECT a FROM t WHERE {padding} OR b = {n}")
        assert guard._cache.bytes <= bound
    assert 5 < len(guard._cache) < 40
    small = Guard({}, dialect="sqlite", cache_bytes=64 * 1024)
    huge = "SELECT a FROM t WHERE a IN (" + ", ".join(map(str, range(10_000, 22_000))) + ")"
    first = small.decide(huge)
    assert first.allowed
    assert len(small._cache) == 0
    assert small.decide(huge) is not first


def test_the_accounted_bytes_cover_what_the_entries_hold() -> None:
    """tracemalloc measures less memory for the cached entries than the cache accounts, and
    none more once the cache is full (flat, however many statements come)."""
    guard = Guard({"denied_columns": ["*.password"]}, dialect="sqlite", cache_size=400)
    cache = guard._cache

    def fill(start: int, count: int) -> None:
        for n in range(start, start + count):
            guard.decide(f"SELECT u.a, v.b FROM users u JOIN orders v ON v.u = u.id WHERE n = {n}")

    tracemalloc.start()
    try:
        fill(0, 400)  # full, and the caches of sqlglot and of the interpreter warm
        gc.collect()
        full = tracemalloc.get_traced_memory()[0]
        fill(10_000, 1200)
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
        accounted = cache.bytes
        cache.clear()
        gc.collect()
        held = after - tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert held <= accounted, (held, accounted)
    assert after - full < accounted / 10, (after - full, accounted)  # flat once full


@pytest.mark.parametrize(
    "sql",
    ["SELECT a FROM t WHERE b = 1", "SELECT a FROM t WHERE b = ?1 AND c IN (1, 2)"],
)
def test_a_cached_decision_keeps_its_fingerprint(sql: str) -> None:
    """Cached facts let their tokens go; the fingerprint they give is the one of the text
    (``?NNN``, which the fence rewrites to parse it, included)."""
    expected = Guard({}, dialect="sqlite", cache_size=0).decide(sql).facts.fingerprint
    guard = Guard({}, dialect="sqlite")
    decision = guard.decide(sql)
    assert decision.facts.source_tokens == ()
    assert guard.decide(sql).facts.fingerprint == expected
    assert expected == fingerprint(sql.replace("?1", ":p"), "sqlite")

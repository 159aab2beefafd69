"""The Guard's decision cache."""

from __future__ import annotations

import pytest

from sqlfence import Guard


@pytest.mark.parametrize("size", [0, 1, 3])
def test_the_cache_never_holds_more_than_asked(size: int) -> None:
    """cache_size=0 switches caching off; otherwise the oldest decision makes room."""
    guard = Guard({"max_rows": None}, dialect="sqlite", cache_size=size)
    decisions = [guard.decide(f"SELECT {n}") for n in range(5)]
    assert all(d.allowed for d in decisions)
    # Asked again, newest first (a hit changes nothing, a miss lets the oldest entry go), the
    # guard hands back its own decision for exactly the newest ``size`` statements.
    again = [guard.decide(f"SELECT {n}") is decisions[n] for n in reversed(range(5))]
    assert again == [n >= 5 - size for n in reversed(range(5))]

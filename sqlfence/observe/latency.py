"""Latency percentiles in bounded memory: a log-scaled histogram of fixed size.

Buckets grow by 2^(1/8) from 1 us to about 20 minutes, so any percentile is reported within
about 4.5 % of the true value, whatever the number of statements, in 2 KB per histogram.
"""

from __future__ import annotations

import math
from bisect import bisect_right

_STEPS_PER_DOUBLING = 8
_LOWEST_S = 1e-6
_BUCKETS = 30 * _STEPS_PER_DOUBLING  # 1 us * 2**30 is about 18 minutes
BOUNDS: tuple[float, ...] = tuple(
    _LOWEST_S * 2 ** (i / _STEPS_PER_DOUBLING) for i in range(_BUCKETS)
)


class LatencyHistogram:
    """Counts of durations (in seconds) per bucket, plus exact count, sum, min and max.

    ``add`` is not locked: one histogram belongs to one connection (PEP 249 connections are
    used by one thread at a time); aggregates are built with ``merge`` when read.
    """

    __slots__ = ("count", "counts", "maximum", "minimum", "total")

    def __init__(self) -> None:
        self.counts = [0] * (_BUCKETS + 1)
        self.count = 0
        self.total = 0.0
        self.minimum = math.inf
        self.maximum = 0.0

    def add(self, seconds: float) -> None:
        """Record one duration."""
        self.counts[bisect_right(BOUNDS, seconds)] += 1
        self.count += 1
        self.total += seconds
        # Comparisons, not max()/min(): this runs for every statement and a call costs more.
        if seconds > self.maximum:  # noqa: PLR1730
            self.maximum = seconds
        if seconds < self.minimum:  # noqa: PLR1730
            self.minimum = seconds

    def merge(self, other: LatencyHistogram) -> None:
        """Add every duration of ``other`` to this histogram."""
        self.counts = [a + b for a, b in zip(self.counts, other.counts, strict=True)]
        self.count += other.count
        self.total += other.total
        self.maximum = max(self.maximum, other.maximum)
        self.minimum = min(self.minimum, other.minimum)

    def mean(self) -> float:
        """The mean duration in seconds (0 when empty)."""
        return self.total / self.count if self.count else 0.0

    def percentile(self, q: float) -> float:
        """The ``q``-th percentile (0-100) in seconds, within one bucket; 0 when empty."""
        if not self.count:
            return 0.0
        rank = max(1, math.ceil(self.count * q / 100))
        seen = 0
        for index, count in enumerate(self.counts):
            seen += count
            if seen >= rank:
                return min(max(_midpoint(index), self.minimum), self.maximum)
        return self.maximum  # pragma: no cover - the counts always add up to count


def _midpoint(index: int) -> float:
    if index == 0:
        return BOUNDS[0]
    if index >= len(BOUNDS):
        return BOUNDS[-1]
    return math.sqrt(BOUNDS[index - 1] * BOUNDS[index])

"""Latency percentiles in bounded memory: a log-scaled histogram of fixed size.

Buckets grow by 2^(1/8) from 1 us to about 20 minutes, so any percentile is reported within
about 4.5 % of the true value, whatever the number of statements, in 2 KB per histogram
(and 1 KB of durations not bucketed yet, see ``defer``).
"""

from __future__ import annotations

import math
from array import array
from bisect import bisect_left, bisect_right

_STEPS_PER_DOUBLING = 8
_LOWEST_S = 1e-6
_BUCKETS = 30 * _STEPS_PER_DOUBLING  # 1 us * 2**30 is about 18 minutes
DEFERRED = 128  # durations kept by ``defer`` before they are bucketed together
BOUNDS: tuple[float, ...] = tuple(
    _LOWEST_S * 2 ** (i / _STEPS_PER_DOUBLING) for i in range(_BUCKETS)
)


class LatencyHistogram:
    """Counts of durations (in seconds) per bucket, plus exact count, sum, min and max.

    ``add`` is not locked: one histogram belongs to one connection (PEP 249 connections are
    used by one thread at a time); aggregates are built with ``merge`` when read.
    """

    __slots__ = ("count", "counts", "deferred", "maximum", "minimum", "total")

    def __init__(self) -> None:
        self.counts = [0] * (_BUCKETS + 1)
        self.count = 0
        self.total = 0.0
        self.minimum = math.inf
        self.maximum = 0.0
        # Durations given to ``defer`` and not bucketed yet (``count`` and the rest leave
        # them out; ``settled()`` counts them in).
        self.deferred = array("d")

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

    def defer(self, seconds: float) -> None:
        """Record one duration later: it is kept, and bucketed with the next ``DEFERRED``
        ones at once (sorted, a few look-ups for all of them: on the query's thread a
        duration then costs an append). Only the histogram's owner calls it."""
        deferred = self.deferred
        deferred.append(seconds)
        if len(deferred) >= DEFERRED:
            self.settle()

    def settle(self) -> None:
        """Bucket the deferred durations now (the owner's thread)."""
        deferred = self.deferred
        if deferred:
            # Taken first: a reader on another thread (``settled``) sees them at most
            # once, in the list or in the counts.
            self.deferred = array("d")
            self._count_in(deferred)

    def _count_in(self, durations: array[float]) -> None:
        values = sorted(durations)
        counts = self.counts
        last = len(BOUNDS)
        start, end = 0, len(values)
        while start < end:  # one bucket after the other: the durations below its bound
            bucket = bisect_right(BOUNDS, values[start])
            stop = end if bucket == last else bisect_left(values, BOUNDS[bucket], start)
            counts[bucket] += stop - start
            start = stop
        self.count += end
        self.total += math.fsum(values)
        self.maximum = max(self.maximum, values[-1])
        self.minimum = min(self.minimum, values[0])

    def settled(self) -> LatencyHistogram:
        """This histogram with its deferred durations counted in: itself when there are
        none, else a copy (itself is never changed: readers on any thread may call it)."""
        deferred = self.deferred[:]  # one copy, taken whole
        if not deferred:
            return self
        copy = LatencyHistogram()
        copy.counts = list(self.counts)
        copy.count = self.count
        copy.total = self.total
        copy.minimum = self.minimum
        copy.maximum = self.maximum
        copy._count_in(deferred)
        return copy

    @property
    def recorded(self) -> int:
        """Durations recorded, the deferred ones included."""
        return self.count + len(self.deferred)

    def merge(self, other: LatencyHistogram) -> None:
        """Add every duration of ``other`` to this histogram."""
        other = other.settled()
        self.counts = [a + b for a, b in zip(self.counts, other.counts, strict=True)]
        self.count += other.count
        self.total += other.total
        self.maximum = max(self.maximum, other.maximum)
        self.minimum = min(self.minimum, other.minimum)

    def mean(self) -> float:
        """The mean duration in seconds (0 when empty)."""
        settled = self.settled()
        return settled.total / settled.count if settled.count else 0.0

    def percentile(self, q: float) -> float:
        """The ``q``-th percentile (0-100) in seconds, within one bucket; 0 when empty."""
        settled = self.settled()
        if not settled.count:
            return 0.0
        rank = max(1, math.ceil(settled.count * q / 100))
        seen = 0
        for index, count in enumerate(settled.counts):
            seen += count
            if seen >= rank:
                return min(max(_midpoint(index), settled.minimum), settled.maximum)
        return settled.maximum  # pragma: no cover - the counts always add up to count


def _midpoint(index: int) -> float:
    if index == 0:
        return BOUNDS[0]
    if index >= len(BOUNDS):
        return BOUNDS[-1]
    return math.sqrt(BOUNDS[index - 1] * BOUNDS[index])

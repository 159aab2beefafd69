"""Latency percentiles in bounded memory (sqlfence/observe/latency.py)."""

from __future__ import annotations

import pytest

from sqlfence.observe.latency import LatencyHistogram


def test_percentiles_are_close_in_fixed_memory() -> None:
    """p50/p95/p99 are within 5 % of the exact values; the histogram never grows."""
    histogram = LatencyHistogram()
    size = len(histogram.counts)
    for ms in range(1, 10_001):
        histogram.add(ms / 1000)
    assert len(histogram.counts) == size
    for q, exact in ((50, 5.0), (95, 9.5), (99, 9.9)):
        assert histogram.percentile(q) == pytest.approx(exact, rel=0.05)
    assert histogram.mean() == pytest.approx(5.0005)
    assert histogram.maximum == 10.0
    assert LatencyHistogram().percentile(50) == 0.0


def test_a_single_duration_is_reported_exactly() -> None:
    """With one statement every percentile is that statement's duration."""
    histogram = LatencyHistogram()
    histogram.add(0.0123)
    assert {histogram.percentile(q) for q in (50, 95, 99)} == {0.0123}


def test_merging_adds_every_duration() -> None:
    """merge() gives the histogram of both sets of durations."""
    first, second = LatencyHistogram(), LatencyHistogram()
    for ms in range(1, 101):
        (first if ms % 2 else second).add(ms / 1000)
    first.merge(second)
    assert first.count == 100
    assert first.minimum == 0.001
    assert first.maximum == 0.1
    assert first.percentile(50) == pytest.approx(0.050, rel=0.05)


def test_deferred_durations_count_as_added_ones() -> None:
    """defer() (the monitor's way) ends in the same buckets, count, sum, min and max as
    add(), and readers see the durations not bucketed yet through settled()."""
    added, deferred = LatencyHistogram(), LatencyHistogram()
    durations = [((i * 7919) % 1000 + 1) / 100_000 for i in range(1, 300)] + [5000.0, 1e-9]
    for seconds in durations:
        added.add(seconds)
        deferred.defer(seconds)
    assert deferred.deferred  # some are still waiting: 301 is not a multiple of DEFERRED
    settled = deferred.settled()
    assert settled is not deferred
    assert deferred.deferred
    assert settled.counts == added.counts
    assert (settled.count, settled.minimum, settled.maximum) == (301, 1e-9, 5000.0)
    assert settled.total == pytest.approx(added.total)
    assert deferred.recorded == 301
    assert deferred.percentile(50) == added.percentile(50)
    deferred.settle()
    assert not deferred.deferred
    assert deferred.counts == added.counts

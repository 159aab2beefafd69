"""Shared pieces of the benchmark scripts: timing, statistics, tables, the machine line, a
throwaway PostgreSQL server, BENCHMARKS.md.

Each script owns one section of BENCHMARKS.md, delimited by HTML comments, and replaces
only that section, so the scripts can run in any order.
"""

from __future__ import annotations

import datetime
import fcntl
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import sqlglot

if TYPE_CHECKING:
    from tests.postgres_server import PostgresServer

REPO_ROOT = Path(__file__).resolve().parent.parent
# Benchmark the working tree: the scripts import this module before ``sqlfence``, so the
# repository's package wins over whatever an (editable or not) install put on the path.
sys.path.insert(0, str(REPO_ROOT))
BENCHMARKS_MD = REPO_ROOT / "BENCHMARKS.md"
_HEADER = (
    "# sqlfence benchmarks\n\n"
    "Written by the scripts in `benchmarks/` (`make bench` runs them all); each section is\n"
    "replaced by the script named in it (`pool.py` only when given a Docker image). Numbers\n"
    "are from one run on the machine described in the section.\n"
)


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) with linear interpolation between the closest ranks."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def rank_percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) as the sample at index ``int(n * q / 100)`` of the
    sorted values, without interpolation: the p95 and p99 the sandbox, pool and scale
    benchmarks have always reported (``percentile`` would move their numbers). NaN for none."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * (q / 100)))]


def median(values: Sequence[float]) -> float:
    """The median, NaN for no values."""
    return statistics.median(values) if values else float("nan")


def us(nanoseconds: float) -> float:
    """Nanoseconds to microseconds."""
    return nanoseconds / 1000


def ms(seconds: float) -> float:
    """Seconds to milliseconds."""
    return seconds * 1000


def timed(run: Callable[[], object]) -> float:
    """The wall-clock seconds one ``run()`` took."""
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def rss_bytes(pid: int | str = "self") -> int:
    """The resident set size of process ``pid`` (this one by default), in bytes; 0 unknown."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table that also reads well on a terminal (columns padded)."""
    cells = [[str(h) for h in headers], *[[_cell(value) for value in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = []
    for number, row in enumerate(cells):
        padded = [
            value.ljust(width) if i == 0 else value.rjust(width)
            for i, (value, width) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("| " + " | ".join(padded) + " |")
        if number == 0:
            lines.append("|" + "|".join("-" * (width + 2) for width in widths) + "|")
    return "\n".join(lines)


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.1f}" if abs(value) >= 10 else f"{value:.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def machine() -> str:
    """One line saying where and with what the numbers were measured."""
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    compiled = "compiled" if sqlglot.parser.__file__.endswith((".so", ".pyd")) else "pure Python"
    version = sqlglot.__version__  # type: ignore[attr-defined]  # set by sqlglot, not exported
    return (
        f"{datetime.date.today().isoformat()}, {os.cpu_count()} cores ({cpu}), "
        f"Python {platform.python_version()}, sqlglot {version} ({compiled} parser)"
    )


@contextmanager
def postgres_server(max_connections: int = 200, hint: str = "") -> Iterator[PostgresServer]:
    """A throwaway PostgreSQL server from the local binaries, as the tests start one, stopped
    after the block. Exits the script (``hint`` appended to the message) when PostgreSQL is
    not installed."""
    from tests.postgres_server import started

    def missing(what: str) -> NoReturn:
        raise SystemExit(f"{what} not found{hint}")

    with started(missing, max_connections) as server:
        yield server


def write_section(name: str, body: str) -> Path:
    """Replace (or append) the section ``name`` of BENCHMARKS.md with ``body``."""
    start = f"<!-- benchmark:{name} start -->"
    end = f"<!-- benchmark:{name} end -->"
    block = f"{start}\n{body.strip()}\n{end}\n"
    with BENCHMARKS_MD.open("a+", encoding="utf-8") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # both scripts may finish at the same moment
        handle.seek(0)
        text = handle.read() or _HEADER
        if start in text and end in text:
            before, rest = text.split(start, 1)
            after = rest.split(end, 1)[1].lstrip("\n")
            text = before + block + ("\n" + after if after else "")
        else:
            text = text.rstrip("\n") + "\n\n" + block
        handle.seek(0)
        handle.truncate()
        handle.write(text)
    return BENCHMARKS_MD

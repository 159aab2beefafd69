"""Scale (issue 19): cost that stays flat as the work grows, each point beside its baseline.

Sections, each writing its own part of BENCHMARKS.md (``write_section``):

- ``fence`` (``scale_fence.py``): first-sight ``Guard.decide`` against ``sqlglot.parse_one``
  of the same text for statement shapes at 1x, 10x and 100x (CTE chains of 10, 100 and
  1,000), a 100 KB CTE chain, the decision cache's memory (RSS) over many distinct
  statements against its bounds, and cached and missed executes against raw ``sqlite3``.
- ``sandbox`` (``scale_sandbox.py``): the registry's list, lookup and gc at 100, 1,000 and
  10,000 records (and ``sqlfence sandbox list`` beside the CLI's start alone), PostgreSQL
  create against bare ``CREATE ROLE`` + ``CREATE DATABASE``, live PostgreSQL sandboxes on a
  server with ``max_connections=100``, snapshot and restore against a ``TEMPLATE`` clone at
  100k and 1M rows, and warm pool acquire p99 at pool sizes 1, 10 and 50, settled and
  refilling.

Every number is a minimum of repetitions (the machine may be shared) and is printed as a
ratio to its baseline measured in the same run.

    python benchmarks/scale.py [SECTION ...] [--statements N]    (no section: all)
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from scale_fence import fence_section
from scale_sandbox import sandbox_section

SECTIONS: dict[str, Callable[[argparse.Namespace], str]] = {
    "fence": fence_section,
    "sandbox": sandbox_section,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sections", nargs="*", metavar="SECTION", help=", ".join(SECTIONS))
    parser.add_argument(
        "--statements",
        type=int,
        default=1_000_000,
        help="fence: distinct statements for the cache's memory (default 1,000,000)",
    )
    parser.add_argument(
        "--queries", type=int, default=5000, help="fence: executes per run (default 5,000)"
    )
    parser.add_argument(
        "--creates", type=int, default=30, help="sandbox: PostgreSQL creates timed (default 30)"
    )
    parser.add_argument(
        "--live", type=int, default=1000, help="sandbox: live PostgreSQL sandboxes (default 1,000)"
    )
    parser.add_argument(
        "--rows",
        type=lambda text: [int(n) for n in text.split(",")],
        default=[100_000, 1_000_000],
        help="sandbox: table sizes for snapshot and restore (default 100000,1000000)",
    )
    parser.add_argument(
        "--cycles", type=int, default=2000, help="sandbox: pool acquires per size (default 2,000)"
    )
    args = parser.parse_args(argv)
    unknown = [name for name in args.sections if name not in SECTIONS]
    if unknown:
        parser.error(f"unknown section(s) {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")
    for name in args.sections or list(SECTIONS):
        print(SECTIONS[name](args))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Scale (issue 19): cost that stays flat as the work grows, each point beside its baseline.

Sections, each writing its own part of BENCHMARKS.md:

- ``fence``: first-sight ``Guard.decide`` against ``sqlglot.parse_one`` for statement shapes
  at growing sizes, the decision cache's memory over many distinct statements against its
  bound, and cached / missed executes against raw ``sqlite3``.

    python benchmarks/scale.py [SECTION ...]     (no section: all of them)
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable


def fence_section() -> str:
    """The fence at scale; returns the Markdown it wrote to BENCHMARKS.md."""
    raise NotImplementedError("fence section: being written")


SECTIONS: dict[str, Callable[[], str]] = {
    "fence": fence_section,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sections", nargs="*", metavar="SECTION", help=", ".join(SECTIONS))
    args = parser.parse_args(argv)
    unknown = [name for name in args.sections if name not in SECTIONS]
    if unknown:
        parser.error(f"unknown section(s) {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")
    for name in args.sections or list(SECTIONS):
        print(SECTIONS[name]())
    return 0


if __name__ == "__main__":
    sys.exit(main())

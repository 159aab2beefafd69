"""Sandbox timings: create+destroy, and restoring a 10,000-row snapshot, SQLite and PostgreSQL.

    .venv/bin/python benchmarks/sandbox.py [--server-url postgresql://admin@host/postgres]
                                           [--no-write]

Without ``--server-url`` a throwaway PostgreSQL server is started from the local binaries
(as the tests do). Prints the table and writes the ``sandbox`` section of BENCHMARKS.md,
with the targets of the sandboxes issue beside the numbers.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from common import machine, ms, postgres_server, rank_percentile, timed, write_section

from sqlfence.sandbox import AgentSandbox

ROWS = 10_000


def measure(run: Callable[[], object], repeat: int) -> tuple[float, float]:
    """Median and p95 of ``run`` in milliseconds."""
    times = [ms(timed(run)) for _ in range(repeat)]
    return statistics.median(times), rank_percentile(times, 95)


def fill(sb: AgentSandbox, placeholder: str) -> None:
    """A 10,000-row table."""
    with sb.get_connection() as conn:
        conn.execute("CREATE TABLE entities (id integer PRIMARY KEY, name text, score real)")
        conn.cursor().executemany(
            f"INSERT INTO entities VALUES ({placeholder}, {placeholder}, {placeholder})",
            [(i, f"entity {i}", i * 0.5) for i in range(ROWS)],
        )


@contextmanager
def postgres(url: str | None) -> Iterator[str]:
    """The given server, or one started for the benchmark."""
    if url:
        yield url
        return
    with postgres_server(hint="; pass --server-url") as server:
        yield server.url


def main() -> None:
    """Run every measurement and print the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--server-url")
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--no-write", action="store_true", help="do not update BENCHMARKS.md")
    args = parser.parse_args()
    rows: list[tuple[str, float, float, str]] = []
    with tempfile.TemporaryDirectory() as tmp, postgres(args.server_url) as url:
        root = Path(tmp)

        def sqlite_cycle() -> None:
            AgentSandbox.create(agent_id="bench", root=root).destroy()

        rows.append(("SQLite create + destroy", *measure(sqlite_cycle, args.repeat), "10 ms"))

        with AgentSandbox.create(agent_id="bench", root=root) as sb:
            fill(sb, "?")
            sb.create_snapshot("s")
            rows.append(
                ("SQLite restore 10k rows", *measure(lambda: sb.restore_snapshot("s"), 20), "50 ms")
            )

        made: list[AgentSandbox] = []

        def pg_create() -> None:
            made.append(
                AgentSandbox.create(agent_id="bench", backend="postgres", server_url=url, root=root)
            )

        rows.append(("PostgreSQL create", *measure(pg_create, args.repeat), "150 ms"))
        rows.append(
            ("PostgreSQL destroy", *measure(lambda: made.pop().destroy(), args.repeat), "-")
        )

        with AgentSandbox.create(
            agent_id="bench", backend="postgres", server_url=url, root=root
        ) as sb:
            fill(sb, "%s")
            sb.create_snapshot("s")
            rows.append(
                (
                    "PostgreSQL restore 10k rows (in-server)",
                    *measure(lambda: sb.restore_snapshot("s"), 20),
                    "300 ms",
                )
            )
            sb.create_snapshot("portable", shared=True)
            rows.append(
                (
                    "PostgreSQL restore 10k rows (portable, pg_dump)",
                    *measure(lambda: sb.load_snapshot("portable"), 10),
                    "1 s",
                )
            )
    lines = ["| operation | median ms | p95 ms | target |", "|---|---:|---:|---|"]
    lines += [f"| {name} | {mid:.1f} | {p95:.1f} | {target} |" for name, mid, p95, target in rows]
    body = "\n".join(lines)
    print(body)
    if not args.no_write:
        where = "the server given" if args.server_url else "a PostgreSQL server the script starts"
        section = "\n".join(
            [
                "## Sandboxes (`benchmarks/sandbox.py`)",
                "",
                f"Measured {machine()}, against {where} (`fsync=off` as in the tests when "
                "started here). Median and p95 over repeated runs; targets from the "
                "sandboxes issue. PostgreSQL create is a `CREATE DATABASE`, a login role with "
                "its grants and the registry record; its p95 varies with the machine's load.",
                "",
                body,
            ]
        )
        print(f"\nwrote {write_section('sandbox', section)}")


if __name__ == "__main__":
    main()

"""``sqlfence sandbox ...`` and ``sqlfence pool warm``: sandboxes from a terminal.

Sandboxes made here are detached (they outlive the command) and end by ``destroy``, their
ttl, or ``gc --all``. Long work shows a progress display on a terminal; ``--json`` prints
one JSON document instead.
"""

from __future__ import annotations

import argparse
import json
import time
from contextlib import nullcontext
from dataclasses import asdict
from datetime import datetime, timezone
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from sqlfence.sandbox import AgentSandbox, SandboxPool, listing, reap


def sandbox_list(args: argparse.Namespace) -> int:
    """Every recorded sandbox; owners that are gone are marked (``gc`` removes those)."""
    records = listing(args.root)
    if args.json:
        print(json.dumps([asdict(record) for record in records], indent=2, default=str))
        return 0
    console = Console()
    if not records:
        console.print("no sandboxes")
        return 0
    table = Table("backend", "agent", "tenant", "owner", "expires")
    table.add_column("name", no_wrap=True)
    for record in records:
        owner = "detached" if record.owner.pid == 0 else str(record.owner.pid)
        if not record.owner.alive():
            owner += " (gone)"
        expires = "never" if record.expires_at is None else _when(record.expires_at)
        table.add_row(
            record.backend, record.agent_id, record.tenant or "-", owner, expires, record.name
        )
    console.print(table)
    return 0


def sandbox_gc(args: argparse.Namespace) -> int:
    """Remove what is expired or whose owner is gone (``--all``: everything)."""
    removed = reap(args.root, everything=args.all)
    if args.json:
        print(json.dumps({"removed": removed}))
    else:
        print(f"removed {len(removed)} sandbox(es)" + "".join(f"\n  {n}" for n in removed))
    return 0


def sandbox_create(args: argparse.Namespace) -> int:
    """Create a detached sandbox and print its name (and, for SQLite, its URL)."""
    access_policy: dict[str, Any] = {"read_only": False}
    with _status(args, f"creating a {args.backend} sandbox for {args.agent_id}"):
        sandbox = AgentSandbox.create(
            args.agent_id,
            tenant=args.tenant,
            backend=args.backend,
            server_url=args.server_url,
            ttl=args.ttl,
            root=args.root,
            access_policy=access_policy,
            load_snapshot=args.snapshot,
        )
        sandbox.detach()
    found = {"name": sandbox.name, "backend": args.backend, "url": sandbox.namespace.url or None}
    if args.json:
        print(json.dumps(found))
    else:
        print(sandbox.name)
        if found["url"]:
            print(f"  connect: sqlfence shell {found['url']} --policy POLICY")
    return 0


def sandbox_destroy(args: argparse.Namespace) -> int:
    """Destroy the named sandboxes."""
    for name in args.names:
        AgentSandbox.open(name, args.root).destroy()
        print(json.dumps({"destroyed": name}) if args.json else f"destroyed {name}")
    return 0


def sandbox_snapshot(args: argparse.Namespace) -> int:
    """Snapshot a sandbox (``--shared``: as a golden dataset other sandboxes can load)."""
    sandbox = AgentSandbox.open(args.name, args.root)
    with _status(args, f"snapshotting {args.name} as {args.snapshot}"):
        manifest = sandbox.create_snapshot(args.snapshot, shared=args.shared)
    _report(args, {"snapshot": args.snapshot, "tables": manifest.tables})
    return 0


def sandbox_restore(args: argparse.Namespace) -> int:
    """Restore a sandbox to one of its snapshots (checksums are verified first)."""
    sandbox = AgentSandbox.open(args.name, args.root)
    with _status(args, f"restoring {args.name} to {args.snapshot}"):
        manifest = sandbox.restore_snapshot(args.snapshot)
    _report(args, {"restored": args.snapshot, "tables": manifest.tables})
    return 0


def pool_warm(args: argparse.Namespace) -> int:
    """Start a pool, wait until ``size`` sandboxes are ready, report how long it took."""
    start = time.monotonic()
    pool = SandboxPool(
        size=args.size,
        backend=args.backend,
        runtime=args.runtime,
        server_url=args.server_url,
        root=args.root,
        warmup=False,
    )
    try:
        with _progress(args) as progress:
            task = progress.add_task("warming", total=args.size) if progress else None
            deadline = start + args.timeout
            ready = 0
            while ready < args.size and time.monotonic() < deadline:
                ready = pool.metrics().get("idle", 0)
                if progress is not None and task is not None:
                    progress.update(task, completed=ready)
                time.sleep(0.05)
        metrics = pool.metrics()
    finally:
        pool.close()
    result = {"ready": ready, "size": args.size, "seconds": round(time.monotonic() - start, 3)}
    _report(args, {**result, "metrics": metrics})
    return 0 if ready >= args.size else 1


def _status(args: argparse.Namespace, text: str) -> Any:
    if args.json:
        return nullcontext()
    return Console(stderr=True).status(text)


def _progress(args: argparse.Namespace) -> Any:
    if args.json:
        return nullcontext(None)
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} ready"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
    )


def _report(args: argparse.Namespace, payload: dict[str, Any]) -> None:
    if args.json:
        print(json.dumps(payload, default=str))
    else:
        for key, value in payload.items():
            print(f"{key}: {value}")


def _when(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")

"""``sqlfence sandbox ...`` and ``sqlfence pool warm``: sandboxes from a terminal.

Sandboxes made here are detached (they outlive the command) and end by ``destroy``, their
ttl, or ``gc --all``. Long work shows a progress display on a terminal (on standard error);
``--json`` prints one JSON document instead.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import asdict
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from rich.console import Console

from sqlfence.cli.output import FAILED, OK, Output
from sqlfence.sandbox.registry import Owner, Registry, resolve_root

if TYPE_CHECKING:
    from rich.progress import Progress

# The commands that make or change sandboxes import the sandbox machinery (and through it the
# fence) when they run: ``sandbox list`` reads only the registry and starts fast.

POOL_CHECK_AGENT = "pool-warm-check"


def sandbox_list(args: argparse.Namespace, out: Output) -> int:
    """Every recorded sandbox; owners that are gone are marked (``gc`` removes those)."""
    records = Registry(resolve_root(args.root)).records()
    if out.json:
        out.document([asdict(record) for record in records], indent=2)
        return OK
    if not records:
        out.line("no sandboxes")
        return OK
    rows = []
    alive: dict[Owner, bool] = {}  # once per owner, not per record: 10,000 records, few owners
    for record in records:
        owner = "detached" if record.owner.pid == 0 else str(record.owner.pid)
        if record.owner not in alive:
            alive[record.owner] = record.owner.alive()
        if not alive[record.owner]:
            owner += " (gone)"
        expires = "never" if record.expires_at is None else _when(record.expires_at)
        rows.append(
            [record.name, record.backend, record.agent_id, record.tenant or "-", owner, expires]
        )
    out.table(("name", "backend", "agent", "tenant", "owner", "expires"), rows)
    return OK


def sandbox_gc(args: argparse.Namespace, out: Output) -> int:
    """Remove what is expired or whose owner is gone (``--all``: everything)."""
    from sqlfence.sandbox.reaper import reap

    removed = reap(args.root, everything=args.all)
    if out.json:
        out.document({"removed": removed})
    else:
        out.line(f"removed {len(removed)} sandbox(es)")
        for name in removed:
            out.line(f"  {name}")
    return OK


def sandbox_create(args: argparse.Namespace, out: Output) -> int:
    """Create a detached sandbox and print its name, alone on one line (``N=$(...)`` works)."""
    from sqlfence.sandbox.sandbox import AgentSandbox

    with _status(out, f"creating a {args.backend} sandbox for {args.agent_id}"):
        sandbox = AgentSandbox.create(
            args.agent_id,
            tenant=args.tenant,
            backend=args.backend,
            server_url=args.server_url,
            ttl=args.ttl,
            root=args.root,
            access_policy={"read_only": False},
            load_snapshot=args.snapshot,
        )
        sandbox.detach()
    url = sandbox.namespace.url or None
    if out.json:
        out.document({"name": sandbox.name, "backend": args.backend, "url": url})
        return OK
    out.line(sandbox.name)
    if url and out.terminal:  # a hint for a person; a script captures the name alone
        out.note(f"connect: sqlfence shell {url} --policy POLICY")
    return OK


def sandbox_destroy(args: argparse.Namespace, out: Output) -> int:
    """Destroy the named sandboxes."""
    from sqlfence.sandbox.sandbox import AgentSandbox

    for name in args.names:
        AgentSandbox.open(name, args.root).destroy()
        if out.json:
            out.document({"destroyed": name})
        else:
            out.line(f"destroyed {name}")
    return OK


def sandbox_snapshot(args: argparse.Namespace, out: Output) -> int:
    """Snapshot a sandbox (``--shared``: as a golden dataset other sandboxes can load)."""
    from sqlfence.sandbox.sandbox import AgentSandbox

    sandbox = AgentSandbox.open(args.name, args.root)
    with _status(out, f"snapshotting {args.name} as {args.snapshot}"):
        manifest = sandbox.create_snapshot(args.snapshot, shared=args.shared)
    _report(out, {"snapshot": args.snapshot, "tables": manifest.tables})
    return OK


def sandbox_restore(args: argparse.Namespace, out: Output) -> int:
    """Restore a sandbox to one of its snapshots (checksums are verified first)."""
    from sqlfence.sandbox.sandbox import AgentSandbox

    sandbox = AgentSandbox.open(args.name, args.root)
    with _status(out, f"restoring {args.name} to {args.snapshot}"):
        manifest = sandbox.restore_snapshot(args.snapshot)
    _report(out, {"restored": args.snapshot, "tables": manifest.tables})
    return OK


def pool_warm(args: argparse.Namespace, out: Output) -> int:
    """Start a pool, wait until ``size`` sandboxes are ready, report how long it took.

    When the pool cannot make a sandbox, one is made in the foreground to learn why, and
    the command stops there with that reason (exit 1) instead of retrying until the timeout.
    """
    from sqlfence.sandbox.pool import SandboxPool

    options = {
        "backend": args.backend,
        "runtime": args.runtime,
        "server_url": args.server_url,
        "image": args.image,
        "root": args.root,
    }
    start = time.monotonic()
    pool = SandboxPool(size=args.size, warmup=False, **options)
    reason = None
    try:
        with _progress(out) as progress:
            task = progress.add_task("warming", total=args.size) if progress else None
            deadline = start + args.timeout
            ready = 0
            checked = False
            while ready < args.size and time.monotonic() < deadline:
                metrics = pool.metrics()
                ready = metrics.get("idle", 0)
                if progress is not None and task is not None:
                    progress.update(task, completed=ready)
                if metrics.get("create_failures", 0) and not checked:
                    checked = True
                    reason = _why_not(options)
                    if reason is not None:
                        break
                time.sleep(0.05)
        metrics = pool.metrics()
    finally:
        pool.close()
    result: dict[str, Any] = {
        "ready": ready,
        "size": args.size,
        "seconds": round(time.monotonic() - start, 3),
    }
    if ready < args.size:
        result["reason"] = reason or f"not ready within --timeout {args.timeout:g} s"
    _report(out, {**result, "metrics": metrics})
    return OK if ready >= args.size else FAILED


def _why_not(options: dict[str, Any]) -> str | None:
    """Make one sandbox as the pool does; the reason it fails (None when it works)."""
    from sqlfence.cli import describe, from_driver
    from sqlfence.errors import Error
    from sqlfence.sandbox.sandbox import AgentSandbox

    try:
        AgentSandbox.create(POOL_CHECK_AGENT, **options).destroy()
    except Exception as error:
        if not isinstance(error, (Error, OSError, ValueError)) and not from_driver(error):
            raise
        return describe(error) + _hint(error, options)
    return None


def _hint(error: BaseException, options: dict[str, Any]) -> str:
    causes: list[str] = []
    cause: BaseException | None = error
    while cause is not None and len(causes) < 10:
        causes.append(type(cause).__name__)
        cause = cause.__cause__ or cause.__context__
    if "ImageNotFound" in causes:
        image = options.get("image") or "the backend's default image"
        return f" (hint: {image} is not in the Docker engine: pull or build it, or pass --image)"
    return ""


def _status(out: Output, text: str) -> Any:
    console = Console(stderr=True)
    if out.json or not console.is_terminal:
        return nullcontext()
    return console.status(text)


@contextmanager
def _progress(out: Output) -> Iterator[Progress | None]:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    if out.json or not console.is_terminal:
        yield None
        return
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} ready"),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        yield progress


def _report(out: Output, payload: dict[str, Any]) -> None:
    """``key: value`` lines (a mapping as indented lines), or one JSON document."""
    if out.json:
        out.document(payload)
        return
    for key, value in payload.items():
        if isinstance(value, dict):
            out.line(f"{key}:")
            for inner, item in value.items():
                out.line(f"  {inner}: {item}")
        else:
            out.line(f"{key}: {value}")


def _when(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")

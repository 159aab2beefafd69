"""``sqlfence audit verify | query | tail | stats | export``: reading and checking audit logs.

Every action refuses a path that holds no audit log (exit 2) rather than showing an empty
result. ``--type`` takes event types or shell patterns (``sandbox.*``); ``--since`` and
``--until`` take ISO 8601 times or times ago (``2h``).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from collections import Counter
from dataclasses import asdict
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from sqlfence.cli.output import FAILED, OK, CommandError, Output
from sqlfence.observe import AuditEvent, export_events, query_events
from sqlfence.observe import verify as verify_log

_STATUS_STYLES = {"denied": "red", "error": "red", "warning": "yellow", "detected": "yellow"}


def audit_log(path: str) -> Path:
    """``path`` when it is an audit log file or a directory holding one; else CommandError."""
    from sqlfence.observe.filesink import chain_prefixes

    found = Path(path)
    if not found.exists():
        raise CommandError(f"no audit log at {path}")
    # A directory whose log files are gone but whose heads or roster remain is a log that
    # lost its events (verify says how many), not an empty directory.
    leftovers = found.is_dir() and (any(found.glob("*.head")) or any(found.glob("*.chains")))
    if found.is_dir() and not chain_prefixes(found) and not leftovers:
        raise CommandError(f"no audit log in {path}: it holds no audit-*.jsonl files")
    return found


def verify(args: argparse.Namespace, out: Output) -> int:
    """Verify an audit log's chain; exit 0 only when nothing was changed, removed or reordered."""
    result = verify_log(audit_log(args.path))
    if out.json:
        error = result.first_error
        out.document(
            {
                "ok": result.ok,
                "events_checked": result.events_checked,
                "first_error": None if error is None else str(error),
            }
        )
    else:
        out.line(str(result), style=None if result.ok else "red")
    return OK if result.ok else FAILED


def query(args: argparse.Namespace, out: Output) -> int:
    """Print the events matching the filters, one JSON object per line."""
    for event in _events(args):
        out.document(_event_dict(event))
    return OK


def tail(args: argparse.Namespace, out: Output) -> int:
    """Print the last N events as a table (``--json``: one JSON object per line)."""
    events = _events(args)[-args.lines :]
    if out.json:
        for event in events:
            out.document(_event_dict(event))
        return OK
    rows = [
        [
            str(event.seq),
            event.timestamp,
            event.event_type,
            event.status or "",
            event.agent_id or "-",
            event.reason or event.query or "",
        ]
        for event in events
    ]
    styles = [_STATUS_STYLES.get(event.status or "") for event in events]
    out.table(("seq", "time", "event", "status", "agent", "what"), rows, styles)
    return OK


def stats(args: argparse.Namespace, out: Output) -> int:
    """Counts of events by type, status and agent."""
    events = _events(args)
    counts = {
        "events": len(events),
        "by_type": dict(Counter(e.event_type for e in events)),
        "by_status": dict(Counter(e.status or "-" for e in events)),
        "by_agent": dict(Counter(e.agent_id or "-" for e in events)),
    }
    out.document(counts, indent=None if out.json else 2)
    return OK


def export(args: argparse.Namespace, out: Output) -> int:
    """Write the matching events as JSON, JSON Lines or CSV (``-o -``: to standard output)."""
    path = audit_log(args.path)
    filters = _filters(args)
    if args.type:
        filters["event_type"] = tuple(sorted(_matching_types(query_events(path, **filters), args)))
    if args.output != "-":
        count = export_events(path, args.output, format=args.format, **filters)
        if out.json:
            out.document({"exported": count, "output": args.output, "format": args.format})
        else:
            out.line(f"{count} events written to {args.output}")
        return OK
    with tempfile.TemporaryDirectory(prefix="sqlfence-export-") as scratch:
        written = Path(scratch) / f"events.{args.format}"
        export_events(path, written, format=args.format, **filters)
        with written.open(encoding="utf-8", newline="") as source:
            shutil.copyfileobj(source, out.stream)
    out.stream.flush()
    return OK


def _filters(args: argparse.Namespace) -> dict[str, Any]:
    # Every filtering action (query, tail, stats, export) declares these options; --type is
    # matched here, as patterns, not by the log reader.
    return {
        "agent_id": args.agent,
        "tenant": args.tenant,
        "status": args.status,
        "since": args.since,
        "until": args.until,
    }


def _events(args: argparse.Namespace) -> list[AuditEvent]:
    events = query_events(audit_log(args.path), **_filters(args))
    if not args.type:
        return events
    wanted = _matching_types(events, args)
    return [event for event in events if event.event_type in wanted]


def _matching_types(events: list[AuditEvent], args: argparse.Namespace) -> set[str]:
    """The event types present in ``events`` that match one of the ``--type`` patterns."""
    present = {event.event_type for event in events}
    return {kind for kind in present if any(fnmatchcase(kind, p) for p in args.type)}


def _event_dict(event: AuditEvent) -> dict[str, Any]:
    return {k: v for k, v in asdict(event).items() if v not in (None, {}, ())}

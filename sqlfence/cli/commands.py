"""The CLI's sub-commands: small functions from parsed arguments to an exit code."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from sqlfence.policies.engine import Guard
from sqlfence.policies.loader import load_policy
from sqlfence.policies.model import Policy


def check(args: argparse.Namespace) -> int:
    """Print the decision and final SQL for one statement; exit 1 when denied."""
    sql = sys.stdin.read() if args.sql == "-" else args.sql
    policy = load_policy(args.policy).resolve(args.agent, args.tenant)
    decision = Guard(policy, dialect=args.dialect).decide(sql)
    if args.json:
        print(
            json.dumps(
                {
                    "allowed": decision.allowed,
                    "detected": decision.detected,
                    "sql": decision.sql,
                    "rewritten": decision.rewritten,
                    "reasons": [
                        {"rule": r.rule, "message": r.message, "location": r.location}
                        for r in decision.reasons
                    ],
                    "operation": decision.facts.operation,
                    "tables": sorted(decision.facts.tables),
                    "fingerprint": decision.facts.fingerprint,
                },
                indent=2,
            )
        )
    else:
        console = Console(highlight=False)
        color = "red" if not decision.allowed else "yellow" if decision.detected else "green"
        console.print(decision.explain(), style=color, markup=False)
        if decision.allowed:
            console.print(decision.sql, markup=False)
    return 0 if decision.allowed else 1


def policy_lint(args: argparse.Namespace) -> int:
    """Validate every policy file (each section of each); exit 2 when any is malformed."""
    from sqlfence.errors import PolicyError

    failed = 0
    for path in args.files:
        try:
            load_policy(path)
        except PolicyError as error:
            failed += 1
            print(f"{path}: {error}", file=sys.stderr)
        else:
            print(f"{path}: ok")
    return 2 if failed else 0


def policy_schema(args: argparse.Namespace) -> int:
    """Print the JSON Schema for policy files."""
    print(json.dumps(Policy.json_schema(), indent=2))
    return 0


def shell(args: argparse.Namespace) -> int:
    """The interactive guarded prompt."""
    from sqlfence.cli.shell import run

    return run(args.url, args.policy, args.agent, args.tenant)


def demo(args: argparse.Namespace) -> int:
    """Run the scripted agent session."""
    from sqlfence.cli.demo import run

    return run(audit_dir=Path(args.audit) if args.audit else None)


def audit_verify(args: argparse.Namespace) -> int:
    """Verify an audit log's chain; exit 0 only when nothing was changed, removed or reordered."""
    from sqlfence.observe import verify

    if not Path(args.path).exists():
        print(f"sqlfence: no audit log at {args.path}", file=sys.stderr)
        return 2
    result = verify(args.path)
    if args.json:
        error = result.first_error
        print(
            json.dumps(
                {
                    "ok": result.ok,
                    "events_checked": result.events_checked,
                    "first_error": None if error is None else str(error),
                }
            )
        )
    else:
        print(result)
    return 0 if result.ok else 1


def audit_query(args: argparse.Namespace) -> int:
    """Print the events matching the filters, one JSON object per line."""
    for event in _events(args):
        print(json.dumps(_event_dict(event), default=str))
    return 0


def audit_tail(args: argparse.Namespace) -> int:
    """Print the last N events as a table (``--json``: one JSON object per line)."""
    events = _events(args)[-args.lines :]
    if args.json:
        for event in events:
            print(json.dumps(_event_dict(event), default=str))
        return 0
    table = Table("seq", "time", "event", "status", "agent", "what")
    for event in events:
        what = " ".join((event.reason or event.query or "").split())[:100]
        status = event.status or ""
        style = {"denied": "red", "error": "red", "warning": "yellow"}.get(status, "")
        table.add_row(
            str(event.seq), event.timestamp, event.event_type, status, event.agent_id or "-",
            what, style=style,
        )  # fmt: skip
    Console().print(table)
    return 0


def audit_stats(args: argparse.Namespace) -> int:
    """Counts of events by type, status and agent."""
    from collections import Counter

    events = _events(args)
    stats = {
        "events": len(events),
        "by_type": dict(Counter(e.event_type for e in events)),
        "by_status": dict(Counter(e.status or "-" for e in events)),
        "by_agent": dict(Counter(e.agent_id or "-" for e in events)),
    }
    print(json.dumps(stats, indent=None if args.json else 2))
    return 0


def audit_export(args: argparse.Namespace) -> int:
    """Write the matching events as JSON, JSON Lines or CSV."""
    from sqlfence.observe import export_events

    export_events(args.path, args.output, format=args.format, **_filters(args))
    return 0


def policy_learn(args: argparse.Namespace) -> int:
    """Print a policy whose allowlist holds the statement shapes that ran in an audit log."""
    import yaml

    from sqlfence.observe import query_events

    if not Path(args.audit).exists():
        print(f"sqlfence: no audit log at {args.audit}", file=sys.stderr)
        return 2
    events = query_events(
        args.audit, agent_id=args.agent, event_type=("query", "slow_query"), status="ok"
    )
    shapes: dict[str, str] = {}
    for event in events:
        if event.fingerprint and event.query:
            shapes.setdefault(event.fingerprint, " ".join(event.query.split())[:120])
    if not shapes:
        who = f" of agent {args.agent}" if args.agent else ""
        print(
            f"sqlfence: no allowed statements{who} in {args.audit}: an empty allowlist would "
            "allow every shape, so no policy was written",
            file=sys.stderr,
        )
        return 1
    fingerprints = sorted(shapes)
    base: dict[str, object] = {}
    if args.base:
        base = dict(load_policy(args.base).resolve(args.agent).model_dump(exclude_unset=True))
    base["allowlist"] = fingerprints
    print(f"# learned from {len(events)} statements in {args.audit}: {len(fingerprints)} shapes")
    for fingerprint in fingerprints:
        print(f"#   {fingerprint}: {shapes[fingerprint]}")
    print(yaml.safe_dump(base, sort_keys=False), end="")
    return 0


def _filters(args: argparse.Namespace) -> dict[str, Any]:
    # Every audit action (query, tail, stats, export) declares these options.
    return {
        "agent_id": args.agent,
        "tenant": args.tenant,
        "status": args.status,
        "event_type": args.type,
        "since": args.since,
        "until": args.until,
    }


def _events(args: argparse.Namespace) -> list[Any]:
    from sqlfence.observe import query_events

    return query_events(args.path, **_filters(args))


def _event_dict(event: Any) -> dict[str, Any]:
    from dataclasses import asdict

    return {k: v for k, v in asdict(event).items() if v not in (None, {}, ())}

"""The CLI's sub-commands: small functions from parsed arguments to an exit code."""

from __future__ import annotations

import argparse
import json
import sys

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
        print(decision.explain())
        if decision.allowed:
            print(decision.sql)
    return 0 if decision.allowed else 1


def policy_lint(args: argparse.Namespace) -> int:
    """Validate policy files; exit 2 on the first malformed one."""
    for path in args.files:
        load_policy(path)
        print(f"{path}: ok")
    return 0


def policy_schema(args: argparse.Namespace) -> int:
    """Print the JSON Schema for policy files."""
    print(json.dumps(Policy.json_schema(), indent=2))
    return 0


def demo(args: argparse.Namespace) -> int:
    """Run the scripted agent session."""
    from sqlfence.cli.demo import run

    return run()


def sandbox_list(args: argparse.Namespace) -> int:
    """Print every recorded sandbox: name, backend, agent, tenant, owner pid, expiry."""
    from sqlfence.sandbox import listing

    records = listing(args.root)
    if args.json:
        print(json.dumps([_record(record) for record in records], indent=2, default=str))
        return 0
    if not records:
        print("no sandboxes")
    for record in records:
        expires = "never" if record.expires_at is None else _when(record.expires_at)
        print(
            f"{record.name}  {record.backend}  agent={record.agent_id}  "
            f"tenant={record.tenant or '-'}  pid={record.owner.pid}  expires={expires}"
        )
    return 0


def sandbox_gc(args: argparse.Namespace) -> int:
    """Remove what is expired or whose owner is gone; print what was removed."""
    from sqlfence.sandbox import reap

    removed = reap(args.root, everything=args.all)
    if args.json:
        print(json.dumps({"removed": removed}))
    else:
        print(f"removed {len(removed)} sandbox(es)" + "".join(f"\n  {n}" for n in removed))
    return 0


def _record(record: object) -> dict[str, object]:
    from dataclasses import asdict, is_dataclass

    return asdict(record) if is_dataclass(record) and not isinstance(record, type) else {}


def _when(timestamp: float) -> str:
    from datetime import datetime, timezone

    return datetime.fromtimestamp(timestamp, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")

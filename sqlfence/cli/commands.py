"""The CLI's policy sub-commands (check, policy lint/schema/learn), and the entry points of
the shell and the demo: small functions from parsed arguments to an exit code."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from sqlfence.cli.output import FAILED, OK, USAGE, CommandError, Output, one_line
from sqlfence.policies.engine import Decision, Guard
from sqlfence.policies.loader import load_policy
from sqlfence.policies.model import Policy

# Operations of a statement the parser could not read: bad input (exit 2), not a denial.
_NOT_SQL = frozenset({"unparsed", "empty"})


def check(args: argparse.Namespace, out: Output) -> int:
    """Print the decision and final SQL for one statement; exit 1 when denied, 2 when the
    text is not SQL the parser can read."""
    sql = sys.stdin.read() if args.sql == "-" else args.sql
    policy = load_policy(args.policy).resolve(args.agent, args.tenant)
    database = getattr(args, "database", None)
    if database:
        decision = _decide_on(database, policy, args, sql)
    else:
        # The agent, tenant and claims are the guard's identity too: row filters bind them.
        guard = Guard(
            policy,
            dialect=args.dialect,
            agent_id=args.agent,
            tenant=args.tenant,
            claims=dict(getattr(args, "claim", ())),
        )
        decision = guard.decide(sql)
    if out.json:
        out.document(decision_document(decision), indent=2)
    else:
        color = "red" if not decision.allowed else "yellow" if decision.detected else "green"
        out.line(decision.explain(), style=color)
        if decision.allowed:
            out.line(decision.sql)  # exactly as it would run: never wrapped or re-spaced
    if decision.allowed:
        return OK
    return USAGE if decision.facts.operation in _NOT_SQL else FAILED


def _decide_on(url: str, policy: Any, args: argparse.Namespace, sql: str) -> Decision:
    """The decision of a connection to ``url``: its guard knows the database's catalog (the
    columns masks list, the tables *.column keys match, views, partitions). Nothing runs."""
    import sqlfence

    with sqlfence.connect(
        url,
        policy=policy,
        agent_id=args.agent,
        tenant=args.tenant,
        claims=dict(getattr(args, "claim", ())),
        audit=False,
        telemetry=False,
    ) as connection:
        return connection.guard.decide(sql)


def decision_document(decision: Decision) -> dict[str, Any]:
    """A decision as JSON: verdict, reasons with their policy lines, and the statement's facts."""
    return {
        "allowed": decision.allowed,
        "detected": decision.detected,
        "sql": decision.sql,
        "rewritten": decision.rewritten,
        "row_filters": list(decision.row_filters),
        "masks": list(decision.masks),
        "reasons": [
            {"rule": r.rule, "message": r.message, "location": r.location} for r in decision.reasons
        ],
        "operation": decision.facts.operation,
        "tables": sorted(decision.facts.tables),
        "fingerprint": decision.facts.fingerprint,
    }


def policy_lint(args: argparse.Namespace, out: Output) -> int:
    """Validate every policy file (each section of each); exit 2 when any is malformed."""
    from sqlfence.errors import PolicyError

    results = []
    for path in args.files:
        try:
            load_policy(path)
        except PolicyError as error:
            results.append({"file": path, "ok": False, "error": str(error)})
            if not out.json:
                print(f"{path}: {error}", file=sys.stderr)
        else:
            results.append({"file": path, "ok": True})
            if not out.json:
                out.line(f"{path}: ok")
    if out.json:
        out.document(results, indent=2)
    return USAGE if any(not result["ok"] for result in results) else OK


def policy_schema(args: argparse.Namespace, out: Output) -> int:
    """Print the JSON Schema for policy files (JSON with or without ``--json``)."""
    out.document(Policy.json_schema(), indent=2)
    return OK


def policy_learn(args: argparse.Namespace, out: Output) -> int:
    """Print a policy whose allowlist holds the statement shapes that ran in an audit log."""
    import yaml

    from sqlfence.cli.audit import audit_log
    from sqlfence.observe import query_events
    from sqlfence.policies.learning import Seen, learned_policy

    audit_log(args.audit)
    events = query_events(
        args.audit, agent_id=args.agent, event_type=("query", "slow_query"), status="ok"
    )
    shapes: dict[str, str] = {}
    for event in events:
        if event.fingerprint and event.query:
            shapes.setdefault(event.fingerprint, event.query)
    if not shapes:
        who = f" of agent {args.agent}" if args.agent else ""
        raise CommandError(
            f"no allowed statements{who} in {args.audit}: an empty allowlist would allow "
            "every shape, so no policy was written",
            FAILED,
        )
    fingerprints = sorted(shapes)
    learned = learned_policy(
        fingerprints, Seen.of(events), base=args.base, agent_id=args.agent, tenant=args.tenant
    )
    if out.json:
        out.document({"statements": len(events), "shapes": shapes, "policy": learned}, indent=2)
        return OK
    out.line(f"# learned from {len(events)} statements in {args.audit}: {len(fingerprints)} shapes")
    if not args.base:
        out.line("# no --base: the limits the agent ran under are unknown, so these are as")
        out.line("# strict as what was seen (pass --base POLICY to keep that policy's rules)")
    for fingerprint in fingerprints:
        out.line(f"#   {fingerprint}: {one_line(shapes[fingerprint])}")  # one comment line
    out.stream.write(yaml.safe_dump(learned, sort_keys=False))
    return OK


def shell(args: argparse.Namespace, out: Output) -> int:
    """The interactive guarded prompt (or ``-c`` statements, or statements on stdin)."""
    from sqlfence.cli.shell import ShellSettings, run

    if args.unrestricted and args.policy:
        raise_usage("--unrestricted and --policy exclude each other")
    settings = ShellSettings(
        url=args.url,
        policy=Policy.unrestricted() if args.unrestricted else args.policy,
        agent_id=args.agent,
        tenant=args.tenant,
        commands=tuple(args.command or ()),
        claims=tuple(getattr(args, "claim", ())),
    )
    return run(settings, out)


def demo(args: argparse.Namespace, out: Output) -> int:
    """Run the scripted agent session, or write its shop database (``--make-shop``)."""
    from sqlfence.cli import demo as scripted

    if args.make_shop:
        if args.audit:
            raise_usage("--make-shop writes a database and exits: it keeps no audit log")
        counts = scripted.make_shop(Path(args.make_shop))
        if out.json:
            out.document({"database": args.make_shop, "tables": counts})
        else:
            made = ", ".join(f"{table} ({rows} rows)" for table, rows in counts.items())
            out.line(f"wrote {args.make_shop}: {made}")
        return OK
    return scripted.run(out, audit_dir=Path(args.audit) if args.audit else None)


def raise_usage(message: str) -> None:
    """Stop the command: bad usage (exit 2)."""
    raise CommandError(message, USAGE)

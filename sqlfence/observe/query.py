"""Reading audit logs back: filter events by agent, tenant, status, type and time; export them.

This reads the files as they are; run ``verify`` first when the answer is evidence.
"""

from __future__ import annotations

import csv
import datetime
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlfence.observe.events import COLUMNS, AuditEvent, parse_timestamp
from sqlfence.observe.filesink import chain_files, chain_prefixes
from sqlfence.observe.integrity import split_line

FORMATS = ("json", "jsonl", "csv")


def read_events(path: str | Path, *, chain: str | None = None) -> Iterator[AuditEvent]:
    """Every event of a log file, or of a directory's chains (one chain when ``chain``)."""
    path = Path(path)
    if path.is_file():
        paths = [path]
    else:
        prefixes = [chain] if chain is not None else chain_prefixes(path)
        paths = [p for prefix in prefixes for p in chain_files(path, prefix)]
    for file in paths:
        with file.open("rb") as handle:
            for raw in handle:
                event = _decode(raw)
                if event is not None:
                    yield event


def _decode(raw: bytes) -> AuditEvent | None:
    split = split_line(raw)
    try:
        data = json.loads(split[0] if split is not None else raw)
    except ValueError:
        return None  # a torn or damaged line; verify() reports it
    if not isinstance(data, dict) or "seq" not in data:
        return None
    if split is not None:
        data["mac"] = split[1]
    return AuditEvent.from_dict(data)


def query_events(
    path: str | Path,
    *,
    chain: str | None = None,
    agent_id: str | None = None,
    tenant: str | None = None,
    status: str | None = None,
    event_type: str | tuple[str, ...] | None = None,
    since: datetime.datetime | str | None = None,
    until: datetime.datetime | str | None = None,
    limit: int | None = None,
) -> list[AuditEvent]:
    """Events matching every given filter, in log order. ``since`` is inclusive, ``until``
    exclusive; both accept datetimes or ISO 8601 text (naive means UTC)."""
    types = (event_type,) if isinstance(event_type, str) else event_type
    start = _moment(since)
    end = _moment(until)
    found: list[AuditEvent] = []
    for event in read_events(path, chain=chain):
        if agent_id is not None and event.agent_id != agent_id:
            continue
        if tenant is not None and event.tenant != tenant:
            continue
        if status is not None and event.status != status:
            continue
        if types is not None and event.event_type not in types:
            continue
        if start is not None or end is not None:
            moment = event.when
            if (start is not None and moment < start) or (end is not None and moment >= end):
                continue
        found.append(event)
        if limit is not None and len(found) >= limit:
            break
    return found


def _moment(value: datetime.datetime | str | None) -> datetime.datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        return parse_timestamp(value)
    return value if value.tzinfo is not None else value.replace(tzinfo=datetime.timezone.utc)


def export_events(
    path: str | Path,
    destination: str | Path,
    format: str = "jsonl",
    **filters: Any,
) -> int:
    """Write the events matching ``filters`` (see ``query_events``) to ``destination``.

    ``jsonl``: one event per line, as logged; ``json``: one array; ``csv``: one column per
    field, lists and objects as JSON. Returns the number of events written.
    """
    if format not in FORMATS:
        raise ValueError(f"unknown export format {format!r}; use one of {', '.join(FORMATS)}")
    events = query_events(path, **filters)
    rows = [_row(event) for event in events]
    destination = Path(destination)
    with destination.open("w", encoding="utf-8", newline="") as out:
        if format == "jsonl":
            out.writelines(json.dumps(row, separators=(",", ":")) + "\n" for row in rows)
        elif format == "json":
            json.dump(rows, out, indent=1)
        else:
            writer = csv.DictWriter(out, fieldnames=[*COLUMNS, "extra"])
            writer.writeheader()
            for row in rows:
                writer.writerow({key: _cell(row.get(key)) for key in [*COLUMNS, "extra"]})
    return len(rows)


def _row(event: AuditEvent) -> dict[str, Any]:
    row = {name: getattr(event, name) for name in COLUMNS}
    if row["tables"] is not None:
        row["tables"] = list(row["tables"])
    row = {key: value for key, value in row.items() if value is not None}
    if event.extra:
        row["extra"] = event.extra
    return row


def _cell(value: Any) -> Any:
    if isinstance(value, (list, dict)):
        return json.dumps(value, separators=(",", ":"))
    return value

"""Writing audit lines: an event rendered by its kind's layout (``schema.py``) as compact
ASCII JSON, ``seq`` first and ``prev`` last (the chain adds the MAC).

Two kinds of event reach the writer. Dict events (connections, sandbox lifecycle, alerts,
the log's own) are written key by key in their layout's order: a key present is written,
keys the layout does not know (an integration's, a processor's) follow in the dict's order.
Records built on the query path (``records.py``) give the writer their per-event values,
their session and their decision; the runs of a layout that come from the session or the
decision are rendered once and reused, and SQL text once per text, by one ``LineWriter``
per audit log (so nothing here is a module-level cache).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from sqlfence.observe.masking import mask_literals
from sqlfence.observe.schema import LAYOUTS, OK, Field, Layout, Source, layout_of

if TYPE_CHECKING:
    from sqlfence.observe.observer import Session
    from sqlfence.observe.settings import AuditSettings
    from sqlfence.policies.engine import Decision

_encoder = json.JSONEncoder(separators=(",", ":"), check_circular=False, default=repr)
json_text = _encoder.encode
"""Compact ASCII JSON text of a value (the encoder every event uses)."""
_escape = json.encoder.encode_basestring_ascii  # what json_text does with a str, directly
_CACHE_LIMIT = 4096


def value_text(value: Any) -> str:
    """``json_text(value)``, without the encoder's overhead for the usual scalars."""
    kind = type(value)
    if kind is str:
        return _escape(value)
    if value is None:
        return "null"
    if kind is int:
        return int.__repr__(value)
    if kind is bool:
        return "true" if value else "false"
    if kind is float and math.isfinite(value):
        return float.__repr__(value)
    return json_text(value)


def encode_event(event: Mapping[str, Any], seq: int, prev: str) -> bytes:
    """A dict event as its line body (no MAC): ``seq``, its layout's keys that it has, the
    keys the layout does not know, then ``prev`` (``seq``, ``prev`` and ``mac`` it has are
    replaced)."""
    layout = layout_of(event.get("event_type", ""))
    parts = [f'{{"seq":{seq}']
    for field in layout.fields:
        name = field.name
        if name != "seq" and name in event:
            parts.append(f',"{name}":{value_text(event[name])}')
    known = layout.names
    for name, value in event.items():
        if name not in known and name not in ("prev", "mac"):
            parts.append(f",{_escape(name)}:{value_text(value)}")
    parts.append(f',"prev":"{prev}"}}')
    return "".join(parts).encode("ascii")


class AuditRecord(Protocol):
    """What the query path queues for the audit log besides a plain event dict."""

    @property
    def layout(self) -> Layout:
        """The kind of event this record becomes."""

    @property
    def session(self) -> Session:
        """The connection it happened on."""

    @property
    def decision(self) -> Decision:
        """The fence's decision on its statement."""

    def kind(self) -> tuple[str, str]:
        """``(event_type, status)``, to decide whether the settings want the event."""

    def values(self, kind: tuple[str, str]) -> Mapping[str, Any]:
        """The value of each of the layout's per-event and text fields, None where it does
        not apply (``kind`` is what ``kind()`` returned)."""


def session_fields(session: Session) -> dict[str, Any]:
    """The values of the session's fields (None where they do not apply)."""
    port = session.server_port
    address = session.server_address
    return {
        "agent_id": session.agent_id,
        "tenant": session.tenant,
        "privileges": list(session.privileges) if session.privileges else None,
        "client_name": session.client_name,
        "namespace": session.namespace,
        "sandbox": session.sandbox,
        "db_system": session.system,
        "server": None if address is None else address + ("" if port is None else f":{port}"),
        "connection_id": session.connection_id,
    }


def decision_fields(decision: Decision) -> dict[str, Any]:
    """The values of the decision's fields (None where they do not apply)."""
    facts = decision.facts
    reasons = decision.reasons
    return {
        "operation": facts.operation,
        "tables": sorted(facts.tables),
        "summary": facts.summary or None,
        "fingerprint": facts.fingerprint or None,
        "rule": ",".join(dict.fromkeys(reason.rule for reason in reasons)) if reasons else None,
        "reason": "; ".join(str(reason) for reason in reasons) if reasons else None,
        # the policy keys whose row filters the statement was rewritten with
        "row_filters": list(decision.row_filters) if decision.row_filters else None,
        # the policy keys whose column masks the statement's reads were rewritten with
        "masks": list(decision.masks) if decision.masks else None,
    }


Render = Callable[["LineWriter", AuditRecord, Mapping[str, Any], int, str], str]


def _compile(layout: Layout) -> Render:
    """The layout's renderer for records: one f-string, generated from the layout the way
    ``dataclasses`` generates ``__init__``, so that the hot event costs what a hand-written
    f-string did while the layout stays its only declaration.

    Runs of session (or decision) fields become one fragment that ``LineWriter`` renders once
    per connection (or decision); an optional field is left out when its value is None.
    """
    body: list[str] = []
    pieces = ['{{"seq":{seq}']
    run: list[Field] = []

    def close_run() -> None:
        if run:
            number = len(_RUNS)
            name = f"{layout.kind}:{number}"
            _RUNS[name] = tuple(run)
            owner = "r.session" if run[0].source is Source.SESSION else "r.decision"
            key = "connection_id" if run[0].source is Source.SESSION else "sql"
            # The writer's cache of this run, looked up here (the hot path), filled by _run.
            body.append(f"    o = {owner}")
            body.append(f"    e = w._runs.get(({name!r}, o.{key}))")
            body.append(
                f"    f{number} = e[1] if e is not None and e[0] is o else "
                f"w._run({name!r}, o.{key}, o)"
            )
            pieces.append(f"{{f{number}}}")
            run.clear()

    for index, field in enumerate(layout.fields[1:]):  # "seq" is the writer's
        if field.source in (Source.SESSION, Source.DECISION):
            if run and run[0].source is not field.source:
                close_run()
            run.append(field)
            continue
        close_run()
        value = f"v[{field.name!r}]"  # a record's values() has every field of its layout
        if field.plain:  # '"' + text + '"', no escaping to look for
            if field.optional:
                body.append(f"    x{index} = {value}")
                prefix = "," + json_text(field.name) + ':"'
                quote = '"'
                body.append(
                    f"    x{index} = '' if x{index} is None else {prefix!r} + x{index} + {quote!r}"
                )
                pieces.append(f"{{x{index}}}")
            else:
                body.append(f"    x{index} = {value}")
                pieces.append(f',"{field.name}":"{{x{index}}}"')
            continue
        text = "w.query_text" if field.source is Source.TEXT else "value_text"
        if field.optional:
            body.append(f"    x{index} = {value}")
            body.append(
                f"    x{index} = '' if x{index} is None else "
                f"{(',' + json_text(field.name) + ':')!r} + {text}(x{index})"
            )
            pieces.append(f"{{x{index}}}")
        else:
            body.append(f"    x{index} = {text}({value})")
            pieces.append(f',"{field.name}":{{x{index}}}')
    close_run()
    pieces.append(',"prev":"{prev}"}}')
    source = "def render(w, r, v, seq, prev):\n" + "\n".join(body)
    source += "\n    return f" + repr("".join(pieces)) + "\n"
    namespace: dict[str, Any] = {"value_text": value_text}
    _SOURCES[layout.kind] = source
    exec(compile(source, f"<audit layout {layout.kind}>", "exec"), namespace)
    render: Render = namespace["render"]
    return render


_RUNS: dict[str, tuple[Field, ...]] = {}  # "kind:number" -> the session or decision fields
_SOURCES: dict[str, str] = {}  # the generated renderers' source, for a reader or a debugger


class LineWriter:
    """Renders one audit log's events as line bodies (the log's writer thread only)."""

    def __init__(self, settings: AuditSettings) -> None:
        self._mask = settings.mask_literals
        self._limit = settings.max_query_chars
        self._texts: dict[str, str] = {}
        self._runs: dict[tuple[str, object], tuple[object, str]] = {}

    @staticmethod
    def kind(item: AuditRecord | dict[str, Any]) -> tuple[str, str]:
        """``(event_type, status)`` of a record or a dict event."""
        if isinstance(item, dict):
            return item.get("event_type", ""), item.get("status", OK)
        return item.kind()

    def line(
        self, item: AuditRecord | dict[str, Any], seq: int, prev: str, kind: tuple[str, str]
    ) -> bytes:
        """A record or a dict event as its line body (no MAC)."""
        if isinstance(item, dict):
            return encode_event(item, seq, prev)
        return self.record(item, seq, prev, kind)

    def record(self, record: AuditRecord, seq: int, prev: str, kind: tuple[str, str]) -> bytes:
        """``record`` as its line body (no MAC); ``kind`` is what ``record.kind()`` returned."""
        render = _RENDERERS[record.layout.kind]
        return render(self, record, record.values(kind), seq, prev).encode("ascii")

    def query_text(self, sql: str | None) -> str:
        """SQL text as it is recorded, in JSON: literals masked and cut per the settings."""
        if sql is None:
            return "null"
        text = self._texts.get(sql)
        if text is None:
            text = _escape(recorded_query(sql, self._mask, self._limit))
            _remember(self._texts, sql, text)
        return text

    def _run(self, run: str, key: object, owner: Any) -> str:
        """A run of session or decision fields, rendered once per connection or decision.

        Keyed by the connection's number or the decision's SQL text, and checked to be the
        same object, so a key reused by another connection or decision is never mistaken.
        """
        entry = self._runs.get((run, key))
        if entry is not None and entry[0] is owner:
            return entry[1]
        fields = _RUNS[run]
        session = fields[0].source is Source.SESSION
        values = session_fields(owner) if session else decision_fields(owner)
        text = "".join(
            f",{json_text(field.name)}:{value_text(values[field.name])}"
            for field in fields
            if values[field.name] is not None or not field.optional
        )
        _remember(self._runs, (run, key), (owner, text))
        return text


_RENDERERS = {layout.kind: _compile(layout) for layout in LAYOUTS}


def recorded_query(sql: str, mask: bool, limit: int | None) -> str:
    """SQL text as the audit log records it: literals masked, cut at ``limit`` chars."""
    text = mask_literals(sql) if mask else sql
    if limit is not None and len(text) > limit:
        text = text[:limit] + f"...[{len(text) - limit} more chars]"
    return text


def _remember(cache: dict[Any, Any], key: Any, value: Any) -> None:
    if len(cache) >= _CACHE_LIMIT:
        cache.clear()  # cheaper than LRU bookkeeping; agents repeat a few statements
    cache[key] = value

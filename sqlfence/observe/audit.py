"""``AuditLog``: the tamper-evident record of everything agents did through the fence.

Hooks hand *records* to ``submit`` (a queue append); a background thread turns them into JSON,
numbers and chains them with HMAC-SHA256 and writes them in batches to JSON Lines files and
the other sinks, so the query path never waits on the disk. The queue is bounded and blocks
producers when full (``put_timeout_s`` turns that into a counted, recorded drop). Everything
queued is written on ``close()``, on leaving a ``with`` block and at interpreter exit.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, MutableMapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from sqlfence.observe import lifecycle
from sqlfence.observe.events import (
    CONNECT,
    DETECTED,
    DISCONNECT,
    FETCH,
    OK,
    QUERY,
    SCHEMA_CHANGE,
    VERSION,
    encode_event,
    plain_event,
)
from sqlfence.observe.filesink import FileSink
from sqlfence.observe.integrity import GENESIS, Chain, Signer, resolve_key
from sqlfence.observe.settings import AuditSettings
from sqlfence.observe.sinks import Sink, build_sink, decode
from sqlfence.observe.worker import BatchWorker

if TYPE_CHECKING:
    from datetime import datetime

    from sqlfence.observe.events import AuditEvent
    from sqlfence.observe.verify import VerifyResult

logger = logging.getLogger("sqlfence.observe")
Processor = Callable[[Any, str, MutableMapping[str, Any]], MutableMapping[str, Any]]


class AuditRecord(Protocol):
    """What ``AuditLog.submit`` accepts besides a plain event dict."""

    def kind(self) -> tuple[str, str]:
        """``(event_type, status)``, to decide whether the settings want the event."""

    def json_body(
        self, seq: int, prev: str, settings: AuditSettings, kind: tuple[str, str]
    ) -> bytes:
        """The event's JSON with ``seq`` and ``prev`` inside, without its MAC; ``kind`` is
        what ``kind()`` returned."""


def wanted(event_type: str, status: str, settings: AuditSettings) -> bool:
    """Whether ``settings`` record an event. Denials, errors, detections and slow queries
    are always recorded; ``log_*`` switch off routine queries, connections and DDL."""
    if status not in (OK, DETECTED):
        return True
    if event_type in (QUERY, FETCH):
        return settings.log_queries or status == DETECTED
    if event_type == SCHEMA_CHANGE:
        return settings.log_schema_changes or status == DETECTED
    if event_type in (CONNECT, DISCONNECT):
        return settings.log_connections
    return True


def unwanted_kinds(settings: AuditSettings) -> frozenset[tuple[str, str]]:
    """The ``(event_type, status)`` pairs of sqlfence's own events that ``settings`` skip."""
    types = (QUERY, FETCH, SCHEMA_CHANGE, CONNECT, DISCONNECT)
    return frozenset(
        (event_type, status)
        for event_type in types
        for status in (OK, DETECTED)
        if not wanted(event_type, status, settings)
    )


class AuditLog:
    """Writes signed audit events. Use as a context manager or call ``close()``.

    ``processors`` are structlog-style callables ``(logger, method_name, event_dict)``
    applied to each event before it is signed (the fast path is kept when there are none).
    """

    def __init__(
        self, settings: AuditSettings | None = None, *, processors: tuple[Processor, ...] = ()
    ) -> None:
        self.settings = settings = settings if settings is not None else AuditSettings()
        key = resolve_key(settings, create=True)
        assert key is not None  # create=True always yields a key
        self._processors = processors
        self._unwanted = unwanted_kinds(settings)
        self._lock = threading.Lock()
        self._sinks: list[Sink] = [s for s in map(build_sink, settings.sinks) if s is not None]
        self._wants_events = any(sink.wants_events for sink in self._sinks)
        self._file: FileSink | None = None
        seq, prev, torn = 0, GENESIS, 0
        if "file" in settings.sinks:
            self._file = FileSink(
                settings.directory,
                settings.prefix,
                max_bytes=settings.max_file_bytes,
                rotate_daily=settings.rotate_daily,
                durable=settings.durable,
            )
            resumed = self._file.resume()
            if resumed is not None:
                torn = resumed.torn_bytes
                if resumed.seq:
                    seq, prev = resumed.seq, resumed.mac
        self._chain = Chain(Signer(key), seq, prev)
        self.sink_failures: dict[str, int] = {}
        self.lost = 0
        self._closed = False
        self._users = 0
        self._worker = BatchWorker(
            "sqlfence-audit",
            self._write_batch,
            capacity=settings.queue_size,
            batch_size=settings.batch_size,
            interval=settings.flush_interval_s,
            block=True,
            put_timeout=settings.put_timeout_s,
        )
        self._reported_drops = 0
        details: dict[str, Any] = {"pid": os.getpid(), "host": socket.gethostname()}
        details.update(version=VERSION, chain=self.chain, resumed_at_seq=seq)
        if torn:
            details["torn_bytes_cut"] = torn
        self._append_now([plain_event("audit.open", details=details)])
        if settings.retention_days is not None:
            self._purge()
        lifecycle.register(self, lifecycle.AUDIT)

    # -- writing --------------------------------------------------------------------------

    @property
    def chain(self) -> str:
        """The name of this log's chain (file prefix)."""
        return self._file.prefix if self._file is not None else self.settings.prefix

    @property
    def closed(self) -> bool:
        """True once ``close()`` was called (later events are written synchronously)."""
        return self._closed

    @property
    def directory(self) -> Path:
        """Where the files are."""
        return self.settings.directory

    def submit(self, record: AuditRecord | dict[str, Any]) -> None:
        """Queue a record or event dict for writing. Blocks while the queue is full."""
        if not self._worker.submit(record):
            self._note_drop()

    def emit(self, event_type: str, status: str = OK, **fields: Any) -> None:
        """Record an event that is not a statement (``sandbox.create``, ``policy.reload``...).

        ``fields`` may be ``agent_id``, ``tenant``, ``sandbox``, ``error`` and ``details``.
        """
        self.submit(plain_event(event_type, status, **fields))

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything submitted so far is written. False on timeout."""
        return self._worker.flush(timeout)

    def close(self) -> None:
        """Write everything queued, then a closing event, and release the files. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._worker.flush(30.0)
        stats = self.stats()
        self._worker.submit(plain_event("audit.close", details=stats))
        self._worker.close()
        with self._lock:
            if self._file is not None:
                self._file.close()
        lifecycle.unregister(self, lifecycle.AUDIT)

    def at_exit(self) -> None:
        """Interpreter exit: close."""
        self.close()

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def stats(self) -> dict[str, Any]:
        """Health of the log: events written, queued, dropped, sink failures, current seq."""
        return {
            "seq": self._chain.seq,
            "queued": self._worker.pending,
            "dropped": self._worker.dropped,
            "lost": self.lost,
            "batch_failures": self._worker.failures,
            "sink_failures": dict(self.sink_failures),
        }

    # -- sharing between connections ------------------------------------------------------

    def acquire(self) -> AuditLog:
        """Count one more user (an observer); ``release`` closes after the last one."""
        with self._lock:
            self._users += 1
        return self

    def release(self) -> None:
        """One user is done; the last one closes the log."""
        with self._lock:
            self._users -= 1
            last = self._users <= 0
        if last:
            _forget(self)
            self.close()

    @classmethod
    def shared(cls, settings: AuditSettings) -> AuditLog:
        """The open log of ``settings.directory`` in this process, or a new one.

        Connections given the same directory share one log (one chain). Raises ValueError
        when that directory is open with different settings.
        """
        return _shared(settings)

    # -- reading --------------------------------------------------------------------------

    @staticmethod
    def verify(path: str | Path, key: str | bytes | None = None) -> VerifyResult:
        """Check the chain of a log file or directory (see ``sqlfence.observe.verify``)."""
        from sqlfence.observe.verify import verify

        return verify(path, key=key)

    def query(
        self,
        *,
        agent_id: str | None = None,
        tenant: str | None = None,
        status: str | None = None,
        event_type: str | tuple[str, ...] | None = None,
        since: datetime | str | None = None,
        until: datetime | str | None = None,
        limit: int | None = None,
    ) -> list[AuditEvent]:
        """Events of this log matching every given filter, oldest first (flushes first)."""
        from sqlfence.observe.query import query_events

        self.flush()
        return query_events(
            self.directory,
            chain=self.chain,
            agent_id=agent_id,
            tenant=tenant,
            status=status,
            event_type=event_type,
            since=since,
            until=until,
            limit=limit,
        )

    def export(self, destination: str | Path, format: str | None = None, **filters: Any) -> int:
        """Write matching events to ``destination`` as ``json``, ``jsonl`` or ``csv``.

        The format defaults to ``settings.export_format``. Returns the number of events.
        """
        from sqlfence.observe.query import export_events

        self.flush()
        return export_events(
            self.directory,
            destination,
            format or self.settings.export_format,
            chain=self.chain,
            **filters,
        )

    # -- the writer thread ----------------------------------------------------------------

    def _write_batch(self, items: list[Any]) -> None:
        settings = self.settings
        unwanted = self._unwanted
        with self._lock:
            chain = self._chain
            lines = []
            for item in items:
                is_dict = type(item) is dict
                try:
                    if is_dict:
                        kind = item.get("event_type", ""), item.get("status", OK)
                    else:
                        kind = item.kind()
                    if kind in unwanted:
                        continue
                    seq, prev = chain.seq + 1, chain.prev
                    if is_dict:
                        body = encode_event(dict(item), seq, prev)
                    else:
                        body = item.json_body(seq, prev, settings, kind)
                    if self._processors:
                        body = self._process(body, seq, prev)
                except Exception as error:  # a record that cannot be written is itself recorded
                    logger.exception("audit: cannot encode %r", type(item).__name__)
                    failure = plain_event(
                        "audit.error",
                        "error",
                        error=repr(error),
                        details={"record": type(item).__name__},
                    )
                    body = encode_event(failure, chain.seq + 1, chain.prev)
                lines.append(chain.sign(body))
            if self._worker.dropped > self._reported_drops:
                lines.append(self._drop_line())
            self._deliver(lines)

    def _append_now(self, events: list[dict[str, Any]]) -> None:
        """Sign and write ``events`` at once, outside the queue (the log's own events)."""
        with self._lock:
            self._deliver([self._signed(event) for event in events])

    def _signed(self, event: dict[str, Any]) -> bytes:
        """``event`` as the next signed line of the chain (the caller holds the lock)."""
        chain = self._chain
        return chain.sign(encode_event(event, chain.seq + 1, chain.prev))

    def _process(self, body: bytes, seq: int, prev: str) -> bytes:
        event: MutableMapping[str, Any] = json.loads(body)
        for processor in self._processors:
            event = processor(None, "audit", event)
        return encode_event(dict(event), seq, prev)

    def _drop_line(self) -> bytes:
        dropped = self._worker.dropped
        count, self._reported_drops = dropped - self._reported_drops, dropped
        event = plain_event(
            "audit.dropped",
            "error",
            error=f"{count} events dropped: the queue was full",
            details={"dropped": count, "dropped_total": dropped},
        )
        return self._signed(event)

    def _note_drop(self) -> None:
        dropped = self._worker.dropped
        if dropped == 1 or dropped % 1000 == 0:
            logger.error(
                "audit queue full for %ss: %d events dropped so far (each drop is recorded)",
                self.settings.put_timeout_s,
                dropped,
            )

    def _deliver(self, lines: list[bytes]) -> None:
        if not lines:
            return
        if self._file is not None:
            self._write_file(lines)
        events = decode(lines) if self._wants_events else None
        for sink in self._sinks:
            try:
                sink.write(lines, events)
            except Exception:
                failures = self.sink_failures.get(sink.name, 0) + 1
                self.sink_failures[sink.name] = failures
                if failures == 1 or failures % 1000 == 0:
                    logger.exception("audit sink %s failed (%d times)", sink.name, failures)

    def _write_file(self, lines: list[bytes]) -> None:
        """Write to the files, retrying while the disk refuses (evidence is not dropped)."""
        assert self._file is not None
        delay = 0.05
        attempts = 0
        while True:
            try:
                rotated = self._file.write(lines)
                break
            except OSError:
                attempts += 1
                failures = self.sink_failures.get("file", 0) + 1
                self.sink_failures["file"] = failures
                if failures == 1 or failures % 100 == 0:
                    logger.exception("audit file write failed (%d times); retrying", failures)
                if self._closed and attempts >= 3:
                    self.lost += len(lines)
                    logger.error("audit: %d events lost at close", len(lines))
                    return
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
        if rotated and self.settings.retention_days is not None:
            self._purge_locked()

    def _purge(self) -> None:
        with self._lock:
            self._purge_locked()

    def _purge_locked(self) -> None:
        assert self._file is not None
        assert self.settings.retention_days is not None
        removed, first_seq = self._file.purge(self.settings.retention_days)
        if removed:
            event = plain_event(
                "audit.purge",
                details={
                    "files": removed,
                    "first_seq": first_seq,
                    "retention_days": self.settings.retention_days,
                },
            )
            self._file.write([self._signed(event)])


_registry: dict[tuple[str, str], AuditLog] = {}
_registry_lock = threading.Lock()


def _shared(settings: AuditSettings) -> AuditLog:
    key = (os.path.realpath(settings.directory), settings.prefix)
    with _registry_lock:
        log = _registry.get(key)
        if log is not None and not log.closed:
            if log.settings != settings:
                raise ValueError(
                    f"the audit log in {settings.directory} is already open with other settings"
                )
            return log.acquire()
        log = AuditLog(settings)
        _registry[key] = log
        return log.acquire()


def _forget(log: AuditLog) -> None:
    with _registry_lock:
        for key, known in list(_registry.items()):
            if known is log:
                del _registry[key]

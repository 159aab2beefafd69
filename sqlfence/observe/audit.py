"""``AuditLog``: the tamper-evident record of everything agents did through the fence.

Hooks hand *records* to ``submit`` when a statement runs; a background thread turns them
into JSON, numbers and chains them with HMAC-SHA256 and hands them to the outbox, which
writes them in batches to JSON Lines files (then a signed head) and the other sinks.

What survives a crash is the ``durability`` setting's contract: ``batched`` loses at most
what was not yet written (``queue_size + batch_size`` events, about ``flush_interval_s`` of
them while the writer keeps up); ``sync`` makes ``submit`` return only once its event is
written and fsynced, many producers' events sharing one fsync. When the disk refuses
writes, ``on_audit_failure`` decides: ``fail_closed`` raises ``AuditError`` from statements
(and refuses new ones) until it takes writes again; ``continue`` counts and warns. No call
waits longer than ``wait_timeout_s``. Everything queued is written on ``close()``, on
leaving a ``with`` block and at interpreter exit, or the number lost is said on stderr.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
import threading
import time
import warnings
from collections.abc import Callable, MutableMapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlfence.errors import AuditError, AuditWarning
from sqlfence.observe import lifecycle
from sqlfence.observe.events import OK, VERSION, encode_event, plain_event, unwanted_kinds
from sqlfence.observe.filesink import FileSink
from sqlfence.observe.head import head_path
from sqlfence.observe.integrity import GENESIS, Chain, Signer, resolve_key
from sqlfence.observe.lines import AuditRecord, LineWriter
from sqlfence.observe.opening import open_chain
from sqlfence.observe.outbox import Failure, Outbox
from sqlfence.observe.records import StatementRecord
from sqlfence.observe.roster import RosterWatch
from sqlfence.observe.settings import AuditSettings
from sqlfence.observe.sinks import Sink, build_sink
from sqlfence.observe.worker import BatchWorker

if TYPE_CHECKING:
    from datetime import datetime

    from sqlfence.observe.events import AuditEvent
    from sqlfence.observe.verify import VerifyResult

logger = logging.getLogger("sqlfence.observe")
_QUEUE_FULL = object()  # the cause of a drop when the files did not fail
_CLOSE_TIMEOUT_S = 30.0  # close() waits this long at least for the writer to finish
Processor = Callable[[Any, str, MutableMapping[str, Any]], MutableMapping[str, Any]]


class AuditLog:
    """Writes signed audit events. Use as a context manager or call ``close()``.

    ``processors`` are structlog-style callables ``(logger, method_name, event_dict)``
    applied to each event before it is signed (the fast path is kept when there are none).
    Raises AuditError when the log cannot be opened (in ``fail_closed``) and
    ConfigurationError for a key that is too short.
    """

    def __init__(
        self, settings: AuditSettings | None = None, *, processors: tuple[Processor, ...] = ()
    ) -> None:
        self.settings = settings = settings if settings is not None else AuditSettings()
        key = resolve_key(settings, create=True)
        assert key is not None  # create=True always yields a key
        signer = Signer(key)
        self._processors = processors
        self._unwanted = unwanted_kinds(settings)
        self._lines = LineWriter(settings)
        self._lock = threading.Lock()  # the writer's: the chain, the outbox and the files
        self._users_lock = threading.Lock()
        self._sync = settings.durability == "sync"
        sinks: list[Sink] = [s for s in map(build_sink, settings.sinks) if s is not None]
        self._file: FileSink | None = None
        seq, prev = 0, GENESIS
        details: dict[str, Any] = {"pid": os.getpid(), "host": socket.gethostname()}
        head = None
        self._roster: RosterWatch | None = None
        if "file" in settings.sinks:
            self._file, seq, prev, head = open_chain(settings, signer, self._sync, details)
            listed = list(details.get("roster_chains") or ())
            self._roster = RosterWatch(settings.directory, self.chain, signer, listed)
        self._chain = Chain(signer, seq, prev)
        self.sink_failures: dict[str, int] = {}
        self._outbox = Outbox(
            self._file,
            sinks,
            signer=signer,
            head=head,
            capacity=settings.queue_size,
            sync=self._sync,
            # After every write: an event (in sync durability, acknowledged) is covered by
            # the head before anyone is told it was written, so none is cut off unseen.
            head_interval=0.0,
            sink_failures=self.sink_failures,
        )
        self.failure: Failure | None = None  # the outbox's, copied for the producers to read
        self.lost = 0
        self.unaudited = 0
        self.refused = 0
        self._warned: object = None
        self._closed = False
        self._finished = False  # close() made its last tries: later failures are losses
        self._users = 0
        self._consumed = 0  # items handed to the writer so far (the producers' numbers)
        self._worker = BatchWorker(
            "sqlfence-audit",
            self._write_batch,
            capacity=settings.queue_size,
            batch_size=settings.batch_size,
            interval=settings.flush_interval_s,
            block=True,
            put_timeout=settings.wait_timeout_s,
            wake_at=1 if self._sync else None,
            idle=self._retry,
        )
        self._reported_drops = 0
        details.update(version=VERSION, chain=self.chain, resumed_at_seq=seq)
        details["durability"] = settings.durability
        self._append_now([plain_event("audit.open", details=details)])
        if self.failure is not None and settings.fail_closed:
            cause = self.failure.describe()
            self._release_files()
            raise AuditError(
                f"cannot open the audit log in {settings.directory}: {cause}", cause=cause
            )
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

    def submit(self, record: AuditRecord | dict[str, Any], *, acknowledge: bool = True) -> None:
        """Queue a record or event dict; in ``sync`` durability, return once it is on disk.

        Raises AuditError (``fail_closed``) when the event cannot be queued or written: the
        queue stayed full for ``wait_timeout_s``, or the files refuse writes (the event is
        then kept and written when they take writes again). With ``continue`` that is
        counted and logged instead. ``acknowledge=False`` (a follow-up such as a ``fetch``
        event) neither waits nor raises.
        """
        if self._sync or not acknowledge:
            self._submit_waiting(record, acknowledge)
        elif not self._worker.submit(record):
            if type(record) is StatementRecord:
                record.forget_rows()  # never queued: nothing will take it
            self._not_recorded("it could not be queued", dropped=True)
        elif self.failure is not None:
            self._not_recorded(self.failure.describe(), dropped=False)

    def _submit_waiting(self, record: AuditRecord | dict[str, Any], acknowledge: bool) -> None:
        """``submit`` in sync durability, and of follow-ups that nobody waits for."""
        if not acknowledge:
            self._queue(record)
            return
        number = self._worker.submit_numbered(record)
        if not number:
            self._not_recorded("it could not be queued", dropped=True)
            return
        reason = self._outbox.wait(number, self.settings.wait_timeout_s)
        if reason is not None:
            self._not_recorded(reason, dropped=False)

    def _queue(self, record: AuditRecord | dict[str, Any]) -> None:
        """Queue without waiting or raising (a drop is counted and recorded later)."""
        if self._sync:
            self._worker.submit_numbered(record)
        else:
            self._worker.submit(record)

    def refuse(self) -> None:
        """Called before a statement runs (or a connection is recorded) while the files
        refuse writes: raises AuditError in ``fail_closed``, so nothing unrecorded reaches
        the database; does nothing in ``continue``."""
        failure = self.failure
        if failure is None or not self.settings.fail_closed:
            return
        self.refused += 1
        cause = failure.describe()
        raise AuditError(
            f"refused: the audit log in {self.directory} cannot record events ({cause}); "
            "nothing was sent to the database",
            cause=cause,
        )

    def _not_recorded(self, reason: str, *, dropped: bool) -> None:
        failure = self.failure
        cause = failure.describe() if failure is not None else reason
        if dropped:
            why = "the queue stayed full" if failure is None else cause
            reason = f"its event was dropped ({why}; recorded as audit.dropped)"
        else:
            reason = f"its event is not on disk yet ({reason}; it is kept and written later)"
        if self.settings.fail_closed:
            raise AuditError(
                f"not audited: {reason} (audit log in {self.directory})", cause=cause, ran=True
            )
        self.unaudited += 1
        if self.unaudited == 1 or self.unaudited % 1000 == 0:
            logger.warning(
                "audit log in %s: %d events not recorded in time so far (on_audit_failure="
                "continue): %s",
                self.directory,
                self.unaudited,
                reason,
            )
        stretch = failure if failure is not None else _QUEUE_FULL
        if stretch is not self._warned:
            self._warned = stretch  # once per stretch of failure (logging may be off)
            warnings.warn(
                f"the audit log in {self.directory} is not recording events in time ({cause}); "
                "on_audit_failure='continue' lets statements run; see AuditLog.stats()",
                AuditWarning,
                stacklevel=3,
            )

    def emit(self, event_type: str, status: str = OK, **fields: Any) -> None:
        """Record an event that is not a statement (``sandbox.create``, ``policy.reload``...).

        ``fields`` may be ``agent_id``, ``tenant``, ``sandbox``, ``error`` and ``details``.
        Raises as ``submit`` does.
        """
        self.submit(plain_event(event_type, status, **fields))

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything submitted so far is written. False on timeout, and while the
        files refuse writes."""
        return self._worker.flush(timeout) and self.failure is None

    def close(self) -> None:
        """Write everything queued, then a closing event, and release the files. Idempotent.

        Waits at most ``wait_timeout_s`` (30 s at least) for a writer stuck inside a write;
        what cannot be written by then is counted in ``lost`` and said on stderr.
        """
        if self._closed:
            return
        self._closed = True
        timeout = max(self.settings.wait_timeout_s, _CLOSE_TIMEOUT_S)
        self._worker.flush(timeout)
        if self._roster is not None and self._lock.acquire(timeout=timeout):
            try:  # vouch for every chain listed by now, whatever the last look was
                self._watch_roster(now=True)
            finally:
                self._lock.release()
        self._queue(plain_event("audit.close", details=self.stats()))
        self._worker.close(timeout)
        self._finish_writes(timeout)
        lifecycle.unregister(self, lifecycle.AUDIT)

    def _finish_writes(self, timeout: float) -> None:
        """The last tries for lines a failing disk refused, then count what is lost."""
        for delay in (0.05, 0.2, 0.5):
            if not self._outbox.pending:
                break
            time.sleep(delay)
            if self._lock.acquire(timeout=timeout):
                try:
                    self._after_put(self._outbox.retry())
                finally:
                    self._lock.release()
        if not self._lock.acquire(timeout=timeout):  # the writer is stuck inside a write
            self._report_lost(self._worker.pending + self._outbox.pending)
            return
        try:
            self._finished = True
            self._report_lost(self._outbox.give_up() + self._worker.pending)
            self._outbox.write_head()
            if self._file is not None:
                self._file.close()
            self._outbox.close_head()
        finally:
            self._lock.release()

    def _report_lost(self, count: int) -> None:
        if not count:
            return
        self.lost += count
        failure = self.failure
        cause = failure.describe() if failure is not None else "the writer did not finish"
        message = (
            f"sqlfence: audit log in {self.directory}: {count} events could not be written "
            f"({cause}) and are lost"
        )
        logger.error("%s", message)
        try:
            sys.stderr.write(message + "\n")
            sys.stderr.flush()
        except (OSError, ValueError):  # stderr closed at exit: the log line above is all
            pass

    def _release_files(self) -> None:
        self._closed = True
        self._worker.close(0.1)
        with self._lock:
            self._outbox.give_up()
            if self._file is not None:
                self._file.close()
            self._outbox.close_head()

    def at_exit(self) -> None:
        """Interpreter exit: close."""
        self.close()

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def stats(self) -> dict[str, Any]:
        """Health of the log: events written, queued, dropped, lost, why writes fail."""
        failure = self.failure
        return {
            "seq": self._chain.seq,
            "durability": self.settings.durability,
            "queued": self._worker.pending,
            "unwritten": self._outbox.pending,
            "dropped": self._worker.dropped,
            "lost": self.lost,
            "unaudited": self.unaudited,
            "refused": self.refused,
            "failing": None if failure is None else failure.details(),
            "batch_failures": self._worker.failures,
            "sink_failures": dict(self.sink_failures),
        }

    # -- sharing between connections ------------------------------------------------------

    def acquire(self) -> AuditLog:
        """Count one more user (an observer); ``release`` closes after the last one."""
        with self._users_lock:
            self._users += 1
        return self

    def release(self) -> None:
        """One user is done; the last one closes the log."""
        with self._users_lock:
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
        unwanted = self._unwanted
        with self._lock:
            upto = self._consumed = self._consumed + len(items)
            chain = self._chain
            outbox = self._outbox
            if outbox.full:  # the disk refuses writes and enough is kept: drop, unsigned
                self._worker.dropped += len(items)
                outbox.dropped(upto - len(items) + 1, upto)
                self._after_put(outbox.put([], chain.seq, chain.prev, upto))
                return
            lines = []
            for item in items:
                try:
                    kind = self._lines.kind(item)
                    if kind in unwanted:
                        continue
                    seq, prev = chain.seq + 1, chain.prev
                    body = self._lines.line(item, seq, prev, kind)
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
            self._after_put(outbox.put(lines, chain.seq, chain.prev, upto))

    def _retry(self) -> None:
        """The writer woke with nothing queued: try the kept lines again when it is time,
        and bring the head up to date."""
        outbox = self._outbox
        if outbox.retry_due():
            with self._lock:
                self._after_put(outbox.retry())
        if outbox.head_stale:
            with self._lock:
                outbox.write_head()

    def _after_put(self, rotated: bool) -> None:
        """After a write (the caller holds the lock): purge, record a recovery, publish the
        failure state to producers."""
        outbox = self._outbox
        if rotated and self.settings.retention_days is not None:
            self._purge_locked()
        recovered, outbox.recovered = outbox.recovered, None
        if recovered is not None:
            details = recovered.details()
            details.update(dropped_total=self._worker.dropped, refused_total=self.refused)
            event = plain_event("audit.recovered", "error", error=recovered.describe())
            event["details"] = details
            self._put_now(event)
        self.failure = failure = outbox.failure
        self._worker.stalled = failure is not None
        if failure is None:
            self._watch_roster()
        if self._finished and outbox.pending:
            self._report_lost(outbox.give_up())  # written after close: no one retries

    def _watch_roster(self, *, now: bool = False) -> None:
        """List the chain once it has written; vouch for chains listed since it opened
        (the caller holds the lock)."""
        if self._roster is not None:
            new = self._roster.after_write(self._outbox.written_seq, now=now)
            if new:
                self._put_now(plain_event("audit.chains", details={"chains": new}))

    def _append_now(self, events: list[dict[str, Any]]) -> None:
        """Sign and write ``events`` at once, outside the queue (the log's own events)."""
        with self._lock:
            for event in events:
                self._put_now(event)
            self.failure = self._outbox.failure
            self._worker.stalled = self.failure is not None
            if self.failure is None:
                self._watch_roster()

    def _put_now(self, event: dict[str, Any]) -> None:
        """Sign ``event`` and hand it to the outbox (the caller holds the lock)."""
        line = self._signed(event)
        chain = self._chain
        rotated = self._outbox.put([line], chain.seq, chain.prev, self._consumed)
        if rotated and self.settings.retention_days is not None:
            self._purge_locked()

    def _signed(self, event: dict[str, Any]) -> bytes:
        """``event`` as the next signed line of the chain (the caller holds the lock)."""
        chain = self._chain
        return chain.sign(encode_event(event, chain.seq + 1, chain.prev))

    def _process(self, body: bytes, seq: int, prev: str) -> bytes:
        event: MutableMapping[str, Any] = json.loads(body)
        for processor in self._processors:
            event = processor(None, "audit", event)
        return encode_event(event, seq, prev)

    def _drop_line(self) -> bytes:
        dropped = self._worker.dropped
        count, self._reported_drops = dropped - self._reported_drops, dropped
        event = plain_event(
            "audit.dropped",
            "error",
            error=f"{count} events dropped: the queue was full or the log refused writes",
            details={"dropped": count, "dropped_total": dropped},
        )
        return self._signed(event)

    def _purge(self) -> None:
        with self._lock:
            self._purge_locked()

    def _vouched(self) -> list[str]:
        return self._roster.vouched if self._roster is not None else []

    def _purge_locked(self) -> None:
        assert self._file is not None
        assert self.settings.retention_days is not None
        purged = self._file.purge(self.settings.retention_days, self._chain.signer)
        if purged.files:
            event = plain_event(
                "audit.purge",
                details={
                    "files": purged.files,
                    "first_seq": purged.first_seq,
                    "first_prev": purged.first_prev,
                    # the chains the purged events vouched for, so a vouch outlives its file
                    "chains": sorted({*purged.chains, *self._vouched()}),
                    "retention_days": self.settings.retention_days,
                    "head": head_path(self.directory, self.chain).name,
                },
            )
            self._put_now(event)


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

"""The audit log (sqlfence/observe/audit.py, filesink.py, sinks.py): writing, chaining across
files and restarts, rotation, retention, sinks, backpressure and exit."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import structlog

import sqlfence
from sqlfence.errors import AuditError
from sqlfence.observe import filesink
from sqlfence.observe.audit import AuditLog
from sqlfence.observe.filesink import chain_files
from sqlfence.observe.records import DenialRecord, StatementRecord
from sqlfence.observe.settings import AuditSettings
from sqlfence.observe.verify import verify
from tests.observe.conftest import DENIED, INSERT, SELECT, audit_events, make_session


def _statement(sql: str = SELECT.sql, decision: Any = SELECT, rows: int | None = 3) -> Any:
    record = StatementRecord(make_session(), sql, decision, 0.0, time.time_ns(), 1)
    record.duration = 0.0012
    if rows is not None:
        record.await_rows()
        record.add_rows(rows, False)
    return record


def test_events_are_written_signed_and_verifiable(audit_dir: Path) -> None:
    """Submitted records reach the file in order, numbered from 1, and the chain verifies."""
    with AuditLog(AuditSettings(directory=audit_dir)) as log:
        log.submit(_statement())
        log.submit(DenialRecord(make_session(), DENIED.sql, DENIED, None))
        log.emit("sandbox.create", agent_id="agent-1", sandbox="sb1", details={"ttl": 60})
    events = audit_events(audit_dir)
    assert [e["event_type"] for e in events] == [
        "audit.open",
        "query",
        "denial",
        "sandbox.create",
        "audit.close",
    ]
    assert [e["seq"] for e in events] == [1, 2, 3, 4, 5]
    assert events[1]["rows_returned"] == 3
    assert events[1]["duration_ms"] == 1.2
    assert events[2]["rule"] == "deny_tables"
    assert events[2]["status"] == "denied"
    assert events[3]["details"] == {"ttl": 60}
    assert events[3]["sandbox"] == "sb1"
    result = verify(audit_dir)
    assert result.ok, result
    assert result.events_checked == 5


def test_the_chain_continues_after_a_restart(audit_dir: Path) -> None:
    """A log reopened on the same directory continues seq and the MAC chain."""
    for _ in range(3):
        with AuditLog(AuditSettings(directory=audit_dir)) as log:
            log.submit(_statement())
    seqs = [e["seq"] for e in audit_events(audit_dir)]
    assert seqs == list(range(1, 10))
    assert verify(audit_dir).ok


def test_a_torn_last_line_is_cut_and_recorded(audit_dir: Path) -> None:
    """A crash mid-write leaves a partial line; reopening cuts it and says so in the log."""
    with AuditLog(AuditSettings(directory=audit_dir)) as log:
        log.submit(_statement())
    path = chain_files(audit_dir, "audit")[-1]
    with path.open("ab") as handle:
        handle.write(b'{"seq":4,"timestamp":"2025-')
    with AuditLog(AuditSettings(directory=audit_dir)):
        pass
    opened = [e for e in audit_events(audit_dir) if e["event_type"] == "audit.open"]
    assert opened[-1]["details"]["torn_bytes_cut"] == len(b'{"seq":4,"timestamp":"2025-')
    assert verify(audit_dir).ok


def test_size_rotation_keeps_one_verifiable_chain(audit_dir: Path) -> None:
    """Files rotate at max_file_bytes; seq and MACs run on across them."""
    settings = AuditSettings(directory=audit_dir, max_file_bytes=2000, batch_size=3)
    with AuditLog(settings) as log:
        for i in range(60):
            log.submit(_statement(sql=f"SELECT * FROM orders WHERE id = {i}"))
    files = chain_files(audit_dir, "audit")
    assert len(files) > 5
    assert [e["seq"] for e in audit_events(audit_dir)] == list(range(1, 63))
    result = verify(audit_dir)
    assert result.ok, result
    assert result.files_checked == len(files)


def test_daily_rotation_starts_a_file_per_day(
    audit_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new UTC day starts a new file; the chain spans the days."""
    days = iter(["20250101", "20250101", "20250102", "20250103"])
    day = {"now": "20250101"}
    monkeypatch.setattr(filesink, "_today", lambda: day["now"])
    with AuditLog(AuditSettings(directory=audit_dir)) as log:
        for now in days:
            day["now"] = now
            log.submit(_statement())
            log.flush()
    names = [p.name for p in chain_files(audit_dir, "audit")]
    assert names == [
        "audit-20250101-000001.jsonl",
        "audit-20250102-000001.jsonl",
        "audit-20250103-000001.jsonl",
    ]
    assert verify(audit_dir).ok


class _Clock:
    """``time`` for the event modules, set back ``days``: events written "then"."""

    def __init__(self, days: float) -> None:
        self._offset_ns = int(days * 86400 * 1e9)

    def time_ns(self) -> int:
        return time.time_ns() - self._offset_ns

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


def _written_days_ago(
    monkeypatch: pytest.MonkeyPatch, settings: AuditSettings, days: float, statements: int
) -> list[Path]:
    """A log written ``days`` ago: its events' signed times, its file names and times."""
    from sqlfence.observe import events as events_module

    then = time.time() - days * 86400
    with monkeypatch.context() as patch:
        patch.setattr(events_module, "time", _Clock(days))
        patch.setattr(filesink, "_today", lambda: time.strftime("%Y%m%d", time.gmtime(then)))
        before = set(chain_files(settings.directory, "audit"))
        with AuditLog(settings) as log:
            for _ in range(statements):
                record = StatementRecord(
                    make_session(), SELECT.sql, SELECT, 0.0, int(then * 1e9), 1
                )
                log.submit(record)
    written = [path for path in chain_files(settings.directory, "audit") if path not in before]
    for path in written:
        os.utime(path, (then, then))
    return written


def test_retention_purges_old_files_and_records_it(
    audit_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Files whose signed events are older than retention_days are purged and the purge
    recorded; recent events in files renamed and touched to look old are kept; an
    unrecorded removal fails verify."""
    settings = AuditSettings(directory=audit_dir, max_file_bytes=1500, batch_size=2)
    files = _written_days_ago(monkeypatch, settings, 10, 30)
    assert len(files) > 3
    recent = _written_days_ago(monkeypatch, settings, 0, 30)
    disguised = []
    old_day = files[0].name.split("-")[1]
    for path in recent[:-1]:  # the attack: recent files renamed to an old day, times set back
        name = path.name.replace(path.name.split("-")[1], old_day)
        number = int(name.rsplit("-", 1)[1][:6]) + 500
        target = path.with_name(f"{name.rsplit('-', 1)[0]}-{number:06d}.jsonl")
        path.rename(target)
        os.utime(target, (time.time() - 30 * 86400,) * 2)
        disguised.append(target)
    with AuditLog(settings.model_copy(update={"retention_days": 7})):
        pass
    remaining = chain_files(audit_dir, "audit")
    assert not any(path.exists() for path in files)
    assert all(path.exists() for path in disguised)
    purges = [e for e in audit_events(audit_dir) if e["event_type"] == "audit.purge"]
    assert purges[0]["details"]["files"] == [p.name for p in files]
    assert verify(audit_dir).ok
    remaining[0].unlink()
    result = verify(audit_dir)
    assert not result.ok
    assert result.first_error is not None
    assert result.first_error.kind == "missing"


@pytest.mark.parametrize("spelling", [{"durability": "sync"}, {"durable": True}])
def test_sync_durability_syncs_before_submit_returns(
    spelling: dict[str, Any], audit_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In sync durability (durable=True is its older name) submit returns only after the
    batch holding its event was written and synced to stable storage."""
    synced: list[int] = []
    real = filesink._sync_data

    def counting_sync(fd: int) -> None:
        real(fd)
        synced.append(fd)

    monkeypatch.setattr(filesink, "_sync_data", counting_sync)
    with AuditLog(AuditSettings(directory=audit_dir, **spelling)) as log:
        assert log.settings.durability == "sync"
        before = len(synced)
        log.submit(_statement())
        assert len(synced) > before
        assert [e["event_type"] for e in audit_events(audit_dir)] == ["audit.open", "query"]


def test_stdout_callable_logging_and_structlog_sinks(
    audit_dir: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """Every sink gets every signed event: stdout lines, dicts, log records, structlog."""
    received: list[dict[str, Any]] = []
    settings = AuditSettings(
        directory=audit_dir, sinks=("file", "stdout", received.append, "logging", "structlog")
    )
    with (
        caplog.at_level(logging.INFO, logger="sqlfence.audit"),
        structlog.testing.capture_logs() as captured,
        AuditLog(settings) as log,
    ):
        log.submit(_statement())
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [e["event_type"] for e in printed] == ["audit.open", "query", "audit.close"]
    assert received == printed
    assert all("mac" in e for e in received)
    assert [r.audit_event["seq"] for r in caplog.records] == [1, 2, 3]  # type: ignore[attr-defined]
    assert [c["event"] for c in captured] == ["audit.open", "query", "audit.close"]


def test_a_failing_sink_is_counted_and_the_file_still_written(audit_dir: Path) -> None:
    """A sink that raises does not stop the others; its failures are counted."""

    def broken(event: dict[str, Any]) -> None:
        raise RuntimeError("sink down")

    with AuditLog(AuditSettings(directory=audit_dir, sinks=("file", broken))) as log:
        log.submit(_statement())
        log.flush()
        assert sum(log.stats()["sink_failures"].values()) >= 2
    assert [e["event_type"] for e in audit_events(audit_dir)][1] == "query"


def test_a_full_queue_blocks_producers_instead_of_dropping(audit_dir: Path) -> None:
    """With a tiny queue and a slow sink, producers wait; every event is written."""

    def slow(event: dict[str, Any]) -> None:
        time.sleep(0.0005)

    settings = AuditSettings(directory=audit_dir, sinks=("file", slow), queue_size=5, batch_size=2)
    with AuditLog(settings) as log:

        def produce() -> None:
            for _ in range(50):
                log.submit(_statement())

        threads = [threading.Thread(target=produce) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert log.stats()["dropped"] == 0
    assert sum(e["event_type"] == "query" for e in audit_events(audit_dir)) == 200
    assert verify(audit_dir).ok


@pytest.mark.filterwarnings("ignore::sqlfence.errors.AuditWarning")  # continue warns
def test_a_put_timeout_drops_are_counted_and_recorded(audit_dir: Path) -> None:
    """With put_timeout_s and on_audit_failure=continue, a stuck writer makes producers drop;
    the drop is itself logged."""
    gate = threading.Event()

    def stuck(event: dict[str, Any]) -> None:
        gate.wait(5)

    settings = AuditSettings(  # type: ignore[call-arg]  # put_timeout_s: see below
        directory=audit_dir,
        sinks=("file", stuck),
        queue_size=2,
        batch_size=1,
        put_timeout_s=0.01,  # the older name of wait_timeout_s, still accepted
        on_audit_failure="continue",
    )
    log = AuditLog(settings)
    for _ in range(20):
        log.submit(_statement())
    dropped = log.stats()["dropped"]
    gate.set()
    log.submit(_statement())
    log.close()
    assert dropped > 0
    drops = [e for e in audit_events(audit_dir) if e["event_type"] == "audit.dropped"]
    assert sum(e["details"]["dropped"] for e in drops) == dropped
    assert verify(audit_dir).ok


def _flaky_write(monkeypatch: pytest.MonkeyPatch, failures: int) -> None:
    """FileSink.write refuses the first ``failures`` writes with ENOSPC."""
    real = filesink.FileSink.write
    left = iter(range(failures))

    def flaky(self: filesink.FileSink, lines: list[bytes]) -> bool:
        if next(left, None) is not None:
            raise OSError(28, "No space left on device")
        return real(self, lines)

    monkeypatch.setattr(filesink.FileSink, "write", flaky)


def _until(condition: Any, what: str) -> None:
    """Wait for ``condition()`` (a hang detector, not a timing assertion)."""
    deadline = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < deadline, f"still waiting for {what}"
        time.sleep(0.01)


@pytest.mark.filterwarnings("ignore::sqlfence.errors.AuditWarning")  # continue warns
def test_a_failing_disk_is_retried_not_dropped(
    audit_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With on_audit_failure=continue, refused writes are kept and retried; once the disk
    takes writes again the events arrive once each, in one chain, and the recovery is recorded."""
    _flaky_write(monkeypatch, 2)
    settings = AuditSettings(directory=audit_dir, on_audit_failure="continue")
    with AuditLog(settings) as log:
        assert log.stats()["failing"]["errno"] == 28
        log.submit(_statement())
        _until(lambda: log.stats()["failing"] is None, "the retried write")
        assert log.stats()["sink_failures"]["file"] == 2
    events = audit_events(audit_dir)
    assert [e["event_type"] for e in events] == [
        "audit.open",
        "query",
        "audit.recovered",
        "audit.close",
    ]
    assert [e["seq"] for e in events] == [1, 2, 3, 4]
    assert events[2]["details"]["attempts"] == 2
    assert verify(audit_dir).ok


def test_a_log_that_cannot_be_opened_fails_closed(
    audit_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """By default a disk refusing the opening event makes AuditLog raise AuditError (an
    OperationalError naming the cause) at once, and leaves the chain free for the next try."""
    _flaky_write(monkeypatch, 1)
    with pytest.raises(sqlfence.OperationalError, match="No space left on device") as raised:
        AuditLog(AuditSettings(directory=audit_dir))
    assert isinstance(raised.value, AuditError)
    assert not raised.value.ran
    with AuditLog(AuditSettings(directory=audit_dir)) as log:
        assert log.chain == "audit"
    assert verify(audit_dir).ok


def test_settings_choose_what_is_recorded(audit_dir: Path) -> None:
    """log_queries=False keeps denials and errors, seq stays gap-free; masking and params apply."""
    settings = AuditSettings(
        directory=audit_dir,
        log_queries=False,
        mask_literals=True,
        log_params=True,
        max_query_chars=30,
    )
    with AuditLog(settings) as log:
        log.submit(_statement(sql="SELECT * FROM orders WHERE name = 'secret'"))
        failing = _statement(sql="SELECT * FROM orders WHERE name = 'secret'", rows=None)
        failing.error = ValueError("no such column")
        failing.params = ("p1", b"\x00\x01")
        log.submit(failing)
        insert = _statement(INSERT.sql, INSERT, rows=None)
        insert.rowcount = 1
        log.submit(insert)
    events = audit_events(audit_dir)
    assert [e["event_type"] for e in events] == ["audit.open", "error", "audit.close"]
    error = events[1]
    assert "secret" not in json.dumps(error)
    assert error["query"].startswith("SELECT * FROM orders WHERE nam")
    assert error["params"] == ["p1", "0x0001"]
    assert error["error_type"] == "ValueError"
    assert [e["seq"] for e in events] == [1, 2, 3]


def test_processors_shape_events_before_signing(audit_dir: Path) -> None:
    """structlog-style processors run on each event; the result is what gets signed."""

    def add_host(logger: Any, method: str, event: Any) -> Any:
        event["deployment"] = "eu-1"
        return event

    with AuditLog(AuditSettings(directory=audit_dir), processors=(add_host,)) as log:
        log.submit(_statement())
    assert audit_events(audit_dir)[1]["deployment"] == "eu-1"
    assert verify(audit_dir).ok


def test_connections_share_one_log_per_directory(audit_dir: Path) -> None:
    """shared() gives one log per directory, refuses other settings, closes at the last release."""
    settings = AuditSettings(directory=audit_dir)
    first = AuditLog.shared(settings)
    second = AuditLog.shared(AuditSettings(directory=audit_dir))
    assert first is second
    with pytest.raises(ValueError, match="other settings"):
        AuditLog.shared(AuditSettings(directory=audit_dir, durability="sync"))
    first.release()
    assert not first.closed
    second.release()
    assert first.closed
    assert AuditLog.shared(settings) is not first
    AuditLog.shared(settings).release()


def test_a_second_writer_gets_its_own_chain(audit_dir: Path) -> None:
    """Two logs on one directory never interleave a chain: the second gets audit.p<pid>."""
    with (
        AuditLog(AuditSettings(directory=audit_dir)) as first,
        AuditLog(AuditSettings(directory=audit_dir)) as second,
    ):
        assert first.chain == "audit"
        assert second.chain == f"audit.p{os.getpid()}"
        first.submit(_statement())
        second.submit(_statement())
    result = verify(audit_dir)
    assert result.ok, result
    assert set(result.chains) == {"audit", f"audit.p{os.getpid()}"}


def test_everything_queued_is_written_at_interpreter_exit(tmp_path: Path) -> None:
    """A program that never closes its log still leaves every event on disk at exit."""
    script = f"""
import time
from sqlfence.observe.fanout import build_observer
from tests.observe.conftest import SELECT, make_session, execute
observer = build_observer(audit={str(tmp_path / "audit")!r})
session = make_session()
observer.connected(session)
for i in range(500):
    execute(observer, session, SELECT, rows=None)   # results never fetched: still pending
"""
    env = {**os.environ, "SQLFENCE_AUDIT_KEY": "exit-key-of-the-audit-chain"}
    subprocess.run(
        [sys.executable, "-c", script], check=True, env=env, cwd=Path(__file__).parents[2]
    )
    events = audit_events(tmp_path / "audit")
    assert sum(e["event_type"] == "query" for e in events) == 500
    assert events[-1]["event_type"] == "audit.close"
    assert verify(tmp_path / "audit", key="exit-key-of-the-audit-chain").ok


@pytest.mark.parametrize(
    ("event_type", "status", "off", "recorded"),
    [
        ("query", "ok", "log_queries", False),
        ("query", "detected", "log_queries", True),
        ("fetch", "detected", "log_queries", True),
        ("schema_change", "ok", "log_schema_changes", False),
        ("schema_change", "detected", "log_schema_changes", True),
        ("connect", "ok", "log_connections", False),
        ("query", "denied", "log_queries", True),
        ("query", "error", "log_queries", True),
    ],
)
def test_log_switches_never_drop_what_must_be_recorded(
    event_type: str, status: str, off: str, recorded: bool
) -> None:
    """``log_*`` switch off routine events only: denials, errors and detections stay."""
    from sqlfence.observe.events import wanted

    assert wanted(event_type, status, AuditSettings(**{off: False})) is recorded


@pytest.mark.parametrize("block", [7, 64, 65536])
def test_lines_are_read_back_newest_first_across_blocks(tmp_path: Path, block: int) -> None:
    """However the file falls into blocks, every complete line comes back, newest first."""
    path = tmp_path / "lines.jsonl"
    lines = [f'{{"n": {i}, "pad": "{"x" * (i % 13)}"}}'.encode() for i in range(40)]
    path.write_bytes(b"\n".join(lines) + b"\n")
    assert list(filesink._lines_backwards(path, block)) == lines[::-1]


def test_the_chain_end_is_found_behind_unsigned_lines(audit_dir: Path) -> None:
    """Lines without a MAC after the last signed one do not hide it from a restart."""
    with AuditLog(AuditSettings(directory=audit_dir)) as log:
        log.submit(_statement())
    path = chain_files(audit_dir, "audit")[-1]
    last_seq = audit_events(audit_dir)[-1]["seq"]
    with path.open("ab") as handle:
        handle.write(b'{"note": "appended by hand"}\n' * 3)
    sink = filesink.FileSink(audit_dir, "audit", max_bytes=1 << 20, rotate_daily=False, sync=False)
    try:
        resumed = sink.resume()
    finally:
        sink.close()
    assert resumed is not None
    assert resumed.seq == last_seq


def test_old_signed_lines_appended_to_recent_files_do_not_get_them_purged(
    audit_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The attack: a saved old signed line (or two) appended to recent files, their times
    set back. The last line of a purged file must be the one the next file follows."""
    settings = AuditSettings(directory=audit_dir, max_file_bytes=1500, batch_size=2)
    old = _written_days_ago(monkeypatch, settings, 10, 20)
    recent = _written_days_ago(monkeypatch, settings, 1, 20)
    saved = old[0].read_bytes().splitlines(keepends=True)[-2:]
    for path in old[1:] + recent[:-1]:
        with path.open("ab") as handle:
            handle.writelines(saved)
    back = time.time() - 30 * 86400
    for path in old + recent:
        os.utime(path, (back, back))
    with AuditLog(settings.model_copy(update={"retention_days": 3})):
        pass
    assert not old[0].exists()  # untouched and old: purged
    assert all(path.exists() for path in recent)
    assert not verify(audit_dir).ok  # the appended lines themselves show

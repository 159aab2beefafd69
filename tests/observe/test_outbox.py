"""Lines on their way to the disk (sqlfence/observe/outbox.py, filesink.py): whole lines
only, refused lines kept and retried in order, and what producers are told meanwhile."""

from __future__ import annotations

import errno
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from sqlfence.errors import AuditError
from sqlfence.observe import filesink
from sqlfence.observe.audit import AuditLog
from sqlfence.observe.filesink import FileSink, chain_files
from sqlfence.observe.settings import AuditSettings
from sqlfence.observe.verify import verify
from tests.observe.conftest import audit_events


class _Disk:
    """``os`` for filesink, with writes that stop part-way with ENOSPC while ``full``."""

    def __init__(self) -> None:
        self.full = False
        self.refused = 0

    def write(self, fd: int, data: Any) -> int:
        if not self.full:
            return os.write(fd, data)
        self.refused += 1
        if len(data) > 10 and self.refused % 2:  # half a batch first, as a full disk does
            return os.write(fd, bytes(data[: len(data) // 2]))
        raise OSError(errno.ENOSPC, "No space left on device")

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)


@pytest.fixture
def disk(monkeypatch: pytest.MonkeyPatch) -> _Disk:
    """filesink's writes go through a disk the test can fill."""
    fake = _Disk()
    monkeypatch.setattr(filesink, "os", fake)
    return fake


def _whole_lines(directory: Path) -> bytes:
    """The complete lines of a live log (a line being written is left out)."""
    data = b"".join(path.read_bytes() for path in chain_files(directory, "audit"))
    return data[: data.rfind(b"\n") + 1]


def _until(condition: Any, what: str) -> None:
    deadline = time.monotonic() + 30  # a hang detector, not a timing assertion
    while not condition():
        assert time.monotonic() < deadline, f"still waiting for {what}"
        time.sleep(0.01)


def test_a_write_refused_part_way_leaves_only_whole_lines(tmp_path: Path, disk: _Disk) -> None:
    """A batch the disk takes half of is cut back before the error is raised; written again
    later it appears once, whole."""
    sink = FileSink(tmp_path, "audit", max_bytes=1 << 20, rotate_daily=False, sync=False)
    first = [b'{"n":%d}\n' % n for n in range(3)]
    sink.write(first)
    (path,) = chain_files(tmp_path, "audit")
    batch = [b'{"n":%d,"pad":"%s"}\n' % (n, b"x" * 40) for n in range(3, 8)]
    disk.full = True
    with pytest.raises(OSError, match="No space"):
        sink.write(batch)
    assert disk.refused == 2  # half went in, then the refusal
    assert path.read_bytes() == b"".join(first)
    disk.full = False
    sink.write(batch)
    sink.close()
    assert path.read_bytes() == b"".join(first + batch)


@pytest.mark.filterwarnings("ignore::sqlfence.errors.AuditWarning")  # continue warns
def test_events_refused_by_the_disk_arrive_once_in_one_chain(audit_dir: Path, disk: _Disk) -> None:
    """With on_audit_failure=continue, events submitted while the disk refuses writes are
    kept; when it takes them again the chain continues: no duplicate, no splice, verified."""
    settings = AuditSettings(directory=audit_dir, on_audit_failure="continue")
    with AuditLog(settings) as log:
        log.emit("sandbox.step", details={"n": 0})
        assert log.flush()
        disk.full = True
        for n in range(1, 200):
            log.emit("sandbox.step", details={"n": n})
        _until(lambda: log.stats()["failing"] is not None, "the failure")
        before = log.unaudited
        log.emit("sandbox.step", details={"n": 200})  # known not to be on disk: counted
        assert log.unaudited == before + 1
        disk.full = False
        _until(lambda: log.stats()["failing"] is None, "the recovery")
    events = audit_events(audit_dir)
    steps = [e["details"]["n"] for e in events if e["event_type"] == "sandbox.step"]
    assert steps == list(range(201))
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert any(e["event_type"] == "audit.recovered" for e in events)
    result = verify(audit_dir)
    assert result.ok, result


def test_sync_producers_learn_of_a_refused_write_at_once(audit_dir: Path, disk: _Disk) -> None:
    """In sync durability a refused write makes submit raise AuditError naming the cause
    (not after the timeout); new statements are refused; once the disk takes writes again
    the kept event is written, once."""
    settings = AuditSettings(directory=audit_dir, durability="sync", wait_timeout_s=60)
    with AuditLog(settings) as log:
        disk.full = True
        started = time.monotonic()
        with pytest.raises(AuditError, match="No space left on device") as raised:
            log.emit("sandbox.step", details={"n": 1})
        assert time.monotonic() - started < 30  # a hang detector: far below the timeout
        assert raised.value.ran
        with pytest.raises(AuditError, match="refused") as refused:
            log.refuse()
        assert not refused.value.ran
        disk.full = False
        _until(lambda: log.stats()["failing"] is None, "the recovery")
        log.refuse()  # no longer raises
        log.emit("sandbox.step", details={"n": 2})
    steps = [
        e["details"]["n"] for e in audit_events(audit_dir) if e["event_type"] == "sandbox.step"
    ]
    assert steps == [1, 2]
    assert verify(audit_dir).ok


def test_sync_group_commit_many_threads_share_fsyncs(
    audit_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Eight threads in sync durability: every event is on disk when its submit returns,
    and they need fewer syncs than events (one sync carries several threads' events)."""
    synced = [0]
    real = filesink._sync_data

    def counting(fd: int) -> None:
        time.sleep(0.002)  # a disk that takes a while, so that events pile up behind it
        real(fd)
        synced[0] += 1

    monkeypatch.setattr(filesink, "_sync_data", counting)
    missing: list[int] = []
    errors: list[BaseException] = []
    with AuditLog(AuditSettings(directory=audit_dir, durability="sync")) as log:

        def produce(thread: int) -> None:
            try:
                for n in range(50):
                    log.emit("sandbox.step", details={"n": thread * 100 + n})
                    if f'"n":{thread * 100 + n}}}'.encode() not in _whole_lines(audit_dir):
                        missing.append(thread * 100 + n)
            except BaseException as error:  # reported by the test's thread
                errors.append(error)

        threads = [threading.Thread(target=produce, args=(t,)) for t in range(8)]
        before = synced[0]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        syncs = synced[0] - before
    assert errors == []
    assert missing == []
    assert syncs < 400
    assert verify(audit_dir).ok


class _SmallDisk:
    """``os`` for filesink with ``room`` bytes left (None: unlimited); a write past it takes
    what fits and then fails with ENOSPC, and a cut back returns the room."""

    def __init__(self) -> None:
        self.room: int | None = None

    def write(self, fd: int, data: Any) -> int:
        if self.room is None:
            return os.write(fd, data)
        if self.room <= 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        taken = os.write(fd, bytes(data[: self.room]))
        self.room -= taken
        return taken

    def ftruncate(self, fd: int, size: int) -> None:
        if self.room is not None:
            self.room += os.fstat(fd).st_size - size
        os.ftruncate(fd, size)

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)


@pytest.mark.filterwarnings("ignore::sqlfence.errors.AuditWarning")  # continue warns
@pytest.mark.parametrize("room_lines", [1, 7, 50, 199])
def test_a_disk_with_room_for_some_kept_lines_takes_those(
    audit_dir: Path, monkeypatch: pytest.MonkeyPatch, room_lines: int
) -> None:
    """Kept lines are not all-or-nothing: when the disk has room for some, the oldest that
    fit are written (in order, whole) and only the rest wait; closing while the disk stays
    full loses only those, and what was written verifies."""
    small = _SmallDisk()
    monkeypatch.setattr(filesink, "os", small)
    settings = AuditSettings(directory=audit_dir, on_audit_failure="continue")
    log = AuditLog(settings)
    log.emit("sandbox.step", details={"n": 0})
    assert log.flush()
    small.room = 0
    for n in range(1, 200):
        log.emit("sandbox.step", details={"n": n, "pad": "x" * 100})
    _until(lambda: log.stats()["failing"] is not None, "the failure")
    small.room = room_lines * 600  # a padded step line is about 450 bytes
    log.close()
    events = audit_events(audit_dir)
    steps = [e["details"]["n"] for e in events if e["event_type"] == "sandbox.step"]
    assert steps == list(range(len(steps)))  # a prefix, in order, none twice
    longest = max(map(len, _whole_lines(audit_dir).splitlines(keepends=True)))
    # What fitted was written: all of it, or until there was no room for one more line.
    assert len(steps) == 200 or small.room < longest
    assert len(steps) > 1
    result = verify(audit_dir)
    # Cut at its end by the full disk: the head is behind or at the last line, never ahead.
    assert result.ok, result


@pytest.mark.parametrize("batch", [1, 3, 40])
def test_no_file_grows_past_max_bytes_but_by_one_oversized_batch(
    tmp_path: Path, batch: int
) -> None:
    sink = FileSink(tmp_path, "audit", max_bytes=1000, rotate_daily=False, sync=False)
    line = b'{"n":0,"pad":"%s"}\n' % (b"x" * 80)  # 100 bytes
    for _ in range(30):
        sink.write([line] * batch)
    sink.close()
    files = chain_files(tmp_path, "audit")
    assert sum(p.stat().st_size for p in files) == 30 * batch * len(line)
    for path in files:
        size = path.stat().st_size
        assert size <= 1000 or size == batch * len(line), (path.name, size)

"""Retention cannot be turned against the log: signed lines of another chain or directory
under the same key, planted in the files, neither become part of the chain when a writer
reopens it nor get recent files purged, and a purge says which event the kept log follows.

Each case is an outsider's attack that once worked: the files were changed, the application
ran again, and ``verify`` passed with recent events gone.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from sqlfence.observe.audit import AuditLog
from sqlfence.observe.filesink import chain_files
from sqlfence.observe.settings import AuditSettings
from sqlfence.observe.verify import verify
from tests.observe.conftest import audit_events
from tests.observe.test_audit import _written_days_ago

LONG_AGO = time.time() - 60 * 86400


def _victim_and_donor(
    audit_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[AuditSettings, list[Path], list[Path], dict[int, bytes]]:
    """A log written 10 days ago and 2 days ago (kept under retention_days=5), and the
    signed lines, by seq, of another directory under the same key written 30 days ago."""
    settings = AuditSettings(directory=audit_dir, max_file_bytes=1500, batch_size=2)
    old = _written_days_ago(monkeypatch, settings, 10, 12)
    recent = _written_days_ago(monkeypatch, settings, 2, 12)
    donor = AuditSettings(directory=audit_dir.parent / "donor", max_file_bytes=1 << 20)
    _written_days_ago(monkeypatch, donor, 30, 120)
    lines = {}
    for path in chain_files(donor.directory, "audit"):
        for line in path.read_bytes().splitlines(keepends=True):
            lines[json.loads(line)["seq"]] = line
    assert verify(audit_dir).ok
    return settings, old, recent, lines


def _head_seq(audit_dir: Path) -> int:
    return int(audit_events(audit_dir)[-1]["seq"])


def _plant(path: Path, *lines: bytes) -> Path:
    path.write_bytes(b"".join(lines))
    os.utime(path, (LONG_AGO, LONG_AGO))
    return path


def _reopen(settings: AuditSettings) -> None:
    with AuditLog(settings.model_copy(update={"retention_days": 5})) as log:
        log.emit("sandbox.step", details={"after": "the attack"})


def test_a_writer_does_not_go_on_from_planted_lines_past_its_head(
    audit_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every file deleted, two donor lines numbered past the head planted as old files: the
    writer used to resume from them, retention purged them, and verify passed."""
    settings, old, recent, donor = _victim_and_donor(audit_dir, monkeypatch)
    head = _head_seq(audit_dir)
    for path in old + recent:
        path.unlink()
    day = recent[-1].name.split("-")[1]
    _plant(audit_dir / f"audit-{day}-000101.jsonl", donor[head + 40])
    _plant(audit_dir / f"audit-{day}-000102.jsonl", donor[head + 41])
    _reopen(settings)
    opened = [e for e in audit_events(audit_dir) if e["event_type"] == "audit.open"][-1]
    assert opened["seq"] == head + 1  # it goes on from its head, not from the planted lines
    assert "head" in str(opened["details"])
    assert not verify(audit_dir).ok


def test_planted_lines_cannot_sign_a_false_start_for_recent_files_deleted_later(
    audit_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Donor lines numbered as the head and the one after it, planted as the oldest files:
    retention purged the first and signed "the log starts after the head"; deleting the
    recent files by hand then passed verify."""
    settings, old, recent, donor = _victim_and_donor(audit_dir, monkeypatch)
    head = _head_seq(audit_dir)
    first = _plant(audit_dir / "audit-20000101-000001.jsonl", donor[head])
    second = _plant(audit_dir / "audit-20000101-000002.jsonl", donor[head + 1])
    _reopen(settings)
    assert not first.exists()  # a whole piece whose next file follows it: purged
    purge = [e for e in audit_events(audit_dir) if e["event_type"] == "audit.purge"][-1]
    assert purge["details"]["first_prev"]  # the kept log is pinned to the event it follows
    for path in [second, *old, *recent]:
        if path.exists():
            path.unlink()
    result = verify(audit_dir)
    assert not result.ok
    assert result.first_error is not None


def test_retention_does_not_purge_a_recent_file_ending_in_a_planted_line(
    audit_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A donor line appended to the newest real file (its time set back), and the next donor
    line as a file after it: retention purged the real file, recent events and all."""
    settings, _, recent, donor = _victim_and_donor(audit_dir, monkeypatch)
    head = _head_seq(audit_dir)
    newest = recent[-1]
    with newest.open("ab") as handle:
        handle.write(donor[head])
    os.utime(newest, (LONG_AGO, LONG_AGO))
    day = newest.name.split("-")[1]
    _plant(audit_dir / f"audit-{day}-000101.jsonl", donor[head + 1])
    for path in recent:
        os.utime(path, (LONG_AGO, LONG_AGO))
    _reopen(settings)
    assert all(path.exists() for path in recent)  # recent events are never purged
    assert not verify(audit_dir).ok


def test_a_file_put_in_place_of_the_first_kept_one_fails_verify(
    audit_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a genuine purge, the first kept file replaced by a donor line with the same seq:
    the purge recorded which event the kept log follows, and this one does not."""
    settings, old, _, donor = _victim_and_donor(audit_dir, monkeypatch)
    _reopen(settings)
    assert not any(path.exists() for path in old)
    assert verify(audit_dir).ok
    kept = chain_files(audit_dir, "audit")
    first_seq = json.loads(kept[0].read_bytes().splitlines()[0])["seq"]
    whole = kept[0].read_bytes().splitlines(keepends=True)
    kept[0].write_bytes(donor[first_seq] + b"".join(whole[1:]))
    result = verify(audit_dir)
    assert not result.ok


def test_a_genuine_purge_still_verifies_and_keeps_what_is_recent(
    audit_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rule purges exactly the old files of a genuine log, and the log still verifies."""
    settings, old, recent, _ = _victim_and_donor(audit_dir, monkeypatch)
    _reopen(settings)
    assert not any(path.exists() for path in old)
    assert all(path.exists() for path in recent)
    purge = [e for e in audit_events(audit_dir) if e["event_type"] == "audit.purge"][-1]
    assert purge["details"]["files"] == [path.name for path in old]
    assert verify(audit_dir).ok


def _roster(audit_dir: Path) -> Path:
    return audit_dir / "audit.chains"


def _delete_chain(audit_dir: Path, chain: str) -> None:
    for path in audit_dir.iterdir():
        if path.name.startswith(f"{chain}-") or path.name in (f"{chain}.head", f"{chain}.lock"):
            path.unlink()


def test_an_older_roster_kept_in_place_does_not_hide_a_second_chain(audit_dir: Path) -> None:
    """While the application writes, an older roster is put back each time a second process
    lists its chain, then that chain is deleted whole: the writer found the chain on disk
    (its files and head), so it vouched for it anyway."""
    settings = AuditSettings(directory=audit_dir)
    with AuditLog(settings) as main:
        main.emit("sandbox.step", details={"n": 1})
        main.flush()
        older = _roster(audit_dir).read_bytes()
        with AuditLog(settings) as second:
            assert second.chain != main.chain
            second.emit("sandbox.step", details={"n": 2})
            second.flush()
            _roster(audit_dir).write_bytes(older)
        _roster(audit_dir).write_bytes(older)
        main.emit("sandbox.step", details={"n": 3})
        side = second.chain
    _roster(audit_dir).write_bytes(older)
    vouched = [
        e for e in audit_events(audit_dir) if e["event_type"] in ("audit.chains", "audit.open")
    ]
    assert any(side in str(e["details"]) for e in vouched)
    _delete_chain(audit_dir, side)
    result = verify(audit_dir)
    assert not result.ok
    assert result.first_error is not None
    assert side in result.first_error.message


def test_a_purge_names_again_the_chains_its_purged_events_vouched_for(
    audit_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The only events naming a second chain are old and get purged; an older roster is put
    back and the second chain deleted: the purge event names the chain again, so its
    deletion still shows. (Every file is made to look old by setting back the age the purge
    reads, so that all but the newest are purged.)"""
    settings = AuditSettings(directory=audit_dir, max_file_bytes=1500, batch_size=2)
    older = None
    with AuditLog(settings) as main:
        main.emit("sandbox.step", details={"n": 1})
        main.flush()
        older = _roster(audit_dir).read_bytes()
        with AuditLog(settings) as second:
            second.emit("sandbox.step", details={"n": 2})
            side = second.chain
        main.emit("sandbox.step", details={"n": 3})
    with AuditLog(settings) as later:  # more files after the ones naming the second chain
        for n in range(12):
            later.emit("sandbox.step", details={"n": n, "pad": "x" * 200})
    older_files = chain_files(audit_dir, "audit")[:-1]  # what the purge below removes
    lines = [line for path in older_files for line in path.read_bytes().splitlines()]
    assert any(side in str(json.loads(line).get("details")) for line in lines)
    _delete_chain(audit_dir, side)
    _roster(audit_dir).write_bytes(older)
    for path in chain_files(audit_dir, "audit"):
        os.utime(path, (LONG_AGO, LONG_AGO))
    with monkeypatch.context() as patch:  # the old files' events are "old": purge them
        from sqlfence.observe import filesink

        real = filesink._age_of_piece

        def aged(*args: object) -> float | None:
            found = real(*args)  # type: ignore[arg-type]
            return None if found is None else found - 30 * 86400

        patch.setattr(filesink, "_age_of_piece", aged)
        _reopen(settings)
    purge = [e for e in audit_events(audit_dir) if e["event_type"] == "audit.purge"][-1]
    assert side in purge["details"]["chains"]
    result = verify(audit_dir)
    assert not result.ok

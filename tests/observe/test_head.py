"""The signed head of a chain (sqlfence/observe/head.py) and what verify and a reopened log
make of it: a log cut at its end fails with the number of events missing."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from sqlfence.observe.audit import AuditLog
from sqlfence.observe.filesink import chain_files
from sqlfence.observe.head import SLOT, BadHead, Head, HeadFile, head_path, read_head, write_head
from sqlfence.observe.integrity import Chain, Signer
from sqlfence.observe.settings import AuditSettings
from sqlfence.observe.verify import verify
from tests.observe.conftest import audit_events

SIGNER = Signer(b"head-test-key-of-the-audit-chain")


def _log(directory: Path, events: int = 10) -> Path:
    """A closed log of ``events`` sandbox events plus its open and close; its only file."""
    with AuditLog(AuditSettings(directory=directory)) as log:
        for n in range(events):
            log.emit("sandbox.step", details={"n": n})
    (path,) = chain_files(directory, "audit")
    return path


def _cut(path: Path, lines: int) -> None:
    kept = path.read_bytes().splitlines(keepends=True)[:-lines]
    path.write_bytes(b"".join(kept))


def test_a_head_reads_back_only_with_its_key(tmp_path: Path) -> None:
    """A written head reads back as written; another key or a changed byte is a BadHead."""
    path = tmp_path / "audit.head"
    head = Head("audit", 42, "a" * 64, "audit-20260101-000001.jsonl")
    write_head(path, head, SIGNER)
    assert read_head(path, SIGNER) == replace(head, prev="")  # a file's first head
    assert not (tmp_path / "audit.head.tmp").exists()
    with pytest.raises(BadHead, match="not signed with this key"):
        read_head(path, Signer(b"another-key-of-the-audit-chain"))
    path.write_bytes(path.read_bytes().replace(b'"seq":42', b'"seq":41'))
    with pytest.raises(BadHead):
        read_head(path, SIGNER)
    path.write_text("not json")
    with pytest.raises(BadHead, match="not an audit head"):
        read_head(path, SIGNER)
    assert read_head(tmp_path / "missing.head", SIGNER) is None


def test_a_closed_log_has_a_head_at_its_last_event(audit_dir: Path) -> None:
    """After close the head names the last event: its seq, its MAC and its file."""
    path = _log(audit_dir)
    last = audit_events(audit_dir)[-1]
    head = read_head(head_path(audit_dir, "audit"), Signer(b"test-key-of-the-audit-chain"))
    assert head is not None
    assert (head.seq, head.mac, head.file) == (last["seq"], last["mac"], path.name)


def test_the_head_file_keeps_two_slots_written_in_turn(tmp_path: Path) -> None:
    """The writer's head is two sector-sized slots replaced in turn; the head is the higher
    seq; a changed slot (either) is a BadHead; the one-line form of older logs reads too."""
    path = tmp_path / "audit.head"
    writer = HeadFile(path)
    for seq in range(1, 6):
        writer.write(Head("audit", seq, "a" * 64, "f.jsonl"), SIGNER)
        assert path.stat().st_size == 2 * SLOT
        found = read_head(path, SIGNER)
        assert found is not None
        assert (found.chain, found.seq, found.mac, found.file) == (
            "audit",
            seq,
            "a" * 64,
            "f.jsonl",
        )
    writer.close()
    raw = path.read_bytes()
    older, newer = sorted((raw[:SLOT], raw[SLOT:]), key=lambda slot: json.loads(slot)["seq"])
    assert json.loads(older)["seq"] == 4
    damages = {
        "older slot changed": raw.replace(older, older.replace(b'"mac":"a', b'"mac":"b', 1)),
        "newer slot changed": raw.replace(newer, newer.replace(b'"mac":"a', b'"mac":"b', 1)),
        "older slot copied over the newer": older + older,
        "newer slot copied over the older": newer + newer,
        "slots swapped": raw[SLOT:] + raw[:SLOT],  # still a valid pair: harmless
        "one slot left": older,
        "one slot left, unpadded": older.rstrip() + b"\n",
        "cut inside a slot": raw[: SLOT + 100],
    }
    for damage, data in damages.items():
        path.write_bytes(data)
        if damage == "slots swapped":
            assert read_head(path, SIGNER) is not None
            continue
        with pytest.raises(BadHead):
            read_head(path, SIGNER)
    legacy = b'{"chain":"audit","seq":3,"mac":"%s","file":"f.jsonl"}' % (b"a" * 64)
    signature = SIGNER.mac(b"sqlfence audit head\n" + legacy).encode()
    path.write_bytes(legacy[:-1] + b',"sig":"' + signature + b'"}\n')  # before slots
    assert read_head(path, SIGNER) == Head("audit", 3, "a" * 64, "f.jsonl")
    long = Head("audit", 7, "b" * 64, "x" * 600)  # too long for a slot: a whole-file head
    write_head(path, long, SIGNER)
    assert read_head(path, SIGNER) == replace(long, prev="")


def test_an_older_slot_put_over_the_newer_with_the_last_event_cut_fails_verify(
    audit_dir: Path,
) -> None:
    """The attack: the last line cut and the older slot copied over the newer one (or the
    head cut to one slot, or replaced by a one-line head) in sync durability."""
    settings = AuditSettings(directory=audit_dir, durability="sync")
    with AuditLog(settings) as log:
        for n in range(5):
            log.emit("sandbox.step", details={"n": n})
    head = head_path(audit_dir, "audit")
    raw = head.read_bytes()
    (path,) = chain_files(audit_dir, "audit")
    _cut(path, 1)
    older = min((raw[:SLOT], raw[SLOT:]), key=lambda slot: json.loads(slot)["seq"])
    for data in (older + older, older, older.rstrip() + b"\n"):
        head.write_bytes(data)
        result = verify(audit_dir)
        assert not result.ok, data[:40]


@pytest.mark.parametrize("lines", [1, 3, 12])
def test_a_log_cut_at_its_end_fails_verify_with_the_count(audit_dir: Path, lines: int) -> None:
    """Removing the last lines (all of them included) fails verify, saying how many."""
    path = _log(audit_dir)
    assert verify(audit_dir).ok
    _cut(path, lines)
    for target in (audit_dir, path):
        result = verify(target)
        assert not result.ok
        error = result.first_error
        assert error is not None
        assert (error.kind, error.missing) == ("missing", lines), error
        assert f"{lines} events are missing at the end" in error.message


def test_a_deleted_head_fails_verify(audit_dir: Path) -> None:
    """Deleting the head to hide a cut fails: the chain's own events say it keeps one."""
    _log(audit_dir)
    head_path(audit_dir, "audit").unlink()
    result = verify(audit_dir)
    assert result.first_error is not None
    assert result.first_error.kind == "missing"
    assert "audit.head is missing" in result.first_error.message


def test_a_forged_head_fails_verify(audit_dir: Path) -> None:
    """A head not signed with the log's key fails verify as altered."""
    _log(audit_dir)
    write_head(head_path(audit_dir, "audit"), Head("audit", 3, "0" * 64, "x"), SIGNER)
    result = verify(audit_dir)
    assert result.first_error is not None
    assert result.first_error.kind == "altered"


def test_a_log_from_before_heads_verifies_without_one(audit_dir: Path) -> None:
    """A chain whose events never mention a head (older logs) still verifies."""
    chain = Chain(Signer(b"test-key-of-the-audit-chain"))
    audit_dir.mkdir(parents=True)
    lines = []
    for seq in (1, 2, 3):
        body = json.dumps({"seq": seq, "event_type": "audit.open", "prev": chain.prev})
        lines.append(chain.sign(body.replace(" ", "").encode()))
    (audit_dir / "audit-20250101-000001.jsonl").write_bytes(b"".join(lines))
    result = verify(audit_dir)
    assert result.ok, result


@pytest.mark.parametrize("damage", ["delete", "forge"])
def test_reopening_does_not_bless_a_lost_head(audit_dir: Path, damage: str) -> None:
    """Cut the tail and delete (or forge) the head, then let a writer reopen the log: the
    reopening records it, and verify still fails (a later writer cannot hide the cut)."""
    path = _log(audit_dir)
    _cut(path, 3)
    head = head_path(audit_dir, "audit")
    if damage == "delete":
        head.unlink()
    else:
        head.write_text("junk")
    with AuditLog(AuditSettings(directory=audit_dir)) as log:
        log.emit("sandbox.step", details={"n": 99})
    reopened = [e for e in audit_events(audit_dir) if e["event_type"] == "audit.open"][-1]
    assert reopened["details"].get("head_missing" if damage == "delete" else "head_invalid")
    result = verify(audit_dir)
    assert result.first_error is not None
    assert result.first_error.kind == "missing"
    assert "reopened after its head was lost or altered" in result.first_error.message


def test_a_reopened_cut_log_continues_after_its_head(audit_dir: Path) -> None:
    """A log reopened after its end was cut records the loss and continues numbering after
    the head, so verify reports exactly the missing events where they were."""
    path = _log(audit_dir)
    _cut(path, 3)
    with AuditLog(AuditSettings(directory=audit_dir)):
        pass
    events = audit_events(audit_dir)
    reopened = [e for e in events if e["event_type"] == "audit.open"][-1]
    assert reopened["details"]["missing_at_end"] == {"from_seq": 10, "to_seq": 12, "count": 3}
    assert reopened["seq"] == 13
    result = verify(audit_dir)
    assert result.first_error is not None
    assert (result.first_error.kind, result.first_error.missing) == ("missing", 3)
    assert result.first_error.seq == 10


def test_verify_reads_the_head_before_the_files_of_a_live_log(audit_dir: Path) -> None:
    """A log still being written verifies: its head never runs ahead of its lines."""
    with AuditLog(AuditSettings(directory=audit_dir, flush_interval_s=0.01)) as log:
        for n in range(200):
            log.emit("sandbox.step", details={"n": n})
            if n % 50 == 0:
                assert log.flush()
                result = verify(audit_dir)
                assert result.ok, result


def test_in_sync_durability_the_head_covers_every_acknowledged_event(audit_dir: Path) -> None:
    """An event is acknowledged only once the head names it: none can be cut off the end
    unseen after a crash (the head of batched durability trails by flush_interval_s)."""
    signer = Signer(b"test-key-of-the-audit-chain")
    with AuditLog(AuditSettings(directory=audit_dir, durability="sync")) as log:
        for n in range(20):
            log.emit("sandbox.step", details={"n": n})  # returns once written
            head = read_head(head_path(audit_dir, "audit"), signer)
            assert head is not None
            assert head.seq == audit_events(audit_dir)[-1]["seq"]


def test_the_last_file_renamed_fails_verify(audit_dir: Path) -> None:
    """The head names the file of its event: renaming that file shows."""
    path = _log(audit_dir)
    path.rename(path.with_name(path.name.replace("-000001", "-000099")))
    result = verify(audit_dir)
    assert result.first_error is not None
    assert "files were renamed" in result.first_error.message

"""The roster of a directory's chains (sqlfence/observe/roster.py): a chain of another
process deleted whole, files and head, fails verify; so does a deleted, forged or older
roster. Logs from before rosters still verify."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sqlfence.cli import main as cli_main
from sqlfence.observe.audit import AuditLog
from sqlfence.observe.filesink import chain_files
from sqlfence.observe.head import Head, head_path, write_head
from sqlfence.observe.integrity import Chain, Signer
from sqlfence.observe.roster import (
    BadRoster,
    Roster,
    base_of,
    enroll,
    mark_written,
    read_roster,
    roster_path,
)
from sqlfence.observe.settings import AuditSettings
from sqlfence.observe.verify import MISSING, verify

KEY = b"roster-test-key-of-the-audit-chain"
SIGNER = Signer(KEY)
ENV_KEY = b"test-key-of-the-audit-chain"  # the audit_dir fixture's $SQLFENCE_AUDIT_KEY


def _two_chains(directory: Path, events: int = 5) -> str:
    """A closed log with two chains, as two processes leave it; the second chain's name.
    The roster as it was before the second chain is kept beside the directory."""
    settings = AuditSettings(directory=directory)
    with AuditLog(settings) as first:
        shutil.copy(roster_path(directory, "audit"), _older_copy(directory))
        with AuditLog(settings) as second:
            assert second.chain != first.chain  # the chain lock is taken: a chain of its own
            for n in range(events):
                first.emit("sandbox.step", details={"n": n})
                second.emit("sandbox.step", details={"n": n})
        return second.chain


def _older_copy(directory: Path) -> Path:
    return directory.parent / "older.chains"


def _delete_chain(directory: Path, chain: str, *, head: bool = True) -> None:
    for path in chain_files(directory, chain):
        path.unlink()
    if head:
        head_path(directory, chain).unlink()


def _legacy_log(directory: Path) -> None:
    """A log as written before rosters: a chain and its head, no roster, no event naming one."""
    chain = Chain(Signer(KEY))
    directory.mkdir(parents=True)
    name = "audit-20250101-000001.jsonl"
    lines = []
    for seq in (1, 2, 3):
        body: dict[str, Any] = {
            "seq": seq,
            "event_type": "audit.open",
            "prev": chain.prev,
            "details": {},
        }
        if seq == 1:
            body["details"] = {"head": "audit.head"}
        lines.append(chain.sign(json.dumps(body, separators=(",", ":")).encode()))
    (directory / name).write_bytes(b"".join(lines))
    write_head(head_path(directory, "audit"), Head("audit", 3, chain.prev, name), Signer(KEY))


def test_a_roster_reads_back_only_with_its_key(tmp_path: Path) -> None:
    """Enrolling writes a signed roster; another key, a changed byte or junk is BadRoster."""
    found = enroll(tmp_path, "audit", SIGNER, {}, fresh=False)
    directory_id = found.pop("directory_id")
    assert found == {"roster": "audit.chains", "roster_chains": ["audit"]}
    assert enroll(tmp_path, "audit.p7", SIGNER, {"audit": 3}, fresh=True)["roster_chains"] == [
        "audit"
    ]  # a fresh chain is listed once it has written
    mark_written(tmp_path, "audit.p7", SIGNER)
    path = roster_path(tmp_path, "audit")
    roster = read_roster(path, SIGNER)
    assert roster == Roster(str(directory_id), frozenset({"audit", "audit.p7"}))
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    with pytest.raises(BadRoster, match="not signed with this key"):
        read_roster(path, Signer(b"another-key-of-the-audit-chain"))
    path.write_bytes(path.read_bytes().replace(b"audit.p7", b"audit.p8"))
    with pytest.raises(BadRoster):
        read_roster(path, SIGNER)
    junks = (
        b"not json",
        b'{"chains": "audit", "directory": "d", "sig": "x"}',
        b'{"chains": [1], "directory": "d", "sig": "x"}',
        b'{"chains": [], "directory": 5, "sig": "x"}',
    )
    for junk in junks:
        path.write_bytes(junk)
        with pytest.raises(BadRoster, match="not an audit roster"):
            read_roster(path, SIGNER)
    assert read_roster(tmp_path / "none.chains", SIGNER) is None


@pytest.mark.parametrize(
    ("chain", "base"),
    [("audit", "audit"), ("audit.p123", "audit"), ("app.audit.p9", "app.audit"), ("x.py", "x.py")],
)
def test_the_base_of_a_chain_is_its_prefix(chain: str, base: str) -> None:
    assert base_of(chain) == base


def test_two_chains_verify_and_share_one_roster(audit_dir: Path) -> None:
    second = _two_chains(audit_dir)
    result = verify(audit_dir)
    assert result.ok, result
    assert set(result.chains) == {"audit", second}
    listed = read_roster(roster_path(audit_dir, "audit"), Signer(ENV_KEY))
    assert listed is not None
    assert listed.chains == {"audit", second}


def _older_roster(directory: Path, chain: str) -> None:
    """Put back the roster as it was before ``chain`` was listed, keeping that chain."""
    shutil.copy(_older_copy(directory), roster_path(directory, "audit"))


def _older_roster_and_chain_deleted(directory: Path, chain: str) -> None:
    """Put back the roster as it was before ``chain`` was listed, and delete ``chain``."""
    _older_roster(directory, chain)
    _delete_chain(directory, chain)


def _roster_deleted(directory: Path, chain: str) -> None:
    roster_path(directory, "audit").unlink()


def _roster_and_chain_deleted(directory: Path, chain: str) -> None:
    _delete_chain(directory, chain)
    roster_path(directory, "audit").unlink()


def _roster_forged(directory: Path, chain: str) -> None:
    roster_path(directory, "audit").write_text(
        '{"chains":["audit"],"directory":"0","sig":"' + "0" * 64 + '"}\n'
    )


def _chain_deleted_and_written_again(directory: Path, chain: str) -> None:
    _delete_chain(directory, chain)
    _write_again(directory)


DAMAGE: dict[str, Callable[[Path, str], None]] = {
    "second chain deleted whole": _delete_chain,
    "first chain deleted whole": lambda d, c: _delete_chain(d, "audit"),
    "second chain's files deleted, head kept": lambda d, c: _delete_chain(d, c, head=False),
    "roster deleted": _roster_deleted,
    "roster and second chain deleted": _roster_and_chain_deleted,
    "roster forged": _roster_forged,
    "roster from before the second chain": _older_roster,
    "roster from before the second chain, which is deleted": _older_roster_and_chain_deleted,
    "chains swapped, files and heads": lambda d, c: _swap(d, "audit", c),
    "heads swapped": lambda d, c: _swap(d, "audit", c, files=False),
    "a chain deleted and written again": _chain_deleted_and_written_again,
    "an empty line added": lambda d, c: _edit_first_file(d, lambda b: b + b"\n"),
    "line ends made CR LF": lambda d, c: _edit_first_file(d, lambda b: b.replace(b"\n", b"\r\n")),
}


def _swap(directory: Path, one: str, other: str, *, files: bool = True) -> None:
    """Exchange the names of two chains' heads (and files)."""
    pairs = [(head_path(directory, one), head_path(directory, other))]
    if files:
        pairs += list(zip(chain_files(directory, one), chain_files(directory, other), strict=True))
    for a, b in pairs:
        swap = a.with_name("swap")
        a.rename(swap)
        b.rename(a)
        swap.rename(b)


def _write_again(directory: Path) -> None:
    """A writer after the first chain was deleted whole: it starts the chain again."""
    _delete_chain(directory, "audit")
    with AuditLog(AuditSettings(directory=directory)) as log:
        log.emit("sandbox.step")


def _edit_first_file(directory: Path, edit: Callable[[bytes], bytes]) -> None:
    path = chain_files(directory, "audit")[0]
    path.write_bytes(edit(path.read_bytes()))


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_a_deleted_chain_or_roster_fails_verify(audit_dir: Path, damage: str) -> None:
    second = _two_chains(audit_dir)
    DAMAGE[damage](audit_dir, second)
    result = verify(audit_dir)
    assert not result.ok, damage
    assert result.first_error is not None
    assert result.first_error.kind in (MISSING, "altered", "inserted", "malformed")


@pytest.mark.parametrize("damage", ["roster deleted", "roster and second chain deleted"])
def test_a_writer_that_starts_the_roster_again_does_not_bless_the_deletion(
    audit_dir: Path, damage: str
) -> None:
    """A new writer after the roster was deleted records what it found; verify still fails."""
    second = _two_chains(audit_dir)
    DAMAGE[damage](audit_dir, second)
    with AuditLog(AuditSettings(directory=audit_dir)) as log:
        log.emit("sandbox.step")
    result = verify(audit_dir)
    assert not result.ok
    assert result.first_error is not None
    assert result.first_error.kind == MISSING
    assert "roster" in result.first_error.message


def test_a_chain_deleted_whole_is_named_with_its_count(audit_dir: Path) -> None:
    second = _two_chains(audit_dir, events=7)
    _delete_chain(audit_dir, second, head=False)
    result = verify(audit_dir)
    assert result.first_error is not None
    assert result.first_error.missing == 9  # open, 7 events, close
    assert "holds no events" in result.first_error.message


def test_every_file_deleted_with_the_heads_kept_is_a_failure_not_an_empty_log(
    audit_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The CLI says the log failed (exit 1), with the count, not "no audit log" (exit 2)."""
    _two_chains(audit_dir)
    for path in audit_dir.glob("*.jsonl"):
        path.unlink()
    result = verify(audit_dir)
    assert not result.ok
    assert result.first_error is not None
    assert result.first_error.missing == 8  # open, 5 steps, the second chain vouched, close
    assert cli_main(["audit", "verify", str(audit_dir)]) == 1
    assert "missing" in capsys.readouterr().out


def test_a_log_from_before_rosters_verifies_and_a_new_writer_keeps_it_so(
    audit_dir: Path,
) -> None:
    _legacy_log(audit_dir)
    assert verify(audit_dir, KEY).ok, verify(audit_dir, KEY)
    with AuditLog(AuditSettings(directory=audit_dir, key=KEY.decode())) as log:
        log.emit("sandbox.step")
    result = verify(audit_dir, KEY)
    assert result.ok, result
    assert result.last_seq == {"audit": 6}


def test_a_roster_that_cannot_be_written_fails_opening_the_log(audit_dir: Path) -> None:
    """The roster is written before the first event: a directory that refuses it is the
    same clear error as one that refuses the log's files."""
    from sqlfence.errors import AuditError

    roster_path(audit_dir, "audit").mkdir(parents=True)
    with pytest.raises(AuditError, match="cannot open the audit log"):
        AuditLog(AuditSettings(directory=audit_dir))
    assert not list(audit_dir.glob("*.jsonl.tmp"))
    os.rmdir(roster_path(audit_dir, "audit"))


def test_a_live_log_with_two_writers_verifies(audit_dir: Path) -> None:
    """Read while both writers are open (one enrolled, nothing written since): ok."""
    settings = AuditSettings(directory=audit_dir)
    with AuditLog(settings) as first:
        first.emit("sandbox.step")
        first.flush()
        with AuditLog(settings) as second:
            second.emit("sandbox.step")
            second.flush()
            result = verify(audit_dir)
            assert result.ok, result
            assert set(result.chains) == {"audit", second.chain}


def test_a_chain_from_another_directory_with_the_same_key_fails(tmp_path: Path) -> None:
    """Two directories share a key: one's log and head put in place of the other's (its
    roster kept) is a chain written elsewhere."""
    here, there = tmp_path / "here" / "audit", tmp_path / "there" / "audit"
    for directory, events in ((here, 9), (there, 2)):
        with AuditLog(AuditSettings(directory=directory, key=KEY.decode())) as log:
            for n in range(events):
                log.emit("sandbox.step", details={"n": n})
    for path in [*chain_files(here, "audit"), head_path(here, "audit")]:
        path.unlink()
    for path in [*chain_files(there, "audit"), head_path(there, "audit")]:
        shutil.copy(path, here / path.name)
    result = verify(here, KEY)
    assert result.first_error is not None
    assert result.first_error.kind == "inserted"
    assert "written in another directory" in result.first_error.message


def test_a_single_chain_deleted_whole_and_written_again_fails(audit_dir: Path) -> None:
    """The attack: log and head deleted, roster kept, then the application writes again."""
    with AuditLog(AuditSettings(directory=audit_dir)) as log:
        for n in range(50):
            log.emit("sandbox.step", details={"n": n})
    _delete_chain(audit_dir, "audit")
    assert not verify(audit_dir).ok
    with AuditLog(AuditSettings(directory=audit_dir)) as log:
        log.emit("sandbox.step")
    result = verify(audit_dir)
    assert result.first_error is not None
    assert "files and head are gone" in result.first_error.message

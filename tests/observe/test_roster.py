"""The roster of a directory's chains (sqlfence/observe/roster.py): a chain of another
process deleted whole, files and head, fails verify; so does a deleted, forged or older
roster. Logs from before rosters still verify."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from sqlfence.cli import main as cli_main
from sqlfence.observe.audit import AuditLog
from sqlfence.observe.filesink import chain_files
from sqlfence.observe.head import Head, head_path, write_head
from sqlfence.observe.integrity import Chain, Signer
from sqlfence.observe.roster import BadRoster, base_of, enroll, read_roster, roster_path
from sqlfence.observe.settings import AuditSettings
from sqlfence.observe.verify import MISSING, verify

KEY = b"roster-test-key-of-the-audit-chain"
SIGNER = Signer(KEY)
ENV_KEY = b"test-key-of-the-audit-chain"  # the audit_dir fixture's $SQLFENCE_AUDIT_KEY


def _two_chains(directory: Path, events: int = 5) -> str:
    """A closed log with two chains, as two processes leave it; the second chain's name."""
    settings = AuditSettings(directory=directory)
    with AuditLog(settings) as first, AuditLog(settings) as second:
        assert second.chain != first.chain  # the chain lock is taken: a chain of its own
        for n in range(events):
            first.emit("sandbox.step", details={"n": n})
            second.emit("sandbox.step", details={"n": n})
        return second.chain


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
        body = {"seq": seq, "event_type": "audit.open", "prev": chain.prev, "details": {}}
        if seq == 1:
            body["details"] = {"head": "audit.head"}
        lines.append(chain.sign(json.dumps(body, separators=(",", ":")).encode()))
    (directory / name).write_bytes(b"".join(lines))
    write_head(head_path(directory, "audit"), Head("audit", 3, chain.prev, name), Signer(KEY))


def test_a_roster_reads_back_only_with_its_key(tmp_path: Path) -> None:
    """Enrolling writes a signed roster; another key, a changed byte or junk is BadRoster."""
    found = enroll(tmp_path, "audit", SIGNER, {})
    assert found == {"roster": "audit.chains"}
    enroll(tmp_path, "audit.p7", SIGNER, {"audit": 3})
    path = roster_path(tmp_path, "audit")
    assert read_roster(path, SIGNER) == {"audit", "audit.p7"}
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    with pytest.raises(BadRoster, match="not signed with this key"):
        read_roster(path, Signer(b"another-key-of-the-audit-chain"))
    path.write_bytes(path.read_bytes().replace(b"audit.p7", b"audit.p8"))
    with pytest.raises(BadRoster):
        read_roster(path, SIGNER)
    for junk in (b"not json", b'{"chains": "audit", "sig": "x"}', b'{"chains": [1]}'):
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
    assert listed == {"audit", second}


def _older_roster(directory: Path, chain: str) -> None:
    """Put back the roster as it was before ``chain`` enrolled, keeping that chain."""
    path = roster_path(directory, "audit")
    path.unlink()
    enroll(directory, "audit", Signer(ENV_KEY), {})


DAMAGE: dict[str, Callable[[Path, str], None]] = {
    "second chain deleted whole": _delete_chain,
    "first chain deleted whole": lambda d, c: _delete_chain(d, "audit"),
    "second chain's files deleted, head kept": lambda d, c: _delete_chain(d, c, head=False),
    "roster deleted": lambda d, c: roster_path(d, "audit").unlink(),
    "roster and second chain deleted": lambda d, c: (
        _delete_chain(d, c),
        roster_path(d, "audit").unlink(),
    ),
    "roster forged": lambda d, c: roster_path(d, "audit").write_text(
        '{"chains":["audit"],"sig":"' + "0" * 64 + '"}\n'
    ),
    "roster from before the second chain": _older_roster,
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_a_deleted_chain_or_roster_fails_verify(audit_dir: Path, damage: str) -> None:
    second = _two_chains(audit_dir)
    DAMAGE[damage](audit_dir, second)
    result = verify(audit_dir)
    assert not result.ok, damage
    assert result.first_error is not None
    assert result.first_error.kind in (MISSING, "altered"), result.first_error


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
    assert result.first_error.missing == 7
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

"""What the audit log keeps when its process dies or leaves (sqlfence/observe/audit.py, the
durability contract): real processes through sqlfence.connect, killed with SIGKILL or
exiting without close, and two processes writing one directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sqlfence.observe.audit import AuditLog
from sqlfence.observe.filesink import chain_files
from sqlfence.observe.settings import AuditSettings
from sqlfence.observe.verify import verify
from tests.observe.audit_child import Child
from tests.observe.conftest import audit_events

KEY = "crash-test-key-of-the-audit-chain"
ENV = {"SQLFENCE_AUDIT_KEY": KEY}
STATEMENTS = ("query", "slow_query")


def _recorded(directory: Path, prefix: str = "audit") -> list[int]:
    """The parameter of every statement event of a chain, in log order."""
    return [
        e["params"][0]
        for e in audit_events(directory, prefix)
        if e["event_type"] in STATEMENTS and e.get("params")
    ]


def _acknowledged_until_killed(child: Child, count: int) -> set[int]:
    """Let the child run statements; SIGKILL it after ``count`` acknowledgements. Every
    statement it acknowledged, including those still in the pipe when it died."""
    assert child.ask("connect") == "ok"
    child.send("loop")
    acknowledged: set[int] = set()
    while len(acknowledged) < count:
        line = child.answer()
        assert line.startswith("ok "), line
        acknowledged.add(int(line.split()[1]))
    for line in child.kill():
        if line.startswith("ok "):
            acknowledged.add(int(line.split()[1]))
    return acknowledged


def _reopen(directory: Path) -> None:
    """Open and close the log again, as the next process would (a torn tail is cut)."""
    with AuditLog(AuditSettings(directory=directory, key=KEY)):
        pass


def test_sigkill_in_sync_durability_loses_no_acknowledged_statement(tmp_path: Path) -> None:
    """With durability=sync, a SIGKILL after N acknowledged statements loses none of them."""
    audit = tmp_path / "audit"
    settings = {"directory": str(audit), "durability": "sync", "log_params": True}
    child = Child(tmp_path / "shop.db", settings, ENV)
    acknowledged = _acknowledged_until_killed(child, 300)
    _reopen(audit)
    recorded = _recorded(audit)
    assert acknowledged - set(recorded) == set()
    assert len(recorded) == len(set(recorded))
    result = verify(audit, key=KEY)
    assert result.ok, result


def test_sigkill_in_batched_durability_stays_within_its_window(tmp_path: Path) -> None:
    """With the default batched durability a SIGKILL loses at most queue_size + batch_size
    acknowledged statements, and only the newest: what was written is a prefix."""
    audit = tmp_path / "audit"
    queue_size, batch_size = 256, 64
    settings: dict[str, Any] = {
        "directory": str(audit),
        "log_params": True,
        "queue_size": queue_size,
        "batch_size": batch_size,
    }
    child = Child(tmp_path / "shop.db", settings, ENV)
    acknowledged = _acknowledged_until_killed(child, 3000)
    _reopen(audit)
    recorded = _recorded(audit)
    lost = acknowledged - set(recorded)
    assert len(lost) <= queue_size + batch_size, len(lost)
    assert recorded == list(range(1, len(recorded) + 1))  # in order, none skipped
    assert all(n > len(recorded) for n in lost)
    result = verify(audit, key=KEY)
    assert result.ok, result


def test_leaving_without_close_writes_everything_queued(tmp_path: Path) -> None:
    """A process that exits without closing its connection still leaves every statement,
    the disconnection and the closing event on disk, and says nothing on stderr."""
    audit = tmp_path / "audit"
    child = Child(tmp_path / "shop.db", {"directory": str(audit), "log_params": True}, ENV)
    assert child.ask("connect") == "ok"
    for _ in range(2000):
        child.send("stmt")
    answers = [child.answer() for _ in range(2000)]
    assert answers[-1] == "ok 2000"
    child.send("exit")
    assert child.finish() == 0
    assert "lost" not in child.stderr
    assert _recorded(audit) == list(range(1, 2001))
    events = audit_events(audit)
    assert events[-1]["event_type"] == "audit.close"
    assert events[-1]["details"]["lost"] == 0
    assert verify(audit, key=KEY).ok


def test_two_processes_on_one_directory_keep_two_intact_chains(tmp_path: Path) -> None:
    """Two processes auditing one directory at once write two chains with a head each;
    both verify, and cutting the end of one fails verify with the number missing."""
    audit = tmp_path / "audit"
    settings = {"directory": str(audit), "log_params": True}
    children = [Child(tmp_path / f"shop{n}.db", settings, ENV) for n in range(2)]
    for child in children:
        assert child.ask("connect") == "ok"
    for child in children:
        for _ in range(500):
            child.send("stmt")
    for child in children:
        assert [child.answer() for _ in range(500)][-1] == "ok 500"
        assert child.ask("close") == "closed"
        assert child.finish() == 0
    result = verify(audit, key=KEY)
    assert result.ok, result
    assert len(result.chains) == 2
    for prefix in result.chains:
        assert _recorded(audit, prefix) == list(range(1, 501))
        assert (audit / f"{prefix}.head").exists()
    newest = chain_files(audit, result.chains[1])[-1]
    lines = newest.read_bytes().splitlines(keepends=True)
    newest.write_bytes(b"".join(lines[:-4]))
    cut = verify(audit, key=KEY)
    assert not cut.ok
    assert cut.first_error is not None
    assert (cut.first_error.kind, cut.first_error.missing) == ("missing", 4)


@pytest.fixture(autouse=True)
def _no_key_from_the_session(monkeypatch: pytest.MonkeyPatch) -> None:
    """These children get their key from ENV; the tests read with KEY."""
    monkeypatch.setenv("SQLFENCE_AUDIT_KEY", KEY)

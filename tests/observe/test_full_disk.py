"""A full disk under a real audit log (sqlfence/observe/audit.py, outbox.py, integrity.py):
a small tmpfs mounted by the test, filled while a real process runs statements.

Statements fail closed with the cause and never hang; connect and close never hang; once
space returns the chain continues and verifies. Mounting needs root: CI runs as root, and
there (CI=true) a mount that fails is a failure, not a skip.
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from sqlfence.observe.verify import verify
from tests.observe.audit_child import Child
from tests.observe.conftest import audit_events

KEY = "full-disk-key-of-the-audit-chain"
NO_SPACE = "No space left on device"
TRIES = 100_000  # statements before the disk must have filled (a bound, not a timing)


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs mounted for this test, unmounted after it (idempotently)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount = tmp_path / "tmpfs"
    mount.mkdir()
    try:
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", str(mount)],
            capture_output=True,
            text=True,
            check=False,
        )
        refused = (done.stderr.strip() or f"exit {done.returncode}") if done.returncode else ""
    except OSError as error:  # no mount(8) at all
        refused = str(error)
    if refused:
        message = f"cannot mount a tmpfs as root: {refused}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    try:
        yield mount
    finally:
        if subprocess.run(["umount", str(mount)], capture_output=True, check=False).returncode:
            subprocess.run(["umount", "-l", str(mount)], capture_output=True, check=False)


def _fill(directory: Path) -> Path:
    """Fill the file system of ``directory``; the filler file (delete it to make space)."""
    filler = directory / "filler"
    with filler.open("wb", buffering=0) as handle:
        with contextlib.suppress(OSError):
            while True:
                handle.write(b"\0" * 4096)
        with contextlib.suppress(OSError):
            while True:
                handle.write(b"\0")
    return filler


def _statements_until_refused(child: Child) -> list[str]:
    """Run statements until one fails; every answer up to and including the failure."""
    answers = []
    for _ in range(TRIES):
        answers.append(child.ask("stmt"))
        if answers[-1].startswith("err "):
            return answers
    raise AssertionError(f"{TRIES} statements ran on a full disk without an error")


def _statements_until_accepted(child: Child) -> list[str]:
    """Run statements until one succeeds (the writer retries at least every 2 s)."""
    answers = []
    for _ in range(TRIES):
        answers.append(child.ask("stmt"))
        if answers[-1].startswith("ok "):
            return answers
    raise AssertionError("statements still fail after space returned")


def _recorded(directory: Path) -> list[int]:
    return [
        e["params"][0]
        for e in audit_events(directory)
        if e["event_type"] in ("query", "slow_query") and e.get("params")
    ]


def _acknowledged(answers: list[str]) -> set[int]:
    return {int(a.split()[1]) for a in answers if a.startswith("ok ")}


@pytest.mark.parametrize("durability", ["batched", "sync"])
def test_a_full_disk_fails_statements_then_the_chain_goes_on(
    tmpfs: Path, tmp_path: Path, durability: str
) -> None:
    """Statements on a full disk raise OperationalError naming the cause (fail closed);
    later ones are refused before reaching the database; once space returns statements run
    again, every acknowledged one is in the log once, and the chain verifies."""
    audit = tmpfs / "audit"
    settings = {"directory": str(audit), "durability": durability, "log_params": True}
    child = Child(tmp_path / "shop.db", settings, {"SQLFENCE_AUDIT_KEY": KEY})
    assert child.ask("connect") == "ok"
    answers = [child.ask("stmt") for _ in range(5)]
    filler = _fill(tmpfs)
    answers += _statements_until_refused(child)
    failure = answers[-1]
    assert "AuditError" in failure
    assert NO_SPACE in failure
    refused = [child.ask("stmt") for _ in range(3)]
    assert all(a.startswith("err ") and " False " in a and NO_SPACE in a for a in refused)
    filler.unlink()
    answers += _statements_until_accepted(child)
    answers += [child.ask("stmt") for _ in range(5)]
    assert child.ask("close") == "closed"
    assert child.finish() == 0
    recorded = _recorded(audit)
    assert len(recorded) == len(set(recorded))  # nothing written twice
    assert _acknowledged(answers) <= set(recorded)
    events = audit_events(audit)
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert [e["event_type"] for e in events].count("audit.recovered") == 1
    result = verify(audit, key=KEY)
    assert result.ok, result


def test_connect_on_a_full_disk_fails_at_once_and_works_later(tmpfs: Path, tmp_path: Path) -> None:
    """connect() with the disk already full raises OperationalError with the cause instead of
    hanging; once space returns it works and the chain verifies."""
    audit = tmpfs / "audit"
    child = Child(tmp_path / "shop.db", {"directory": str(audit)}, {"SQLFENCE_AUDIT_KEY": KEY})
    audit.mkdir()
    filler = _fill(tmpfs)
    refused = child.ask("connect")
    assert refused.startswith("err ")
    assert NO_SPACE in refused
    filler.unlink()
    assert child.ask("connect") == "ok"
    assert child.ask("stmt") == "ok 1"
    assert child.ask("close") == "closed"
    assert child.finish() == 0
    result = verify(audit, key=KEY)
    assert result.ok, result


def test_a_key_file_is_never_left_empty(tmpfs: Path, tmp_path: Path) -> None:
    """With no key anywhere and the disk full, connect fails naming the key file; no empty
    or partial key is left behind, and the key made once space returns is whole."""
    audit = tmpfs / "audit"
    audit.mkdir()
    env = {"SQLFENCE_AUDIT_KEY": ""}
    child = Child(tmp_path / "shop.db", {"directory": str(audit)}, env)
    filler = _fill(tmpfs)
    refused = child.ask("connect")
    assert refused.startswith("err ")
    assert "audit.key" in refused
    assert NO_SPACE in refused
    assert not (audit / "audit.key").exists()
    assert list(audit.iterdir()) == []  # no temporary file either
    filler.unlink()
    assert child.ask("connect") == "ok"
    assert child.ask("close") == "closed"
    assert child.finish() == 0
    key = (audit / "audit.key").read_bytes().strip()
    assert len(key) == 64
    assert verify(audit).ok


@pytest.mark.parametrize("leave", ["close", "exit"])
def test_leaving_while_the_disk_is_full_never_hangs_and_says_what_is_lost(
    tmpfs: Path, tmp_path: Path, leave: str
) -> None:
    """close() while the writer retries returns; leaving with unwritten events says on
    stderr how many were lost; what was written still verifies."""
    audit = tmpfs / "audit"
    settings = {"directory": str(audit), "log_params": True}
    child = Child(tmp_path / "shop.db", settings, {"SQLFENCE_AUDIT_KEY": KEY})
    assert child.ask("connect") == "ok"
    _fill(tmpfs)
    _statements_until_refused(child)
    if leave == "close":
        assert child.ask("close") == "closed"
    child.send("exit")
    assert child.finish() == 0
    assert "events could not be written" in child.stderr
    assert NO_SPACE in child.stderr
    result = verify(audit, key=KEY)
    assert result.ok, result


def test_the_tmpfs_really_is_full(tmpfs: Path) -> None:
    """The fixture's file system refuses writes once filled (what the tests rely on)."""
    _fill(tmpfs)
    with pytest.raises(OSError, match="No space left") as raised:
        (tmpfs / "more").write_bytes(b"x" * 8192)
    assert raised.value.errno == errno.ENOSPC

"""Crash-safe cleanup: the registry finds what dead or expired owners left; reap() removes it."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import asdict, replace
from pathlib import Path

import pytest

from sqlfence.sandbox import AgentSandbox, Owner, Record, Registry, listing, naming, reap
from sqlfence.sandbox.backends.postgres import PostgresBackend
from sqlfence.sandbox.registry import reap as reap_records
from tests.postgres_server import PostgresServer
from tests.sandbox.conftest import signal_when_ready

_CHILD = textwrap.dedent(
    """
    import os, sys, time
    from sqlfence.sandbox import AgentSandbox
    root, backend, server = sys.argv[1], sys.argv[2], sys.argv[3] or None
    kept = []
    for i in range(3):
        sb = AgentSandbox.create(agent_id=f"child{i}", backend=backend, server_url=server,
                                 root=root)
        with sb.get_connection() as conn:
            conn.execute("CREATE TABLE t (a integer)")
        sb.create_snapshot("s")
        kept.append(sb)
    print("ready", flush=True)
    time.sleep(600)
    """
)


def _dead_owner() -> Owner:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    return replace(Owner.current(), pid=int(done.stdout))


def test_reap_leaves_live_sandboxes_alone(root: Path) -> None:
    """A sandbox whose owner (this process) is alive and unexpired survives reap()."""
    with AgentSandbox.create(agent_id="a1", root=root) as sb:
        assert reap(root) == []
        assert [record.name for record in listing(root)] == [sb.name]


def test_reap_removes_expired_sandboxes(root: Path) -> None:
    """A sandbox past its TTL is removed by reap(), even with its owner alive."""
    sb = AgentSandbox.create(agent_id="a1", root=root, ttl=0)
    assert reap(root) == [sb.name]
    assert not Path(sb.namespace.location).exists()
    sb.destroy()  # idempotent after the reaper got there first


def test_reap_removes_sandboxes_of_dead_owners(root: Path) -> None:
    """A record whose owning pid is gone is reaped together with its file and snapshots."""
    sb = AgentSandbox.create(agent_id="a1", root=root)
    sb.create_snapshot("s")
    registry = Registry(root)
    record = registry.get(sb.name)
    assert record is not None
    registry.put(replace(record, owner=_dead_owner()))
    assert reap(root) == [sb.name]
    assert not Path(sb.namespace.location).exists()
    assert not sb.snapshots.directory.exists()
    sb.destroy()


def test_reused_pid_does_not_keep_a_sandbox(root: Path) -> None:
    """Same pid but another process start time means the owner is gone."""
    sb = AgentSandbox.create(agent_id="a1", root=root)
    registry = Registry(root)
    record = registry.get(sb.name)
    assert record is not None
    assert record.owner.started is not None
    registry.put(replace(record, owner=replace(record.owner, started=record.owner.started - 1)))
    assert reap(root) == [sb.name]
    sb.destroy()


def test_sigkilled_child_leaves_nothing_sqlite(root: Path) -> None:
    """SQLite sandboxes of a SIGKILLed process are all removed by reap()."""
    signal_when_ready(_CHILD, str(root), "sqlite", "")
    assert len(listing(root)) == 3
    assert len(reap(root)) == 3
    assert listing(root) == []


@pytest.mark.postgres
def test_sigkilled_child_leaves_nothing_postgres(
    postgres_server: PostgresServer, root: Path
) -> None:
    """Databases, roles and clones of a SIGKILLed process are all removed by reap()."""
    signal_when_ready(_CHILD, str(root), "postgres", postgres_server.url)
    backend = PostgresBackend(postgres_server.url)
    try:
        assert len(backend.names()) == 3
        assert len(reap(root)) == 3
        assert backend.names() == []
        assert backend.roles() == []
        query = "SELECT count(*) FROM pg_database WHERE datname ~ %s"
        assert backend._query(query, (naming.PATTERN,)) == [(0,)]
    finally:
        backend.close()


@pytest.mark.slow
def test_200_cycles_sqlite(root: Path) -> None:
    """200 create/use/destroy cycles leave no file behind."""
    for i in range(200):
        with AgentSandbox.create(agent_id=f"c{i}", root=root) as sb, sb.get_connection() as c:
            c.execute("CREATE TABLE t (a integer)")
    assert list((root / "sandboxes").iterdir()) == []


@pytest.mark.slow
@pytest.mark.postgres
def test_100_cycles_postgres(postgres_server: PostgresServer, root: Path) -> None:
    """100 create/use/destroy cycles leave no database or role behind."""
    url = postgres_server.url
    for i in range(100):
        with (
            AgentSandbox.create(
                agent_id=f"c{i}", backend="postgres", server_url=url, root=root
            ) as sb,
            sb.get_connection() as conn,
        ):
            conn.execute("CREATE TABLE t (a integer)")
    backend = PostgresBackend(url)
    try:
        assert backend.names() == []
        assert backend.roles() == []
    finally:
        backend.close()


def test_sigterm_cleans_up_without_the_reaper(root: Path) -> None:
    """A SIGTERMed process destroys its own sandboxes on the way out (no gc needed)."""
    signal_when_ready(_CHILD, str(root), "sqlite", "", signum=signal.SIGTERM)
    assert listing(root) == []


def test_an_older_versions_registry_folder_is_narrowed(root: Path) -> None:
    """A registry folder made 0755 before is 0700 after the next write; the root is left."""
    (root / "registry").mkdir(parents=True)
    for where in (root, root / "registry"):
        where.chmod(0o755)
    with AgentSandbox.create(agent_id="a1", root=root):
        assert (root / "registry").stat().st_mode & 0o777 == 0o700
        assert root.stat().st_mode & 0o777 == 0o755


def test_an_older_versions_record_files_are_moved_into_the_registry(root: Path) -> None:
    """Upgrading leaks nothing: a JSON record per sandbox, as an older version left them, is
    listed, the dead owner's sandbox is reaped, the live one's kept, and the files are gone."""
    dead = AgentSandbox.create(agent_id="dead", root=root)
    live = AgentSandbox.create(agent_id="live", root=root)
    registry = Registry(root)
    folder = root / "registry"
    for sb, owner in ((dead, _dead_owner()), (live, Owner.current())):
        record = registry.get(sb.name)
        assert record is not None
        registry.remove(sb.name)
        (folder / f"{sb.name}.json").write_text(json.dumps(asdict(replace(record, owner=owner))))
    (folder / ".half.99999999.tmp").write_text("{")  # a writer killed mid-write, pid gone
    assert registry.get("AGENT_NOBODY") is None

    assert sorted(record.name for record in listing(root)) == sorted([dead.name, live.name])
    assert list(folder.glob("*.json")) == []
    assert reap(root) == [dead.name]
    assert not Path(dead.namespace.location).exists()
    assert [record.name for record in listing(root)] == [live.name]
    assert list(folder.glob(".*.tmp")) == []
    live.destroy()
    dead.destroy()


_WRITER = textwrap.dedent(
    """
    import sys, time
    from sqlfence.sandbox.registry import Owner, Record, Registry
    root, prefix = sys.argv[1], sys.argv[2]
    registry = Registry(root)
    for i in range(200):
        registry.put(Record(name=f"{prefix}{i}", backend="sqlite", agent_id="w", tenant=None,
                            owner=Owner.current(), created_at=time.time(), expires_at=None,
                            location=""))
        if i % 2:
            registry.remove(f"{prefix}{i}")
    """
)


def test_two_processes_share_one_registry(root: Path) -> None:
    """Two processes writing and removing at once lose nothing: each write is atomic."""
    writers = [
        subprocess.Popen([sys.executable, "-c", _WRITER, str(root), prefix])
        for prefix in ("AGENT_P_", "AGENT_Q_")
    ]
    assert [writer.wait() for writer in writers] == [0, 0]
    names = {record.name for record in listing(root)}
    assert names == {
        f"{prefix}{i}" for prefix in ("AGENT_P_", "AGENT_Q_") for i in range(0, 200, 2)
    }
    assert len(reap(root)) == 200  # both writers are gone: gc finds all they left
    assert listing(root) == []


_OPENER = textwrap.dedent(
    """
    import sys, time
    from sqlfence.sandbox.registry import Owner, Record, Registry
    root, name, start = sys.argv[1], sys.argv[2], float(sys.argv[3])
    time.sleep(max(0.0, start - time.time()))  # every process opens the new registry at once
    Registry(root).put(Record(name=name, backend="sqlite", agent_id="w", tenant=None,
                              owner=Owner.current(), created_at=time.time(), expires_at=None,
                              location=""))
    """
)


def test_processes_making_the_registry_at_once_all_get_in(root: Path) -> None:
    """A registry that does not exist yet, opened by eight processes in the same instant:
    SQLite answers the journal-mode change with "database is locked" at once, which is
    waited out, not raised."""
    start = time.time() + 1.0
    openers = [
        subprocess.Popen([sys.executable, "-c", _OPENER, str(root), f"AGENT_O_{i}", str(start)])
        for i in range(8)
    ]
    assert [opener.wait(timeout=60) for opener in openers] == [0] * 8
    assert {record.name for record in listing(root)} == {f"AGENT_O_{i}" for i in range(8)}
    reap(root, everything=True)


def test_a_locked_answer_at_open_is_waited_out_and_other_errors_are_not() -> None:
    """SQLite's immediate "database is locked" (two processes changing a new database's
    journal mode at once) is tried again; any other error is raised at once."""
    import sqlite3

    from sqlfence.sandbox.registry import while_locked

    answers = [sqlite3.OperationalError("database is locked")] * 2
    calls: list[int] = []

    def step() -> None:
        calls.append(1)
        if answers:
            raise answers.pop()

    while_locked(step)
    assert len(calls) == 3
    with pytest.raises(sqlite3.OperationalError, match="disk I/O error"):
        while_locked(lambda: (_ for _ in ()).throw(sqlite3.OperationalError("disk I/O error")))


def test_gc_reads_only_what_it_removes(root: Path) -> None:
    """reap() drops what is expired or orphaned among many live records and leaves the rest."""
    registry = Registry(root)
    now = time.time()
    alive, gone = Owner.current(), _dead_owner()
    for i in range(300):
        owner = gone if i % 100 == 0 else alive
        expires = now - 1 if i % 100 == 1 else None
        registry.put(Record(name=f"AGENT_G_{i}", backend="sqlite", agent_id="g", tenant=None,
                            owner=owner, created_at=now + i, expires_at=expires,
                            location=""))  # fmt: skip
    doomed = [record.name for record in registry.doomed()]
    assert doomed == [f"AGENT_G_{i}" for i in (0, 1, 100, 101, 200, 201)]
    dropped: list[str] = []
    assert reap_records(registry, lambda record: dropped.append(record.name)) == doomed
    assert dropped == doomed
    assert len(registry.records()) == 294
    reap_records(registry, lambda record: None, everything=True)

"""AgentSandbox on SQLite: the embedded default, real files, no server."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

import sqlfence
from sqlfence.sandbox import AgentSandbox, SnapshotCorrupt
from tests.sandbox.conftest import count_rows, flip_byte, wide_modes


def _fill(sb: AgentSandbox, rows: int = 10) -> None:
    with sb.get_connection() as conn:
        conn.execute("CREATE TABLE entities (id INTEGER PRIMARY KEY, name TEXT)")
        conn.execute("CREATE TABLE secrets (id INTEGER PRIMARY KEY, value TEXT)")
        conn.cursor().executemany(
            "INSERT INTO entities (id, name) VALUES (?, ?)", [(i, f"e{i}") for i in range(rows)]
        )


def test_create_use_destroy(root: Path) -> None:
    """A sandbox is a file the agent can build tables in, and nothing is left after exit."""
    with AgentSandbox.create(agent_id="a1", root=root) as sb:
        _fill(sb)
        assert count_rows(sb) == 10
        assert Path(sb.namespace.location).is_file()
        assert sb.name.startswith("AGENT_A1_")
    assert not Path(sb.namespace.location).exists()
    assert sb.state == "destroyed"


def test_every_file_is_private_from_the_start(root: Path) -> None:
    """Even with umask 0: the root, registry, namespace and snapshot folders are 0700 and
    every file in them (databases, journals, records, manifests) is 0600."""
    previous = os.umask(0)
    try:
        with AgentSandbox.create(agent_id="a1", root=root) as sb:
            _fill(sb)
            sb.create_snapshot("own")
            sb.create_snapshot("golden", shared=True)
            conn = sb.get_connection()
            conn.execute("DELETE FROM entities")  # an open write: its journal exists
            assert [*(root / "sandboxes").glob("*-journal"), *(root / "sandboxes").glob("*-wal")]
            assert wide_modes(root) == []
            conn.rollback()
            conn.close()
            sb.restore_snapshot("own")
            assert wide_modes(root) == []
    finally:
        os.umask(previous)


def test_destroy_is_idempotent_and_closes_connections(root: Path) -> None:
    """destroy() twice is fine, and open fence connections are closed by it."""
    sb = AgentSandbox.create(agent_id="a1", root=root)
    conn = sb.get_connection()
    sb.destroy()
    sb.destroy()
    assert conn.closed
    with pytest.raises(sqlfence.SandboxError, match="destroyed"):
        sb.get_connection()


def test_exception_in_block_still_destroys(root: Path) -> None:
    """An exception inside the with-block still removes the namespace."""
    with pytest.raises(RuntimeError), AgentSandbox.create(agent_id="a1", root=root) as sb:
        raise RuntimeError("agent crashed")
    assert not Path(sb.namespace.location).exists()


def test_access_policy_keys_of_the_design_report(root: Path) -> None:
    """deny_tables and max_row_limit from access_policy are enforced by the fence."""
    with AgentSandbox.create(agent_id="maker", root=root) as sb:
        _fill(sb)
        sb.create_snapshot("seed", shared=True)
    policy = {"read_only": False, "deny_tables": ["secrets"], "max_row_limit": 3}
    with (
        AgentSandbox.create(
            agent_id="a1", root=root, access_policy=policy, load_snapshot="seed"
        ) as sb,
        sb.get_connection() as conn,
    ):
        assert len(conn.execute("SELECT * FROM entities").fetchall()) == 3
        with pytest.raises(sqlfence.PolicyViolation, match="secrets"):
            conn.execute("SELECT * FROM secrets")


def test_read_only_sandbox_refuses_writes(root: Path) -> None:
    """A read-only access policy refuses DDL and writes in the sandbox."""
    policy = {"read_only": True}
    with (
        AgentSandbox.create(agent_id="a1", root=root, access_policy=policy) as sb,
        sb.get_connection() as conn,
        pytest.raises(sqlfence.PolicyViolation),
    ):
        conn.execute("CREATE TABLE t (a INTEGER)")


def test_side_doors_stay_closed(root: Path) -> None:
    """A writable sandbox still refuses ATTACH and PRAGMA (another file is not its own)."""
    with AgentSandbox.create(agent_id="a1", root=root) as sb, sb.get_connection() as conn:
        with pytest.raises(sqlfence.PolicyViolation):
            conn.execute("ATTACH DATABASE '/tmp/other.db' AS other")
        with pytest.raises(sqlfence.PolicyViolation):
            conn.execute("PRAGMA query_only = OFF")


def test_max_connections_is_enforced_by_the_fence(root: Path) -> None:
    """The connection after max_connections is refused until one is closed."""
    with AgentSandbox.create(agent_id="a1", root=root, limits={"max_connections": 2}) as sb:
        first, _second = sb.get_connection(), sb.get_connection()
        with pytest.raises(sqlfence.QuotaExceeded, match="max_connections"):
            sb.get_connection()
        first.close()
        sb.get_connection().close()


def test_ttl_expiry_refuses_work(root: Path) -> None:
    """A sandbox past its TTL refuses new connections and reports itself expired."""
    with AgentSandbox.create(agent_id="a1", root=root, ttl=0) as sb:
        assert sb.state == "expired"
        with pytest.raises(sqlfence.SandboxError, match="expired"):
            sb.get_connection()


def test_pause_refuses_statements_and_connections(root: Path) -> None:
    """While paused, open connections refuse statements and no new ones are given out."""
    with AgentSandbox.create(agent_id="a1", root=root) as sb:
        _fill(sb)
        conn = sb.get_connection()
        sb.pause()
        with pytest.raises(sqlfence.SandboxError, match="paused"):
            conn.execute("SELECT 1")
        with pytest.raises(sqlfence.SandboxError, match="paused"):
            sb.get_connection()
        sb.resume()
        assert conn.execute("SELECT count(*) FROM entities").fetchone()[0] == 10
        conn.close()


def test_disk_quota_denies_writes_and_allows_reads(root: Path) -> None:
    """Over disk_quota_mb, writes raise QuotaExceeded, reads work, and an event fires."""
    events: list[dict[str, Any]] = []
    limits = {"disk_quota_mb": 0.05}
    with AgentSandbox.create(agent_id="a1", root=root, limits=limits, on_event=events.append) as sb:
        with sb.get_connection() as conn:
            conn.execute("CREATE TABLE blobs (b TEXT)")
            conn.execute("INSERT INTO blobs VALUES (?)", ("x" * 200_000,))
        with sb.get_connection() as conn:
            with pytest.raises(sqlfence.QuotaExceeded, match="disk quota"):
                conn.execute("INSERT INTO blobs VALUES ('y')")
            assert conn.execute("SELECT count(*) FROM blobs").fetchone()[0] == 1
        assert sb.get_metrics()["over_quota"] is True
        with sb.get_connection() as conn:  # what frees space still runs, and gets it under
            conn.execute("DELETE FROM blobs")
        assert sb.check_quota() is False
        with sb.get_connection() as conn:
            conn.execute("INSERT INTO blobs VALUES ('y')")
    kinds = [event["event"] for event in events]
    assert "sandbox.quota_exceeded" in kinds
    assert "sandbox.quota_ok" in kinds


def test_quota_terminate_destroys_the_sandbox(root: Path) -> None:
    """on_quota='terminate' destroys the sandbox at the first write over quota."""
    limits = {"disk_quota_mb": 0.05, "on_quota": "terminate"}
    with AgentSandbox.create(agent_id="a1", root=root, limits=limits) as sb:
        with sb.get_connection() as conn:
            conn.execute("CREATE TABLE blobs (b TEXT)")
            conn.execute("INSERT INTO blobs VALUES (?)", ("x" * 200_000,))
        conn = sb.get_connection()
        with pytest.raises(sqlfence.QuotaExceeded):
            conn.execute("INSERT INTO blobs VALUES ('y')")
        assert sb.state == "destroyed"


def test_snapshot_modify_restore(root: Path) -> None:
    """Restoring a snapshot brings back the data as it was, with open connections."""
    with AgentSandbox.create(agent_id="a1", root=root) as sb:
        _fill(sb)
        manifest = sb.create_snapshot("before")
        assert manifest.tables == {"entities": 10, "secrets": 0}
        with sb.get_connection() as conn:
            conn.execute("DELETE FROM entities")
        assert count_rows(sb) == 0
        sb.restore_snapshot("before")
        assert count_rows(sb) == 10
        assert [m.name for m in sb.list_snapshots()] == ["before"]
        sb.delete_snapshot("before")
        assert sb.list_snapshots() == []


def test_flipped_byte_is_refused_and_data_unchanged(root: Path) -> None:
    """A snapshot with one flipped byte is refused on restore; the sandbox keeps its data."""
    with AgentSandbox.create(agent_id="a1", root=root) as sb:
        _fill(sb)
        sb.create_snapshot("before")
        with sb.get_connection() as conn:
            conn.execute("DELETE FROM entities WHERE id < 4")
        data = sb.snapshots.path("before") / "data.sqlite"
        flip_byte(data)
        with pytest.raises(SnapshotCorrupt, match="SHA-256"):
            sb.restore_snapshot("before")
        assert count_rows(sb) == 6


def test_tampered_manifest_is_refused(root: Path) -> None:
    """Editing the manifest (even the table counts) breaks its checksum and is refused."""
    with AgentSandbox.create(agent_id="a1", root=root) as sb:
        _fill(sb)
        sb.create_snapshot("before")
        manifest = sb.snapshots.path("before") / "manifest.json"
        manifest.write_text(manifest.read_text().replace('"entities": 10', '"entities": 11'))
        with pytest.raises(SnapshotCorrupt):
            sb.restore_snapshot("before")


def test_missing_snapshot_is_a_clear_error(root: Path) -> None:
    """Restoring a snapshot that does not exist names it."""
    with (
        AgentSandbox.create(agent_id="a1", root=root) as sb,
        pytest.raises(sqlfence.SandboxError, match="no snapshot 'nope'"),
    ):
        sb.restore_snapshot("nope")


def test_shared_snapshot_is_a_golden_dataset(root: Path) -> None:
    """A shared snapshot outlives its sandbox and fills a new one at create time."""
    with AgentSandbox.create(agent_id="maker", root=root) as sb:
        _fill(sb, rows=25)
        sb.create_snapshot("golden", shared=True)
    with AgentSandbox.create(agent_id="user", root=root, load_snapshot="golden") as sb:
        assert count_rows(sb) == 25
    assert (root / "snapshots" / "golden" / "manifest.json").is_file()


def test_lifecycle_events_are_recorded(root: Path) -> None:
    """Every lifecycle step reaches on_event with the sandbox, agent and tenant."""
    events: list[dict[str, Any]] = []
    with AgentSandbox.create(agent_id="a1", tenant="acme", root=root, on_event=events.append) as sb:
        sb.get_connection().close()
        sb.create_snapshot("s")
        sb.restore_snapshot("s")
        sb.pause()
        sb.resume()
    kinds = [event["event"].removeprefix("sandbox.") for event in events]
    assert kinds == [
        "created", "connected", "snapshot_created", "snapshot_restored", "paused", "resumed",
        "destroyed",
    ]  # fmt: skip
    assert {event["tenant"] for event in events} == {"acme"}


def test_tenants_get_separate_files(root: Path) -> None:
    """Two tenants' sandboxes are different files with tenant-prefixed names."""
    with (
        AgentSandbox.create(agent_id="a1", tenant="acme", root=root) as one,
        AgentSandbox.create(agent_id="a1", tenant="globex", root=root) as two,
    ):
        _fill(one)
        assert one.name.startswith("TENANT_ACME_AGENT_A1_")
        assert one.namespace.location != two.namespace.location
        with two.get_connection() as conn, pytest.raises(sqlfence.Error):
            conn.execute("SELECT * FROM entities")


def test_lifecycle_goes_to_the_audit_log(root: Path, tmp_path: Path) -> None:
    """With audit=AuditLog, every lifecycle step is a sandbox.* event in the chained log."""
    import json

    from sqlfence.observe.audit import AuditLog
    from sqlfence.observe.settings import AuditSettings

    with AuditLog(AuditSettings(directory=tmp_path / "audit")) as log:
        with AgentSandbox.create(agent_id="a1", tenant="acme", root=root, audit=log) as sb:
            sb.create_snapshot("s")
        log.flush()
        lines = [
            json.loads(line)
            for file in sorted((tmp_path / "audit").glob("*.jsonl"))
            for line in file.read_text().splitlines()
        ]
    kinds = [line["event_type"] for line in lines if line.get("sandbox") == sb.name]
    assert kinds == ["sandbox.created", "sandbox.snapshot_created", "sandbox.destroyed"]
    assert AuditLog.verify(tmp_path / "audit")


def test_lifecycle_goes_to_the_audit_log_given_as_settings(root: Path, tmp_path: Path) -> None:
    """With audit= as settings (a directory, a mapping), the lifecycle is recorded too, in
    the same log as the connections' statements, and the log closes after the sandbox."""
    from sqlfence.observe.audit import AuditLog
    from tests.observe.conftest import audit_events

    for audit in (tmp_path / "by-path", {"directory": str(tmp_path / "by-mapping")}):
        directory = audit if isinstance(audit, Path) else Path(audit["directory"])
        with AgentSandbox.create(agent_id="a1", tenant="acme", root=root, audit=audit) as sb:
            with sb.get_connection() as conn:
                conn.execute("CREATE TABLE t (id INTEGER)")
            sb.create_snapshot("s")
        kinds = [event["event_type"] for event in audit_events(directory)]
        ours = [kind for kind in kinds if kind.startswith("sandbox.")]
        assert ours == [
            "sandbox.created", "sandbox.connected", "sandbox.snapshot_created",
            "sandbox.destroyed",
        ]  # fmt: skip
        assert kinds.index("disconnect") < kinds.index("sandbox.destroyed"), kinds
        assert kinds[-1] == "audit.close", kinds  # the sandbox held the log until destroyed
        assert AuditLog.verify(directory)


def test_a_failing_on_event_breaks_neither_the_sandbox_nor_the_audit_log(
    root: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The lifecycle's parts are handed each event in turn: an on_event that raises is
    logged, and the audit log after it still records every step."""
    from sqlfence.observe.audit import AuditLog
    from sqlfence.observe.settings import AuditSettings

    def broken(event: dict[str, Any]) -> None:
        raise RuntimeError(f"cannot take {event['event']}")

    with AuditLog(AuditSettings(directory=tmp_path / "audit")) as log:
        with AgentSandbox.create(agent_id="a1", root=root, audit=log, on_event=broken) as sb:
            sb.get_connection().close()
        found = log.query(event_type=("sandbox.created", "sandbox.connected", "sandbox.destroyed"))
    assert [event.event_type for event in found] == [
        "sandbox.created", "sandbox.connected", "sandbox.destroyed",
    ]  # fmt: skip
    assert {event.sandbox for event in found} == {sb.name}
    assert found[0].details == {"backend": "sqlite", "location": sb.namespace.location,
                                "expires_at": None}  # fmt: skip
    assert "the on_event part failed (1 times) on sandbox.created" in caplog.text

"""SandboxPool with embedded SQLite: warm acquire, reset on release, limits, cleanup."""

from __future__ import annotations

from pathlib import Path

import pytest

from sqlfence.sandbox import AgentSandbox, PoolTimeout, SandboxPool, listing


def _is_empty(sb: AgentSandbox) -> bool:
    # The fence denies the system catalog, so probe by creating what an agent made before.
    with sb.get_connection() as conn:
        conn.execute("CREATE TABLE secret (a integer)")
        conn.execute("DROP TABLE secret")
    return True


def test_acquire_hands_out_a_warm_sandbox_for_the_agent(root: Path) -> None:
    """A warmed pool serves acquire from idle sandboxes, labelled with the agent."""
    with SandboxPool(size=2, backend="sqlite", root=root) as pool:
        assert pool.metrics()["idle"] == 2
        with pool.acquire(agent_id="a1", tenant="acme") as sb:
            assert (sb.agent_id, sb.tenant) == ("a1", "acme")
            assert sb.state == "active"
        assert pool.metrics()["hits"] == 1


def test_release_resets_to_the_golden_snapshot(root: Path) -> None:
    """What one agent wrote is gone when the next agent gets the same sandbox."""
    with SandboxPool(size=1, max_size=1, backend="sqlite", root=root) as pool:
        with pool.acquire(agent_id="a1") as sb:
            with sb.get_connection() as conn:
                conn.execute("CREATE TABLE secret (a integer)")
            first = sb.name
        with pool.acquire(agent_id="a2") as sb:
            assert sb.name == first
            assert _is_empty(sb)


def test_golden_dataset_is_loaded_and_restored(root: Path) -> None:
    """With snapshot=..., every pooled sandbox starts from that shared snapshot."""
    with AgentSandbox.create(agent_id="seed", root=root) as seed:
        with seed.get_connection() as conn:
            conn.execute("CREATE TABLE entities (id integer)")
            conn.execute("INSERT INTO entities VALUES (1)")
        seed.create_snapshot("golden", shared=True)
    with SandboxPool(size=1, backend="sqlite", root=root, snapshot="golden") as pool:
        with pool.acquire(agent_id="a1") as sb, sb.get_connection() as conn:
            conn.execute("DELETE FROM entities")
        with pool.acquire(agent_id="a2") as sb, sb.get_connection() as conn:
            assert conn.execute("SELECT count(*) FROM entities").fetchone()[0] == 1
    seed.shared_snapshots.delete("golden")


def test_empty_pool_waits_then_times_out(root: Path) -> None:
    """on_empty='wait' with max_size reached raises PoolTimeout (an OperationalError)."""
    with SandboxPool(size=1, max_size=1, backend="sqlite", root=root) as pool:
        held = pool.acquire(agent_id="a1")
        with pytest.raises(PoolTimeout, match="no sandbox free"):
            pool.acquire(agent_id="a2", timeout=0.2)
        held.release()
        held.release()  # idempotent
        assert pool.metrics()["timeouts"] == 1


def test_empty_pool_creates_cold_up_to_max_size(root: Path) -> None:
    """on_empty='cold' makes a sandbox on the spot, but never more than max_size in all."""
    with SandboxPool(size=0, max_size=2, on_empty="cold", backend="sqlite", root=root) as pool:
        first, second = pool.acquire(agent_id="a1"), pool.acquire(agent_id="a2")
        with pytest.raises(PoolTimeout):
            pool.acquire(agent_id="a3", timeout=0.1)
        assert pool.metrics()["cold_starts"] == 2
        first.release()
        second.release()


def test_waiting_acquire_gets_a_released_sandbox(root: Path) -> None:
    """A caller waiting on an exhausted pool gets the next sandbox released."""
    import threading

    with SandboxPool(size=1, max_size=1, backend="sqlite", root=root) as pool:
        held = pool.acquire(agent_id="a1")
        got: list[str] = []
        waiter = threading.Thread(
            target=lambda: got.append(pool.acquire(agent_id="a2", timeout=30).sandbox.agent_id)
        )
        waiter.start()
        held.release()
        waiter.join()
        assert got == ["a2"]
        assert pool.metrics()["waits"] == 1


def test_destroyed_sandbox_is_replaced_not_handed_out(root: Path) -> None:
    """An idle sandbox destroyed behind the pool's back is never given to a caller."""
    with SandboxPool(size=2, backend="sqlite", root=root) as pool:
        lease = pool.acquire(agent_id="a1")
        victim = lease.sandbox  # the pool's own object, kept past the lease
        lease.release()
        victim.destroy()
        for i in range(4):
            with pool.acquire(agent_id=f"b{i}") as sb:
                assert sb is not victim
                assert _is_empty(sb)


def test_close_removes_everything(root: Path) -> None:
    """close() destroys idle and leased sandboxes alike, and a closed pool refuses work."""
    from sqlfence.errors import SandboxError

    pool = SandboxPool(size=2, backend="sqlite", root=root)
    pool.acquire(agent_id="a1")
    pool.close()
    pool.close()  # idempotent
    assert listing(root) == []
    with pytest.raises(SandboxError, match="closed"):
        pool.acquire(agent_id="a2")


@pytest.mark.slow
def test_400_cycles_leave_nothing(root: Path) -> None:
    """400 acquire/write/release cycles reuse the warm sandboxes and leave nothing behind."""
    with SandboxPool(size=2, backend="sqlite", root=root) as pool:
        for i in range(400):
            with pool.acquire(agent_id=f"a{i}") as sb, sb.get_connection() as conn:
                conn.execute("CREATE TABLE t (a integer)")
        metrics = pool.metrics()
        assert metrics["resets"] == 400
        assert metrics["created"] <= pool.max_size
    assert listing(root) == []
    assert list((root / "sandboxes").iterdir()) == []


def test_a_released_lease_cannot_act_as_the_next_agent(root: Path) -> None:
    """The pool gives the same sandbox to the next agent: a handle kept after release (the
    ``with`` handle or ``lease.sandbox``) raises instead of connecting as that agent."""
    from sqlfence.errors import SandboxError

    with SandboxPool(size=1, max_size=1, backend="sqlite", root=root) as pool:
        lease = pool.acquire(agent_id="a1", tenant="A")
        with lease as kept:
            assert kept.agent_id == "a1"
        nxt = pool.acquire(agent_id="b1", tenant="B")
        assert nxt.sandbox.name == lease._sandbox.name  # the same sandbox, now B's
        with pytest.raises(SandboxError, match="lease was released"):
            kept.get_connection()
        with pytest.raises(SandboxError, match="lease was released"):
            _ = lease.sandbox
        pool.release(nxt)
        with pytest.raises(SandboxError):
            _ = nxt.sandbox.tenant

"""The docker runtime on a real engine: hard limits, stats, OOM, pause, reaping, pools.

The image comes from ``SQLFENCE_TEST_PG_IMAGE`` (``.ci/run`` builds one locally); every
test checks that no container of its sandbox root outlives it.
"""

from __future__ import annotations

import os
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sqlfence.errors import OperationalError, SandboxError
from sqlfence.sandbox import AgentSandbox, SandboxPool, listing, reap
from sqlfence.sandbox.runtimes import docker as runtime
from tests.sandbox.conftest import signal_when_ready
from tests.test_exits import TIMEOUT_S, check_closed_in_order, exiting_child

pytestmark = pytest.mark.docker


@pytest.fixture
def home(root: Path, engine: Any) -> Iterator[Path]:
    """A sandbox root; the test fails if any container made for it outlives the test."""
    resolved = root.resolve()
    yield resolved
    runtime.stop_shared()
    left = [c.name for c in runtime.containers(resolved)]
    reap(resolved, everything=True)
    assert left == [], f"containers leaked: {left}"


def _dedicated(image: str, home: Path, **kwargs: Any) -> AgentSandbox:
    return AgentSandbox.create(
        backend="postgres", runtime="docker", placement="dedicated", image=image, root=home,
        **kwargs,
    )  # fmt: skip


def _until(condition: Any, what: str, attempts: int = 300) -> None:
    # Polls for a condition (not a timing assertion): give up after ~30 s.
    for _ in range(attempts):
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"never happened: {what}")


def _one(sb: AgentSandbox) -> int:
    with sb.get_connection() as conn:
        return int(conn.execute("SELECT 1").fetchone()[0])


def test_dedicated_limits_show_in_docker_inspect(image: str, home: Path, engine: Any) -> None:
    """memory 128M, cpu 0.5 and pids 128 become cgroup limits; the port is on 127.0.0.1."""
    limits = {"cpu": "0.5", "memory": "128M", "pids": 128}
    with _dedicated(image, home, agent_id="a1", limits=limits) as sb:
        assert _one(sb) == 1
        (container,) = engine.containers.list(filters={"label": f"sqlfence.sandbox={sb.name}"})
        config = container.attrs["HostConfig"]
        assert config["Memory"] == 128 * 1024 * 1024
        assert config["MemorySwap"] == 128 * 1024 * 1024
        assert config["NanoCpus"] == 500_000_000
        assert config["PidsLimit"] == 128
        assert config["ReadonlyRootfs"] is True
        (bound,) = container.attrs["NetworkSettings"]["Ports"]["5432/tcp"]
        assert bound["HostIp"] == "127.0.0.1"
        labels = container.labels
        assert labels["sqlfence.agent_id"] == "a1"
        assert labels["sqlfence.owner.pid"] == str(os.getpid())
        metrics = sb.get_metrics()
        assert metrics["placement"] == "dedicated"
        assert 0 < metrics["memory_used_mb"] <= 128
        assert metrics["cpu_percent"] >= 0


def test_memory_hog_fails_alone_and_is_reported(image: str, home: Path) -> None:
    """An OOM-killed query fails, is audited, refuses the next statement; others go on."""
    events: list[dict[str, Any]] = []
    with (
        _dedicated(
            image, home, agent_id="hog", limits={"memory": "128M"}, on_event=events.append
        ) as hog,  # fmt: skip
        _dedicated(image, home, agent_id="bystander", limits={"memory": "128M"}) as other,
    ):
        conn = hog.get_connection()
        with pytest.raises(OperationalError):
            conn.execute("SELECT length(repeat('x', 300000000))")
        conn.close()
        _until(lambda: any(e["event"] == "sandbox.container_failed" for e in events), "OOM event")
        with pytest.raises(SandboxError, match="out of memory"):
            hog.get_connection()
        assert _one(other) == 1

        def recovered() -> bool:
            try:
                return _one(hog) == 1
            except OperationalError:
                return False

        _until(recovered, "the hog's server recovering from the OOM kill")


def test_cpu_quota_holds_a_burning_query_near_half_a_cpu(image: str, home: Path) -> None:
    """With cpu 0.5 a CPU-bound query is throttled: stats stay well under one full CPU."""
    with _dedicated(image, home, agent_id="burn", limits={"cpu": "0.5"}) as sb:
        conn = sb.get_connection()
        stop = threading.Event()

        def burn() -> None:
            try:
                while not stop.is_set():
                    conn.execute(
                        "SELECT count(*) FROM generate_series(1, 3000000) g WHERE sqrt(g) > 1"
                    )
            except Exception:
                return

        thread = threading.Thread(target=burn)
        thread.start()
        try:
            samples = [sb.get_metrics()["cpu_percent"] for _ in range(3)]
        finally:
            stop.set()
            thread.join()
            conn.close()
        assert max(samples) > 10  # it really burned
        assert max(samples) < 75  # ... and the quota of 50% held it


def test_pause_and_resume_freeze_the_container(image: str, home: Path, engine: Any) -> None:
    """Dedicated pause is docker pause: the container is frozen, then answers again."""
    with _dedicated(image, home, agent_id="a1") as sb:
        sb.pause()
        (container,) = engine.containers.list(filters={"label": f"sqlfence.sandbox={sb.name}"})
        assert container.attrs["State"]["Paused"] is True
        with pytest.raises(SandboxError, match="paused"):
            sb.get_connection()
        sb.resume()
        assert _one(sb) == 1


def test_shared_placement_many_namespaces_one_container(image: str, home: Path) -> None:
    """Shared sandboxes are databases in one server container, with in-server snapshots."""
    with (
        AgentSandbox.create(
            agent_id="a1", backend="postgres", runtime="docker", image=image, root=home
        ) as first,  # fmt: skip
        AgentSandbox.create(
            agent_id="a2", backend="postgres", runtime="docker", image=image, root=home
        ) as second,  # fmt: skip
    ):
        assert len(runtime.containers(home)) == 1
        with first.get_connection() as conn:
            conn.execute("CREATE TABLE t (a integer)")
        first.create_snapshot("s")
        first.restore_snapshot("s")
        assert _one(second) == 1
        assert second.get_metrics()["placement"] == "shared"


_CHILD = textwrap.dedent(
    """
    import sys, time
    from sqlfence.sandbox import SandboxPool
    root, image = sys.argv[1], sys.argv[2]
    dedicated = SandboxPool(size=2, backend="postgres", runtime="docker",
                            placement="dedicated", image=image, root=root)
    shared = SandboxPool(size=2, backend="postgres", runtime="docker", image=image, root=root)
    lease = shared.acquire(agent_id="held")
    print("ready", flush=True)
    time.sleep(600)
    """
)


def test_sigkilled_pool_owner_leaves_nothing_after_reap(image: str, home: Path) -> None:
    """Containers and namespaces of a SIGKILLed process holding pools all go on reap()."""
    signal_when_ready(_CHILD, str(home), image)
    assert len(runtime.containers(home)) == 3  # two dedicated, one shared server
    assert len(listing(home)) >= 4  # the shared pool may be replenishing its leased one
    reap(home)
    assert runtime.containers(home) == []
    assert listing(home) == []


@pytest.mark.parametrize("placement", ["shared", "dedicated"])
def test_exit_without_closing_removes_the_container_after_recording(
    image: str, home: Path, tmp_path: Path, placement: str
) -> None:
    """A process leaving a docker sandbox, its connection and audit log open: at exit the
    disconnect and sandbox.destroyed are recorded before audit.close, then the container
    goes (the shared server after the namespaces in it)."""
    options: dict[str, Any] = {"backend": "postgres", "runtime": "docker", "placement": placement,
               "image": image}  # fmt: skip
    child = exiting_child(tmp_path / "audit", home, options)
    out, err = child.communicate(timeout=TIMEOUT_S)
    assert child.returncode == 0, err
    check_closed_in_order(tmp_path / "audit", out.splitlines()[0])
    assert runtime.containers(home) == []
    assert listing(home) == []


@pytest.mark.slow
def test_docker_pool_cycles_leave_nothing(image: str, home: Path) -> None:
    """100 acquire/write/release cycles on a shared-placement pool reset and leave nothing
    (each reset is a PostgreSQL clone swap, 0.15 to 0.4 s: 1,000 took 7 minutes of CI; a
    leak of one database, role or container per cycle shows 100 times over)."""
    with SandboxPool(size=2, backend="postgres", runtime="docker", image=image,
                     root=home) as pool:  # fmt: skip
        for i in range(100):
            with pool.acquire(agent_id=f"a{i}") as sb, sb.get_connection() as conn:
                conn.execute("CREATE TABLE t (a integer)")  # fails unless the reset worked
        assert pool.metrics()["resets"] == 100
    assert listing(home) == []  # the shared server container is checked by the fixture


def test_container_killed_behind_the_pools_back_is_replaced(
    image: str, home: Path, engine: Any
) -> None:
    """A killed container's sandbox is never handed out; the pool replaces it."""
    with SandboxPool(size=2, backend="postgres", runtime="docker", placement="dedicated",
                     image=image, root=home, check_on_acquire=True) as pool:  # fmt: skip
        (victim,) = engine.containers.list(filters={"label": "sqlfence.placement=dedicated",
                                                    "status": "running"})[:1]  # fmt: skip
        victim.kill()
        for round_ in range(3):
            leases = [pool.acquire(agent_id=f"a{round_}{i}") for i in range(2)]
            for lease in leases:
                assert _one(lease.sandbox) == 1
                lease.release()
        assert pool.metrics()["replaced_unhealthy"] >= 1

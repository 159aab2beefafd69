"""The Kubernetes runtime's client calls on a real cluster serving agent-sandbox ``v1beta1``.

Run only when ``SQLFENCE_K8S_CONTEXT`` names a kubeconfig context (the house exception, as
for IRIS: no cluster can run where sqlfence is built). ``SQLFENCE_K8S_NAMESPACE`` picks the
namespace (default: the context's), ``SQLFENCE_K8S_PG_IMAGE`` the PostgreSQL image (default
``postgres:16``). What each test makes carries the labels of a root of its own, and is
deleted at the end whatever happens. See the README's Kubernetes section for the set-up.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from sqlfence.sandbox.limits import Limits
from sqlfence.sandbox.registry import Owner
from sqlfence.sandbox.runtimes import kubernetes
from sqlfence.sandbox.runtimes import kubernetes_manifests as k8s

pytestmark = pytest.mark.skipif(
    not os.environ.get(kubernetes.CONTEXT_ENV),
    reason="no cluster: set SQLFENCE_K8S_CONTEXT to run the Kubernetes live tests",
)
READY_S = 180.0


@pytest.fixture(scope="module")
def cluster() -> kubernetes.Cluster:
    return kubernetes.Cluster(namespace=os.environ.get(kubernetes.NAMESPACE_ENV))


@pytest.fixture
def root(cluster: kubernetes.Cluster) -> Iterator[str]:
    """A sandbox root of the test's own; everything labelled with it is deleted afterwards."""
    path = f"/sqlfence-live/{secrets.token_hex(4)}"
    yield path
    for found in kubernetes.leftovers(cluster, path):
        cluster.delete(found["kind"], found["metadata"]["name"])


def _server(cluster: kubernetes.Cluster, root: str, name: str) -> k8s.Server:
    return k8s.Server(
        name=name,
        namespace=cluster.namespace,
        pod=k8s.POSTGRES_POD,
        root=root,
        owner=Owner.current(),
        limits=Limits(cpu="0.5", memory="512M", disk_quota_mb=512),
        image=os.environ.get("SQLFENCE_K8S_PG_IMAGE"),
        clients={k8s.CLIENT_LABEL: "true"},
    )


def _login(
    cluster: kubernetes.Cluster, sandbox: dict[str, Any], password: str, user: str = "admin"
) -> Any:
    host, port, tunnel = cluster.endpoint(sandbox, 5432)
    try:
        url = f"postgresql://{user}:{password}@{host}:{port}/postgres"
        with psycopg.connect(url, connect_timeout=10) as conn:
            row = conn.execute("SELECT 1").fetchone()
            return None if row is None else row[0]
    finally:
        if tunnel is not None:
            tunnel.close()


def test_shared_server_create_connect_renew_destroy(cluster: kubernetes.Cluster, root: str) -> None:
    server = _server(cluster, root, f"sqlfence-live-{secrets.token_hex(3)}")
    password = secrets.token_urlsafe(16)
    made = [
        cluster.create(m)
        for m in k8s.placement_objects("shared", server, "admin", password, time.time() + 600)
    ]
    sandbox = cluster.wait_ready("Sandbox", server.name, READY_S)
    assert _login(cluster, sandbox, password) == 1
    cluster.patch("Sandbox", server.name, k8s.renewed(sandbox, time.time() + 1200))
    renewed = cluster.get("Sandbox", server.name)
    assert renewed is not None
    assert renewed["spec"]["shutdownTime"] > sandbox["spec"]["shutdownTime"]
    found = {(f["kind"], f["metadata"]["name"]) for f in kubernetes.leftovers(cluster, root)}
    assert {(m["kind"], m["metadata"]["name"]) for m in made} <= found
    uid = sandbox["metadata"]["uid"]
    assert (
        cluster.delete("Sandbox", server.name, uid="00000000-0000-0000-0000-000000000000") is False
    )
    assert cluster.get("Sandbox", server.name) is not None  # a uid precondition that fails
    assert cluster.delete("Sandbox", server.name, uid=uid) is True


def test_an_expired_lease_deletes_the_server(cluster: kubernetes.Cluster, root: str) -> None:
    """The owner stops renewing (it died): the controller deletes the Sandbox by itself."""
    server = _server(cluster, root, f"sqlfence-lease-{secrets.token_hex(3)}")
    for manifest in k8s.placement_objects("shared", server, "admin", "p", time.time() + 30):
        cluster.create(manifest)
    deadline = time.monotonic() + 300  # a poll bound, not a timing assertion
    while cluster.get("Sandbox", server.name) is not None:
        assert time.monotonic() < deadline, "the lease ended but the Sandbox is still there"
        time.sleep(2)


def test_dedicated_server_from_a_warm_pool(cluster: kubernetes.Cluster, root: str) -> None:
    template = _server(cluster, root, f"sqlfence-pool-{secrets.token_hex(3)}")
    password = secrets.token_urlsafe(16)
    for manifest in k8s.placement_objects(
        "dedicated", template, "admin", password, time.time() + 600, replicas=1
    ):
        cluster.create(manifest)
    claim = k8s.claim(f"agent-{secrets.token_hex(3)}", template, time.time() + 600)
    cluster.create(claim)
    sandbox = cluster.wait_ready("SandboxClaim", claim["metadata"]["name"], READY_S)
    assert _login(cluster, sandbox, password) == 1


# -- through AgentSandbox and SandboxPool ---------------------------------------------------


def _runtime(**options: Any) -> Any:
    from sqlfence.sandbox.runtimes.kubernetes_runtime import KubernetesRuntime

    return KubernetesRuntime(
        namespace=os.environ.get(kubernetes.NAMESPACE_ENV),
        image=os.environ.get("SQLFENCE_K8S_PG_IMAGE"),
        **options,
    )


@pytest.mark.parametrize("placement", ["shared", "dedicated"])
def test_a_sandbox_on_the_cluster_connects_snapshots_and_goes(
    tmp_path: Any, cluster: kubernetes.Cluster, placement: str
) -> None:
    from sqlfence.sandbox import AgentSandbox, reap

    runtime = _runtime(placement=placement, pool_size=1 if placement == "dedicated" else 0)
    root = tmp_path / "root"
    try:
        with AgentSandbox.create("a1", backend="postgres", runtime=runtime, root=root) as sb:
            with sb.get_connection() as conn:
                conn.execute("CREATE TABLE t (id INT)")
                conn.execute("INSERT INTO t VALUES (1)")
                conn.commit()
            sb.create_snapshot("one")
            with sb.get_connection() as conn:
                conn.execute("DELETE FROM t")
                conn.commit()
            sb.restore_snapshot("one")
            with sb.get_connection() as conn:
                assert conn.execute("SELECT count(*) FROM t").fetchone()[0] == 1
        # the sandbox went; gc finds nothing of this process's to remove
        assert reap(root) == []
    finally:
        runtime.stop()
        reap(root, everything=True)
    assert list(kubernetes.leftovers(cluster, str(root.resolve()))) == []


def test_a_pool_acquires_from_the_warm_pool(tmp_path: Any, cluster: kubernetes.Cluster) -> None:
    from sqlfence.sandbox import SandboxPool, reap

    runtime = _runtime(placement="dedicated", pool_size=2)
    root = tmp_path / "root"
    pool = SandboxPool(size=1, backend="postgres", runtime=runtime, root=root, warmup=True)
    try:
        with pool.acquire(agent_id="a2") as sb, sb.get_connection() as conn:
            assert conn.execute("SELECT 1").fetchone()[0] == 1
    finally:
        pool.close()
        runtime.stop()
        reap(root, everything=True)


def test_a_claimed_server_is_the_sandboxes_own(tmp_path: Any, cluster: kubernetes.Cluster) -> None:
    """After the claim, the admin answers to the claim's own password and not to the
    template's bootstrap one (every warm pod's), and the pod still reads as ready."""
    from sqlfence.sandbox import AgentSandbox, reap

    runtime = _runtime(placement="dedicated", pool_size=1)
    root = tmp_path / "root"
    made = str(root.resolve())
    try:
        with AgentSandbox.create("a3", backend="postgres", runtime=runtime, root=root) as sb:
            with sb.get_connection() as conn:
                assert conn.execute("SELECT 1").fetchone()[0] == 1
            found = list(kubernetes.leftovers(cluster, made))
            (claim,) = [f for f in found if f["kind"] == "SandboxClaim"]
            (template,) = [f for f in found if f["kind"] == "SandboxTemplate"]
            name = claim["metadata"]["name"]
            sandbox = cluster.wait_ready("SandboxClaim", name, READY_S)
            own = (cluster.secret(f"{name}-admin") or {})["password"]
            bootstrap = (cluster.secret(f"{template['metadata']['name']}-admin") or {})["password"]
            assert _login(cluster, sandbox, own, user="sandbox_admin") == 1
            with pytest.raises(psycopg.OperationalError):
                _login(cluster, sandbox, bootstrap, user="sandbox_admin")
    finally:
        runtime.stop()
        reap(root, everything=True)

"""IRIS sandboxes on a real cluster serving agent-sandbox ``v1beta1``: dedicated servers
claimed from a warm pool and made the sandbox's own, and a shared server.

Run only when ``SQLFENCE_K8S_CONTEXT`` names a cluster and ``SQLFENCE_K8S_IRIS_IMAGE`` an
IRIS image it can pull (``intersystemsdc/iris-community:latest``, whose start-up hook makes
the admin from ``IRIS_USERNAME``/``IRIS_PASSWORD``): no cluster and no IRIS server can run
where sqlfence is built, so none of this has run there. ``SQLFENCE_K8S_NAMESPACE`` picks the
namespace. An IRIS pod is large and slow to start (minutes, cold); each test deletes what it
made whatever happens.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sqlfence.sandbox.backends import iris_admin
from sqlfence.sandbox.runtimes import kubernetes
from sqlfence.sandbox.runtimes import kubernetes_manifests as k8s
from sqlfence.sandbox.runtimes.kubernetes_logins import IRIS_PREDEFINED

IMAGE = os.environ.get("SQLFENCE_K8S_IRIS_IMAGE")
pytestmark = pytest.mark.skipif(
    not (os.environ.get(kubernetes.CONTEXT_ENV) and IMAGE),
    reason="no cluster with IRIS: set SQLFENCE_K8S_CONTEXT and SQLFENCE_K8S_IRIS_IMAGE",
)
READY_S = 600.0


@pytest.fixture(scope="module")
def cluster() -> kubernetes.Cluster:
    return kubernetes.Cluster(namespace=os.environ.get(kubernetes.NAMESPACE_ENV))


@pytest.fixture
def root(tmp_path: Path, cluster: kubernetes.Cluster) -> Iterator[Path]:
    """A sandbox root of the test's own; its sandboxes are reaped and every object labelled
    with it deleted afterwards."""
    from sqlfence.sandbox import reap

    path = tmp_path / "root"
    yield path
    try:
        reap(path, everything=True)
    finally:
        for found in kubernetes.leftovers(cluster, str(path.resolve())):
            cluster.delete(found["kind"], found["metadata"]["name"])


def _runtime(placement: str) -> Any:
    from sqlfence.sandbox.runtimes.kubernetes_runtime import KubernetesRuntime

    return KubernetesRuntime(
        namespace=os.environ.get(kubernetes.NAMESPACE_ENV),
        placement=placement,
        image=IMAGE,
        pool_size=1 if placement == "dedicated" else 0,
    )


def _answer(cluster: kubernetes.Cluster, sandbox: dict[str, Any], user: str, password: str) -> str:
    """``iris_admin.probe`` of one login on the sandbox's server: ok, busy or no."""
    host, port, tunnel = cluster.endpoint(sandbox, 1972)
    try:
        return iris_admin.probe(k8s.IRIS_POD.engine.admin_url(host, port, user, password), 30)
    finally:
        if tunnel is not None:
            tunnel.close()


def _made(cluster: kubernetes.Cluster, root: Path, kind: str) -> list[dict[str, Any]]:
    return [f for f in kubernetes.leftovers(cluster, str(root.resolve())) if f["kind"] == kind]


def _use(sb: Any) -> None:
    with sb.get_connection() as conn:
        conn.execute("CREATE TABLE t (id INT)")
        conn.execute("INSERT INTO t VALUES (1)")
        conn.commit()
        assert conn.execute("SELECT COUNT(*) FROM t").fetchone()[0] == 1


def test_a_dedicated_iris_server_is_the_sandboxes_own(
    cluster: kubernetes.Cluster, root: Path
) -> None:
    """Claimed from the warm pool: the admin answers only to the claim's own password (the
    template's bootstrap one, every warm pod's, is refused), the predefined logins refuse
    ``SYS``, the pod stays ready after the rotation, and the agent works through the fence."""
    from sqlfence.sandbox import AgentSandbox

    runtime = _runtime("dedicated")
    try:
        with AgentSandbox.create("a1", backend="iris", runtime=runtime, root=root) as sb:
            _use(sb)
            sb.create_snapshot("one")
            with sb.get_connection() as conn:
                conn.execute("DELETE FROM t")
                conn.commit()
            sb.restore_snapshot("one")
            with sb.get_connection() as conn:
                assert conn.execute("SELECT COUNT(*) FROM t").fetchone()[0] == 1
            (claim,) = _made(cluster, root, "SandboxClaim")
            (template,) = _made(cluster, root, "SandboxTemplate")
            name = claim["metadata"]["name"]
            sandbox = cluster.wait_ready("SandboxClaim", name, READY_S)  # still ready
            own = cluster.secret(f"{name}-admin") or {}
            bootstrap = cluster.secret(f"{template['metadata']['name']}-admin") or {}
            assert own["password"] != bootstrap["password"]
            assert _answer(cluster, sandbox, "sandbox_admin", own["password"]) == "ok"
            assert _answer(cluster, sandbox, "sandbox_admin", bootstrap["password"]) == "no"
            for predefined in IRIS_PREDEFINED:
                assert _answer(cluster, sandbox, predefined, "SYS") == "no", predefined
        deadline = time.monotonic() + 120  # a poll bound: deletion is in the background
        while _made(cluster, root, "SandboxClaim"):  # the claim goes with the sandbox
            assert time.monotonic() < deadline, "the sandbox went, its claim stayed"
            time.sleep(2)
    finally:
        runtime.stop()


def test_a_shared_iris_server_locks_its_predefined_logins(
    cluster: kubernetes.Cluster, root: Path
) -> None:
    """The shared server keeps its Secret's admin password and refuses ``SYS`` for the
    predefined logins before the first agent's namespace is made on it."""
    from sqlfence.sandbox import AgentSandbox

    runtime = _runtime("shared")
    try:
        with AgentSandbox.create("a1", backend="iris", runtime=runtime, root=root) as sb:
            _use(sb)
            (server,) = _made(cluster, root, "Sandbox")
            name = server["metadata"]["name"]
            sandbox = cluster.wait_ready("Sandbox", name, READY_S)
            login = cluster.secret(f"{name}-admin") or {}
            assert _answer(cluster, sandbox, "sandbox_admin", login["password"]) == "ok"
            for predefined in IRIS_PREDEFINED:
                assert _answer(cluster, sandbox, predefined, "SYS") == "no", predefined
    finally:
        runtime.stop()

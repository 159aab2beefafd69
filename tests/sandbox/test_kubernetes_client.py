"""The Kubernetes runtime's client where no cluster is needed to check it: when ``auto``
chooses Kubernetes, the error for a cluster that does not answer (a real client against a
closed port), and the tunnel's byte pump on real sockets. The calls that need a cluster are in
``test_kubernetes_live.py``."""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

import pytest
import yaml

from sqlfence.errors import SandboxError
from sqlfence.sandbox.runtimes import kubernetes


@pytest.fixture
def no_cluster(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A machine with kubectl's configuration but no cluster behind it, and nothing set for
    sqlfence: its kubeconfig names a context on a port nothing listens on."""
    for name in ("KUBERNETES_SERVICE_HOST", kubernetes.CONTEXT_ENV, kubernetes.NAMESPACE_ENV):
        monkeypatch.delenv(name, raising=False)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "laptop", "cluster": {"server": f"https://127.0.0.1:{port}"}}],
        "users": [{"name": "me", "user": {"token": "not-a-real-token"}}],
        "contexts": [
            {"name": "laptop", "context": {"cluster": "laptop", "user": "me", "namespace": "ns"}}
        ],
        "current-context": "laptop",
    }
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(config))
    monkeypatch.setenv("KUBECONFIG", str(path))
    return path


def test_auto_does_not_choose_kubernetes_for_a_kubeconfig_alone(no_cluster: Path) -> None:
    assert kubernetes.choose() is None


def test_auto_chooses_kubernetes_when_configured_for_sqlfence(
    no_cluster: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert kubernetes.choose(context="laptop") == "context 'laptop' configured"
    monkeypatch.setenv(kubernetes.NAMESPACE_ENV, "agents")
    assert kubernetes.choose() == "namespace 'agents' configured"


def test_a_cluster_that_does_not_answer_is_a_clear_error(no_cluster: Path) -> None:
    with pytest.raises(SandboxError, match="the Kubernetes API server does not answer"):
        kubernetes.Cluster(context="laptop")


def test_an_unknown_context_is_a_clear_error(no_cluster: Path) -> None:
    with pytest.raises(SandboxError, match="no Kubernetes configuration to use"):
        kubernetes.Cluster(context="no-such-context")


def test_the_tunnel_pump_copies_both_ways_until_one_side_closes() -> None:
    client, near = socket.socketpair()
    far, server = socket.socketpair()
    pump = threading.Thread(target=kubernetes._pump, args=(near, far, lambda: False))
    pump.start()
    client.sendall(b"SELECT 1")
    assert server.recv(100) == b"SELECT 1"
    server.sendall(b"1" * 100_000)
    received = b""
    while len(received) < 100_000:
        received += client.recv(65536)
    assert received == b"1" * 100_000
    server.close()
    pump.join(timeout=5)
    assert not pump.is_alive()
    for end in (client, near, far):
        end.close()


def test_runtime_kubernetes_never_falls_back(no_cluster: Path, tmp_path: Path) -> None:
    """Asked for Kubernetes with no cluster behind the configuration: a clear error, and no
    sandbox made anywhere else."""
    from sqlfence.sandbox import AgentSandbox, listing
    from sqlfence.sandbox.runtimes.kubernetes_runtime import KubernetesRuntime

    with pytest.raises(SandboxError, match="does not answer"):
        AgentSandbox.create(
            "a1", backend="postgres", runtime=KubernetesRuntime(context="laptop"), root=tmp_path
        )
    assert listing(tmp_path) == []


def test_gc_without_a_cluster_configured_asks_no_cluster(no_cluster: Path, tmp_path: Path) -> None:
    from sqlfence.sandbox.runtimes.kubernetes_runtime import KubernetesRuntime

    assert KubernetesRuntime.sweep(tmp_path, everything=True) == []


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_auto_on_a_laptop_with_kubectl_but_no_cluster_chooses_docker(no_cluster: Path) -> None:
    """kubectl's configuration alone does not pick Kubernetes; a cluster configured for
    sqlfence that does not answer does not either: Docker, when an engine answers."""
    from sqlfence.sandbox.runtimes import runtime_for
    from sqlfence.sandbox.runtimes.base import RuntimeOptions
    from sqlfence.sandbox.runtimes.docker import client
    from tests.conftest import missing

    try:
        client()
    except SandboxError:
        missing("Docker engine")
    assert runtime_for("auto", "postgres", RuntimeOptions()).name == "docker"
    assert runtime_for("auto", "sqlite", RuntimeOptions()).name == "embedded"
    os.environ[kubernetes.CONTEXT_ENV] = "laptop"
    try:
        assert runtime_for("auto", "postgres", RuntimeOptions()).name == "docker"
    finally:
        del os.environ[kubernetes.CONTEXT_ENV]


def test_auto_with_neither_says_why(no_cluster: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sqlfence.errors import ConfigurationError
    from sqlfence.sandbox.runtimes import runtime_for
    from sqlfence.sandbox.runtimes.base import RuntimeOptions

    monkeypatch.setenv("DOCKER_HOST", f"tcp://127.0.0.1:{_closed_port()}")
    with pytest.raises(ConfigurationError, match="found no place to run servers") as raised:
        runtime_for("auto", "postgres", RuntimeOptions())
    assert "kubernetes: not in a cluster" in str(raised.value)
    assert "docker: no Docker engine answers" in str(raised.value)


def test_a_pool_sets_the_warm_pools_size(no_cluster: Path) -> None:
    """SandboxPool(size=N) with a dedicated Kubernetes runtime: N warm replicas (set when the
    warm pool is made; nothing to report before a cluster was reached)."""
    from sqlfence.sandbox.runtimes.kubernetes_runtime import KubernetesRuntime

    runtime = KubernetesRuntime(placement="dedicated")
    runtime.keep_warm(5)
    assert runtime.pool_size == 5
    assert runtime.warm_status() == {}

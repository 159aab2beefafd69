"""Talking to a cluster that serves the agent-sandbox API: the Kubernetes runtime's client.

Written against the Kubernetes API and the agent-sandbox CRDs (``v1beta1``) with the
official ``kubernetes`` client; no cluster runs on the machines that build sqlfence, so its
live tests run only when ``SQLFENCE_K8S_CONTEXT`` names one (see the README). The objects it
sends come from ``kubernetes_manifests`` and are checked there against the real schemas.

- ``choose`` decides whether ``runtime="auto"`` means Kubernetes: only inside a cluster, or
  when a context or namespace is configured for sqlfence explicitly. A kubeconfig that merely
  exists (a developer's laptop with kubectl) is not a choice.
- ``Cluster`` loads the configuration, refuses a cluster that does not serve ``v1beta1`` of
  both API groups (naming what it found), creates the objects, waits for ``Ready``, renews
  leases, and deletes with a ``uid`` precondition so that a name reused since is not hit.
- ``Tunnel`` is the managed port-forward used from outside the cluster: a local port whose
  every connection is one port-forward stream to the pod. Inside, the Service FQDN is used.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from sqlfence.errors import ConfigurationError, SandboxError
from sqlfence.sandbox.runtimes import kubernetes_manifests as manifests

CONTEXT_ENV = "SQLFENCE_K8S_CONTEXT"
NAMESPACE_ENV = "SQLFENCE_K8S_NAMESPACE"
_SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
_CUSTOM = {
    "Sandbox": (manifests.GROUP, "sandboxes"),
    "SandboxTemplate": (manifests.EXTENSIONS_GROUP, "sandboxtemplates"),
    "SandboxWarmPool": (manifests.EXTENSIONS_GROUP, "sandboxwarmpools"),
    "SandboxClaim": (manifests.EXTENSIONS_GROUP, "sandboxclaims"),
}
_CORE = ("Secret", "ConfigMap", "NetworkPolicy")


def in_cluster() -> bool:
    """Is this process running in a pod (the service host is set and a token mounted)?"""
    return (
        bool(os.environ.get("KUBERNETES_SERVICE_HOST")) and (_SERVICE_ACCOUNT / "token").is_file()
    )


def choose(context: str | None = None, namespace: str | None = None) -> str | None:
    """Why ``runtime="auto"`` should use Kubernetes, or None when it should not.

    Kubernetes only when asked for: running in a cluster, or a context or namespace given
    (the arguments, or ``SQLFENCE_K8S_CONTEXT`` / ``SQLFENCE_K8S_NAMESPACE``). The caller
    still checks that the cluster serves the API (``Cluster``), and says so if it does not.
    """
    if in_cluster():
        return "running in a Kubernetes pod"
    if context or os.environ.get(CONTEXT_ENV):
        return f"context {context or os.environ[CONTEXT_ENV]!r} configured"
    if namespace or os.environ.get(NAMESPACE_ENV):
        return f"namespace {namespace or os.environ[NAMESPACE_ENV]!r} configured"
    return None


class Cluster:
    """One cluster and namespace, checked to serve agent-sandbox ``v1beta1``."""

    def __init__(self, context: str | None = None, namespace: str | None = None) -> None:
        try:
            import kubernetes.client
            import kubernetes.config
        except ImportError as error:
            raise ConfigurationError(
                "the kubernetes runtime needs the k8s extra: pip install 'sqlfence[k8s]'"
            ) from error
        client: Any = kubernetes.client  # partly typed: used as documented, not checked
        config: Any = kubernetes.config
        context = context or os.environ.get(CONTEXT_ENV)
        try:
            if context is None and in_cluster():
                config.load_incluster_config()
                self.api: Any = client.ApiClient()
                namespace = namespace or (_SERVICE_ACCOUNT / "namespace").read_text().strip()
            else:
                # KUBECONFIG as it is now: the client reads it once, when first imported
                files = os.environ.get("KUBECONFIG") or "~/.kube/config"
                self.api = config.new_client_from_config(config_file=files, context=context)
                if namespace is None:
                    _, active = config.list_kube_config_contexts(config_file=files)
                    namespace = (active or {}).get("context", {}).get("namespace")
        except (config.ConfigException, OSError) as error:
            raise SandboxError(f"no Kubernetes configuration to use ({error})") from error
        self.namespace = namespace or os.environ.get(NAMESPACE_ENV) or "default"
        self.in_cluster = context is None and in_cluster()
        self.core: Any = client.CoreV1Api(self.api)
        self.networking: Any = client.NetworkingV1Api(self.api)
        self.custom: Any = client.CustomObjectsApi(self.api)
        self._check_api(client.ApisApi(self.api))

    def _check_api(self, apis: Any) -> None:
        try:
            groups = {group.name: group for group in apis.get_api_versions().groups}
        except Exception as error:
            raise SandboxError(f"the Kubernetes API server does not answer ({error})") from error
        for name in (manifests.GROUP, manifests.EXTENSIONS_GROUP):
            group = groups.get(name)
            served = [v.version for v in group.versions] if group is not None else []
            if manifests.VERSION not in served:
                found = f"it serves {', '.join(served)}" if served else "it is not installed"
                raise SandboxError(
                    f"the cluster does not serve {name}/{manifests.VERSION} ({found}): install "
                    "agent-sandbox 1.0 or later, with its extensions (see the README)"
                )

    # -- objects ------------------------------------------------------------------------

    def create(self, manifest: manifests.Manifest) -> manifests.Manifest:
        """Create ``manifest`` in this namespace; the object as the server returned it."""
        kind = manifest["kind"]
        if kind in _CUSTOM:
            group, plural = _CUSTOM[kind]
            made: manifests.Manifest = self.custom.create_namespaced_custom_object(
                group, manifests.VERSION, self.namespace, plural, manifest
            )
            return made
        if kind not in _CORE:
            raise ConfigurationError(f"sqlfence does not create {kind} objects")
        create = {
            "Secret": self.core.create_namespaced_secret,
            "ConfigMap": self.core.create_namespaced_config_map,
            "NetworkPolicy": self.networking.create_namespaced_network_policy,
        }[kind]
        returned = create(self.namespace, manifest)
        return dict(self.api.sanitize_for_serialization(returned))

    def get(self, kind: str, name: str) -> manifests.Manifest | None:
        """The custom object ``kind``/``name``, or None when there is none."""
        group, plural = _CUSTOM[kind]
        try:
            found: manifests.Manifest = self.custom.get_namespaced_custom_object(
                group, manifests.VERSION, self.namespace, plural, name
            )
        except Exception as error:
            if getattr(error, "status", None) == 404:
                return None
            raise
        return found

    def secret(self, name: str) -> dict[str, str] | None:
        """The values of the Secret ``name`` (decoded), or None when there is none."""
        import base64

        try:
            found = self.core.read_namespaced_secret(name, self.namespace)
        except Exception as error:
            if getattr(error, "status", None) == 404:
                return None
            raise
        data = found.data or {}
        return {key: base64.b64decode(value).decode() for key, value in data.items()}

    def patch(self, kind: str, name: str, body: manifests.Manifest) -> None:
        """A merge patch of a custom object (a lease renewal, a warm pool's size)."""
        group, plural = _CUSTOM[kind]
        self.custom.patch_namespaced_custom_object(
            group, manifests.VERSION, self.namespace, plural, name, body
        )

    def delete(self, kind: str, name: str, uid: str | None = None) -> bool:
        """Delete an object, only if it is still the one with ``uid``; False if it is gone."""
        import kubernetes.client

        client: Any = kubernetes.client
        options = client.V1DeleteOptions(
            preconditions=client.V1Preconditions(uid=uid) if uid else None,
            propagation_policy="Background",
        )
        try:
            if kind in _CUSTOM:
                group, plural = _CUSTOM[kind]
                self.custom.delete_namespaced_custom_object(
                    group, manifests.VERSION, self.namespace, plural, name, body=options
                )
            else:
                delete = {
                    "Secret": self.core.delete_namespaced_secret,
                    "ConfigMap": self.core.delete_namespaced_config_map,
                    "NetworkPolicy": self.networking.delete_namespaced_network_policy,
                }[kind]
                delete(name, self.namespace, body=options)
        except Exception as error:
            if getattr(error, "status", None) in (404, 409):  # gone, or a new object's name
                return False
            raise
        return True

    def labelled(self, labels: Mapping[str, str]) -> list[manifests.Manifest]:
        """Every object sqlfence makes that carries ``labels`` (what ``gc`` looks through)."""
        selector = ",".join(f"{key}={value}" for key, value in labels.items())
        found: list[manifests.Manifest] = []
        for kind, (group, plural) in _CUSTOM.items():
            listed: dict[str, Any] = self.custom.list_namespaced_custom_object(
                group, manifests.VERSION, self.namespace, plural, label_selector=selector
            )
            found += [{**item, "kind": kind} for item in listed.get("items", [])]
        for kind, list_call in (
            ("Secret", self.core.list_namespaced_secret),
            ("ConfigMap", self.core.list_namespaced_config_map),
            ("NetworkPolicy", self.networking.list_namespaced_network_policy),
        ):
            for item in list_call(self.namespace, label_selector=selector).items:
                found.append({**self.api.sanitize_for_serialization(item), "kind": kind})
        return found

    def wait_ready(self, kind: str, name: str, timeout: float) -> manifests.Manifest:
        """The Sandbox (a claim's, for a SandboxClaim) once its ``Ready`` condition is true.
        Raises SandboxError with the last reason the controller gave when it does not come."""
        deadline = time.monotonic() + timeout
        reason = "no status yet"
        while time.monotonic() < deadline:
            found = self.get(kind, name)
            if found is None:
                raise SandboxError(f"{kind} {name} is gone (deleted, or its lease ended)")
            if kind == "SandboxClaim":
                taken = (found.get("status") or {}).get("sandbox", {}).get("name")
                if taken:
                    return self.wait_ready("Sandbox", taken, deadline - time.monotonic())
                reason = _condition_text(found) or "no sandbox taken from the pool yet"
            else:
                ready = _condition(found, "Ready")
                if ready is not None and ready.get("status") == "True":
                    return found
                reason = _condition_text(found) or reason
                if ready is not None and ready.get("reason") in ("PodFailed", "SandboxExpired"):
                    break
            time.sleep(0.25)
        raise SandboxError(f"{kind} {name} did not become ready within {timeout:g} s: {reason}")

    def pod_of(self, sandbox: manifests.Manifest) -> str:
        """The name of the pod a ready Sandbox runs (found by the selector in its status)."""
        selector = (sandbox.get("status") or {}).get("selector")
        if not selector:
            selector = f"{manifests.PREFIX}server={sandbox['metadata']['name']}"
        pods = self.core.list_namespaced_pod(self.namespace, label_selector=selector).items
        running = [pod for pod in pods if pod.status and pod.status.phase == "Running"]
        if not running:
            raise SandboxError(f"no running pod for sandbox {sandbox['metadata']['name']}")
        return str(running[0].metadata.name)

    def endpoint(self, sandbox: manifests.Manifest, port: int) -> tuple[str, int, Tunnel | None]:
        """Where a client reaches the database: the Service FQDN from inside the cluster,
        else a port-forward on this machine (close the tunnel when done)."""
        fqdn = (sandbox.get("status") or {}).get("serviceFQDN")
        if self.in_cluster and fqdn:
            return str(fqdn), port, None
        tunnel = Tunnel(self, self.pod_of(sandbox), port)
        return "127.0.0.1", tunnel.port, tunnel


def _condition(found: manifests.Manifest, kind: str) -> dict[str, Any] | None:
    for condition in (found.get("status") or {}).get("conditions") or []:
        if condition.get("type") == kind:
            return dict(condition)
    return None


def _condition_text(found: manifests.Manifest) -> str:
    return "; ".join(
        f"{c.get('type')}={c.get('status')} ({c.get('reason')}: {c.get('message')})"
        for c in (found.get("status") or {}).get("conditions") or []
    )


class Tunnel:
    """A local TCP port forwarding to ``port`` of a pod: each accepted connection gets its
    own port-forward stream through the API server. ``close`` stops it."""

    def __init__(self, cluster: Cluster, pod: str, port: int) -> None:
        self._cluster, self._pod, self._remote = cluster, pod, port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="sqlfence-k8s-tunnel")
        self._thread.daemon = True
        self._thread.start()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                local, _ = self._listener.accept()
            except OSError:
                return  # closed
            threading.Thread(target=self._relay, args=(local,), daemon=True).start()

    def _relay(self, local: socket.socket) -> None:
        import kubernetes.stream

        portforward: Any = kubernetes.stream.portforward
        with contextlib.closing(local):
            forward = portforward(
                self._cluster.core.connect_get_namespaced_pod_portforward,
                self._pod,
                self._cluster.namespace,
                ports=str(self._remote),
            )
            remote = forward.socket(self._remote)
            try:
                _pump(local, remote, self._closed.is_set)
            finally:
                remote.close()
                forward.close()

    def close(self) -> None:
        self._closed.set()
        with contextlib.suppress(OSError):
            self._listener.close()


def _pump(one: Any, other: Any, stopped: Callable[[], bool]) -> None:
    """Copy bytes both ways until either side closes."""
    sockets = [one, other]
    while not stopped():
        readable, _, broken = select.select(sockets, [], sockets, 0.5)
        if broken:
            return
        for source in readable:
            data = source.recv(65536)
            if not data:
                return
            (other if source is one else one).sendall(data)


def leftovers(cluster: Cluster, root: str) -> Iterator[manifests.Manifest]:
    """Objects made for the sandbox root ``root``, by any process (``gc`` filters by owner)."""
    yield from cluster.labelled({f"{manifests.PREFIX}root": manifests.root_label(root)})

"""``kubernetes``: sandbox servers on a cluster serving the agent-sandbox API (``v1beta1``).

The runtime behind ``AgentSandbox.create(runtime="kubernetes")``, or ``runtime=
KubernetesRuntime(context=..., namespace=..., isolation="gvisor")`` for the options the
environment does not give (``SQLFENCE_K8S_CONTEXT``, ``SQLFENCE_K8S_NAMESPACE``). Never a
silent fallback: a cluster that does not answer or does not serve the API is an error.

- **shared** (the default): one server ``Sandbox`` per sandbox root and database kind holds
  many agents' namespaces; its admin password is in its Secret. Made on first use, found by
  its name afterwards.
- **dedicated**: a ``SandboxTemplate`` and its ``SandboxWarmPool`` per root and kind, and one
  ``SandboxClaim`` per sandbox. Every warm pod starts with the template's bootstrap password,
  so on claim the runtime sets a password of the sandbox's own (``kubernetes_logins``) and
  keeps it in a Secret the claim owns. A dedicated server takes its namespace along when its
  claim goes.

Before a server holds an agent's namespace, the logins anyone could know are locked (IRIS's
predefined ones): on claim, and once per shared server and runtime.

Every server and claim is leased: its ``shutdownTime`` is moved forward while this process
runs (``LEASE_S`` ahead, renewed every third of that), and to the sandbox's expiry when it
has one, with ``shutdownPolicy: Delete``, so the controller removes what a dead process left
even if nobody runs ``gc``. ``sweep`` (``sqlfence sandbox gc``) deletes by label, with a
``uid`` precondition, what a dead owner made or what expired.

Written against the API and the CRDs; its live tests need a cluster (``SQLFENCE_K8S_CONTEXT``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from sqlfence.errors import ConfigurationError, SandboxError
from sqlfence.sandbox.registry import Owner, Record
from sqlfence.sandbox.runtimes import kubernetes_logins as logins
from sqlfence.sandbox.runtimes import kubernetes_manifests as manifests
from sqlfence.sandbox.runtimes.base import GivenServer, PlacementRequest, RuntimeOptions
from sqlfence.sandbox.runtimes.kubernetes import Cluster, Tunnel, choose, leftovers

LEASE_S = 600.0  # how far ahead a live owner keeps its servers' shutdownTime
READY_S = 300.0  # a cold start of a large image may take minutes
ADMIN = "sandbox_admin"


class KubernetesRuntime:
    """Servers in one namespace of one cluster. ``isolation`` is a runtimeClassName."""

    name = "kubernetes"

    def __init__(
        self,
        context: str | None = None,
        namespace: str | None = None,
        placement: str = "shared",
        isolation: str | None = None,
        image: str | None = None,
        pool_size: int = 0,
    ) -> None:
        if placement not in ("shared", "dedicated"):
            raise ConfigurationError(f"placement must be shared or dedicated, not {placement!r}")
        self.context, self.namespace = context, namespace
        self.placement = placement
        self.isolation, self.image, self.pool_size = isolation, image, pool_size
        self._cluster: Cluster | None = None
        self._pools: set[str] = set()  # the warm pools this runtime made or found
        self._secured: set[str] = set()  # the shared servers whose logins it locked
        self._leases = Leases()

    @classmethod
    def from_options(cls, options: RuntimeOptions) -> KubernetesRuntime:
        """From ``AgentSandbox.create``'s options; a server URL has no meaning here."""
        if options.server_url is not None:
            raise ConfigurationError("runtime='kubernetes' starts its servers: no server_url=")
        return cls(placement=options.placement or "shared", image=options.image)

    @property
    def cluster(self) -> Cluster:
        """The cluster, connected on first use (and checked to serve the API)."""
        if self._cluster is None:
            self._cluster = Cluster(self.context, self.namespace)
        return self._cluster

    def check(self, kind: str) -> None:
        """Servers of PostgreSQL and IRIS, shared or dedicated (SQLite is a file in this
        process)."""
        manifests.server_pod(kind)

    def place(self, request: PlacementRequest) -> PodPlacement:
        """The shared server of the root and kind (made when missing), or a claimed one."""
        server = self._server(request.kind, request.root, request.limits)
        if self.placement == "shared":
            return self._shared(server, request.expires_at)
        return self._claimed(server, request.name, request.expires_at)

    def _shared(self, server: manifests.Server, expires_at: float | None) -> PodPlacement:
        """The shared server, made when missing; its predefined logins locked once."""
        if self.cluster.get("Sandbox", server.name) is None:
            self._make_shared(server, _until(expires_at))
        sandbox = self.cluster.wait_ready("Sandbox", server.name, READY_S)
        self._leases.keep(self.cluster, "Sandbox", server.name, expires_at)
        kind = server.pod.engine.kind
        if logins.predefined(kind) and server.name not in self._secured:
            login = self.cluster.secret(server.secret_name) or {}
            with _admin_url(self.cluster, sandbox, server, login) as url:
                logins.secure(kind, url, ADMIN, None)
            self._secured.add(server.name)
        return self._reach(sandbox, server, server.secret_name, dedicated=None)

    def _claimed(
        self, server: manifests.Server, name: str, expires_at: float | None
    ) -> PodPlacement:
        """A server of the root's warm pool (template and pool made when missing), claimed
        and made the sandbox's own; a claim that cannot be is deleted at once."""
        lease = _until(expires_at)
        self._pools.add(server.name)
        if self.cluster.get("SandboxTemplate", server.name) is None:
            bootstrap = logins.new_password()
            for manifest in manifests.placement_objects(
                "dedicated", server, ADMIN, bootstrap, lease, replicas=self.pool_size
            ):
                self.cluster.create(manifest)
        made = self.cluster.create(manifests.claim(manifests.dns_name(name), server, lease))
        meta = made["metadata"]
        try:
            sandbox = self.cluster.wait_ready("SandboxClaim", meta["name"], READY_S)
            secret = _rotated(self.cluster, server, made, sandbox)
        except BaseException:
            with suppress(Exception):  # the error that matters is the one being raised
                self.cluster.delete("SandboxClaim", meta["name"], uid=meta.get("uid"))
            raise
        self._leases.keep(self.cluster, "SandboxClaim", meta["name"], expires_at)
        return self._reach(sandbox, server, secret, dedicated=made)

    def _make_shared(self, server: manifests.Server, lease: float) -> None:
        """The server Sandbox first, then what it needs, owned by it (gone when it goes: its
        pod waits for the Secret it reads)."""
        password = logins.new_password()
        *parts, server_object = manifests.placement_objects(
            "shared", server, ADMIN, password, lease
        )
        made = self.cluster.create(server_object)
        for part in parts:
            self.cluster.create(manifests.owned_by(part, made))

    def _server(self, kind: str, root: Path, limits: Any) -> manifests.Server:
        label = manifests.root_label(str(root))[:10]
        return manifests.Server(
            name=manifests.dns_name(f"sqlfence-{kind}-{self.placement[:3]}-{label}"),
            namespace=self.cluster.namespace,
            pod=manifests.server_pod(kind),
            root=str(root),
            owner=Owner.current(),
            limits=limits if self.placement == "dedicated" else None,
            isolation=self.isolation,
            image=self.image,
        )

    def _reach(
        self,
        sandbox: manifests.Manifest,
        server: manifests.Server,
        secret: str,
        dedicated: manifests.Manifest | None,
    ) -> PodPlacement:
        login = self.cluster.secret(secret) or {}
        host, port, tunnel = self.cluster.endpoint(sandbox, server.pod.engine.port)
        url = server.pod.engine.admin_url(
            host,
            port,
            login.get(manifests.ADMIN_USER_KEY, ADMIN),
            login.get(manifests.ADMIN_PASSWORD_KEY, ""),
        )
        return PodPlacement(self.cluster, url, tunnel, dedicated, self._leases)

    def keep_warm(self, size: int) -> None:
        """Keep ``size`` dedicated servers warm (a ``SandboxPool`` of that size calls it): the
        warm pool's replicas, set when it is made, or patched when it exists already."""
        self.pool_size = size
        if self.placement == "dedicated" and self._cluster is not None:
            for name in self._pools:
                self._cluster.patch("SandboxWarmPool", name, {"spec": {"replicas": size}})

    def warm_status(self) -> dict[str, Any]:
        """The warm pools' readiness: replicas asked for and ready, per pool."""
        if self._cluster is None:
            return {}
        status = {}
        for name in sorted(self._pools):
            found = self._cluster.get("SandboxWarmPool", name) or {}
            seen = found.get("status") or {}
            status[name] = {
                "replicas": (found.get("spec") or {}).get("replicas", 0),
                "ready": seen.get("readyReplicas", 0),
            }
        return status

    def stop(self) -> None:
        """Stop renewing leases (the servers end with them) and close the tunnels."""
        self._leases.stop()

    @classmethod
    def reopen(cls, record: Record, root: Path) -> PodPlacement | GivenServer:
        """The recorded sandbox's server, from another process: its claim when it has one,
        else the shared server of its root and kind; a placement holding nothing when gone."""
        runtime = cls()
        try:
            cluster = runtime.cluster
        except SandboxError:
            return GivenServer(None)
        claim = cluster.get("SandboxClaim", manifests.dns_name(record.name))
        if claim is not None:
            runtime.placement = "dedicated"
            server = runtime._server(record.backend, root, None)
            sandbox = cluster.wait_ready("SandboxClaim", claim["metadata"]["name"], READY_S)
            return runtime._reach(sandbox, server, _claim_secret(claim), dedicated=claim)
        server = runtime._server(record.backend, root, None)
        if cluster.get("Sandbox", server.name) is None:
            return _Gone(None)
        sandbox = cluster.wait_ready("Sandbox", server.name, READY_S)
        return runtime._reach(sandbox, server, server.secret_name, dedicated=None)

    @classmethod
    def sweep(cls, root: Path, everything: bool) -> list[str]:
        """Objects of ``root`` whose owner is gone or whose lease ended (all: ``everything``);
        nothing, without a round trip, when no cluster is configured."""
        if choose() is None:
            return []
        try:
            cluster = Cluster()
        except SandboxError:
            return []
        removed = []
        for found in leftovers(cluster, str(root)):
            meta = found["metadata"]
            due = everything or not _owner(meta.get("labels") or {}).alive()
            if due and cluster.delete(found["kind"], meta["name"], uid=meta.get("uid")):
                removed.append(f"{found['kind']}/{meta['name']}")
        return removed


class PodPlacement(GivenServer):
    """A sandbox's server in the cluster: the shared one, or its own claimed one. Not
    paused whole (agent-sandbox's Suspended mode drops the pod), measured or watched here:
    the pod's readiness probe logs in, and a connection fails when the pod is gone."""

    outlives_process = False  # its lease ends when this process stops renewing it

    def __init__(
        self,
        cluster: Cluster,
        admin_url: str,
        tunnel: Tunnel | None,
        claim: manifests.Manifest | None,
        leases: Leases,
    ) -> None:
        super().__init__(admin_url, managed=True)  # sqlfence made it: confined server-wide
        self._cluster, self._tunnel, self._claim, self._leases = cluster, tunnel, claim, leases

    def holds_namespaces(self) -> bool:
        """Shared: drop the namespace in the server. Dedicated: the claim takes it along."""
        return self._claim is None

    def release(self) -> None:
        """Close the tunnel; delete the sandbox's own claim (its server goes with it)."""
        if self._tunnel is not None:
            self._tunnel.close()
        if self._claim is not None:
            meta = self._claim["metadata"]
            self._leases.drop("SandboxClaim", meta["name"])
            self._cluster.delete("SandboxClaim", meta["name"], uid=meta.get("uid"))


class _Gone(GivenServer):
    """A server that is no more: its namespaces went with it."""

    def holds_namespaces(self) -> bool:
        return False


class Leases:
    """Keeps the leases of this process's servers and claims ahead of now, on one thread."""

    def __init__(self) -> None:
        self._held: dict[tuple[str, str], tuple[Cluster, float | None]] = {}
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def keep(self, cluster: Cluster, kind: str, name: str, expires_at: float | None) -> None:
        """Renew ``kind``/``name`` until ``expires_at`` (None: while this process runs)."""
        with self._lock:
            self._held[(kind, name)] = (cluster, expires_at)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="sqlfence-k8s-leases")
                self._thread.daemon = True
                self._thread.start()

    def drop(self, kind: str, name: str) -> None:
        with self._lock:
            self._held.pop((kind, name), None)

    def stop(self) -> None:
        self._stopped.set()

    def _run(self) -> None:
        while not self._stopped.wait(LEASE_S / 3):
            with self._lock:
                held = list(self._held.items())
            for (kind, name), (cluster, expires_at) in held:
                body = manifests.renewed({"kind": kind}, _until(expires_at))
                try:
                    cluster.patch(kind, name, body)
                except Exception:  # the next round tries again; the lease still runs
                    continue


def _until(expires_at: float | None) -> float:
    """A lease's end: the sandbox's expiry, else ``LEASE_S`` from now (renewed)."""
    return expires_at if expires_at is not None else time.time() + LEASE_S


def _owner(labels: dict[str, str]) -> Owner:
    started = labels.get(f"{manifests.PREFIX}owner-started")
    return Owner(
        labels.get(f"{manifests.PREFIX}owner-host", ""),
        int(labels.get(f"{manifests.PREFIX}owner-pid", "0") or 0),
        int(started) if started else None,
    )


def _claim_secret(claim: manifests.Manifest) -> str:
    return f"{claim['metadata']['name']}-admin"


def _rotated(
    cluster: Cluster,
    server: manifests.Server,
    claim: manifests.Manifest,
    sandbox: manifests.Manifest,
) -> str:
    """Set a password of the claimed server's own (logged in with the template's bootstrap
    one), kept in a Secret the claim owns; the name of that Secret."""
    bootstrap = cluster.secret(server.secret_name) or {}
    password = logins.new_password()
    with _admin_url(cluster, sandbox, server, bootstrap) as url:
        logins.secure(server.pod.engine.kind, url, ADMIN, password)
    own = manifests.Server(
        name=claim["metadata"]["name"],
        namespace=server.namespace,
        pod=server.pod,
        root=server.root,
        owner=server.owner,
    )
    secret = manifests.owned_by(manifests.admin_secret(own, ADMIN, password), claim)
    cluster.create(secret)
    return own.secret_name


@contextmanager
def _admin_url(
    cluster: Cluster,
    sandbox: manifests.Manifest,
    server: manifests.Server,
    login: dict[str, str],
) -> Iterator[str]:
    """The admin URL of a ready server with ``login``'s password, reached as a client would
    (the Service FQDN in the cluster, else a port-forward closed after the block)."""
    host, port, tunnel = cluster.endpoint(sandbox, server.pod.engine.port)
    password = login.get(manifests.ADMIN_PASSWORD_KEY, "")
    try:
        yield server.pod.engine.admin_url(host, port, ADMIN, password)
    finally:
        if tunnel is not None:
            tunnel.close()

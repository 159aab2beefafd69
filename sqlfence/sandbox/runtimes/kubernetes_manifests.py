"""What the Kubernetes runtime asks a cluster for: agent-sandbox objects, as plain mappings.

Pure functions of their arguments (no client, no cluster), so that every object can be
checked against the ``v1beta1`` schemas of the agent-sandbox CRDs and the core API's models.
Two placements, as with Docker:

- **shared**: one ``Sandbox`` (``agents.x-k8s.io/v1beta1``) runs a database server that holds
  many agents' databases or namespaces; beside it a ``Secret`` with its admin password and a
  ``NetworkPolicy``. The default for IRIS, whose pods are large and slow to start.
- **dedicated**: one server per agent, claimed from a warm pool: a ``SandboxTemplate`` (the
  pod, and the network policy the controller manages), a ``SandboxWarmPool`` of it, and one
  ``SandboxClaim`` per agent. Every pod of a template shares the template's bootstrap
  password (a claim that carries ``env`` starts cold, so a warm pod cannot carry a secret of
  its own); on claim the runtime rotates that password (``kubernetes_logins``), and the
  database's backend then makes the agent's login as on any server.

Every object carries sqlfence's labels (who made it, for which sandbox root), and a server's
lease is its ``shutdownTime`` with ``shutdownPolicy: Delete``: when the owning process dies and
stops renewing it, the controller deletes the server even if nobody runs ``gc``.

The pod: the database as a non-root user with no privilege escalation and no capabilities,
a read-only root file system with its writable paths mounted (PostgreSQL; IRIS's stays
writable, see ``IRIS_POD``), limits from ``Limits`` (CPU, memory, and disk as the size limit
of the data volume, or of the container's writable layer where there is none), no service
links, no service account token, a readiness probe that logs in without the admin password
(so that a claim's rotation cannot fail it: PostgreSQL's admin over the Unix socket, IRIS's
operating-system user), and the isolation runtime class (``gvisor``, ``kata-qemu``) when one
is asked for. A process-count limit is not a pod field: the
kubelet's ``podPidsLimit`` sets it cluster-wide.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal

from sqlfence import databases
from sqlfence.errors import ConfigurationError
from sqlfence.sandbox.limits import Limits
from sqlfence.sandbox.registry import Owner
from sqlfence.sandbox.runtimes.docker_specs import IRIS, POSTGRES, EngineSpec, memory_bytes

GROUP = "agents.x-k8s.io"
EXTENSIONS_GROUP = "extensions.agents.x-k8s.io"
VERSION = "v1beta1"  # agent-sandbox 1.0 removed v1alpha1
SANDBOX_API = f"{GROUP}/{VERSION}"
EXTENSIONS_API = f"{EXTENSIONS_GROUP}/{VERSION}"
PREFIX = "sqlfence.dev/"
MANAGED = {"app.kubernetes.io/managed-by": "sqlfence"}
CLIENT_LABEL = f"{PREFIX}client"  # pods with this label "true" may reach the database port
ADMIN_USER_KEY, ADMIN_PASSWORD_KEY = "username", "password"  # keys of the admin Secret
CONTAINER = "database"
Placement = Literal["shared", "dedicated"]
Manifest = dict[str, Any]
_DNS_LABEL = re.compile(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?")
_LABEL_VALUE = re.compile(r"([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?")
_MI = 1024 * 1024


@dataclass(frozen=True)
class ServerPod:
    """How one database kind runs in a pod, beside its Docker ``EngineSpec``.

    ``uid``/``gid`` are the image's database user (the official images: 999 for PostgreSQL,
    51773 for IRIS); ``data_env`` names the variable that points the server at a directory
    *inside* the data volume, because a volume's root is not the user's to ``chmod``.
    """

    engine: EngineSpec
    uid: int
    gid: int
    probe: tuple[str, ...]  # a shell command that logs in with the engine's admin variables
    data_mount: str | None = None
    data_env: tuple[str, str] | None = None  # (variable, directory under data_mount)
    start_seconds: int = 60  # how long the server may take to answer for the first time
    config_files: tuple[tuple[str, str], ...] = ()  # (path, text), mounted from a ConfigMap


# The probe must outlast the password: a claimed server's admin password is rotated, while
# the pod's environment keeps the template's bootstrap one. So it logs in as the admin over
# the Unix socket, which the image's pg_hba.conf trusts ("local all all trust"), after
# pg_isready has seen the server accept TCP on the database port: the image's first,
# socket-only server (while it runs its init scripts) does not count as ready.
POSTGRES_POD = ServerPod(
    engine=POSTGRES,
    uid=999,
    gid=999,
    probe=(
        "sh",
        "-c",
        f'pg_isready -q -h 127.0.0.1 -p {POSTGRES.port} -U "$POSTGRES_USER" -d postgres && '
        "psql -w -h /var/run/postgresql -U \"$POSTGRES_USER\" -d postgres -tAc 'SELECT 1' "
        ">/dev/null",
    ),
    data_mount="/var/lib/postgresql/data",
    data_env=("PGDATA", "/var/lib/postgresql/data/pgdata"),
    start_seconds=60,
)

# Written against InterSystems' documentation (no IRIS image runs on these machines).
#
# The probe logs in without a password. A password probe would fail once a claim's password
# is rotated, and each failure counts against IRIS's invalid-login limit, which can disable
# the admin; InterSystems' images enable operating-system authentication for irisowner
# (uid 51773, the user the kubelet runs the probe as), so ``iris session`` logs in as that
# user ("Ownership and Directories", Running InterSystems Products in Containers). The
# session exits 1 (``%SYSTEM.Process.Terminate``) until the image has made the admin named
# in IRIS_USERNAME, so Ready means the runtime can log in.
#
# The root file system stays writable. The same page puts the installation (with its mgr/
# directory: databases, journals, the write image journal, messages.log) under /usr/irissys,
# the working directory (iris-main.log) under /home/irisowner and the instance registry in
# /home/irisowner/irissys, and the image ships content in all three, so an empty volume
# cannot be mounted over any of them. Durable %SYS (ISC_DATA_DIRECTORY) moves the instance's
# data to a volume, but its documentation lists what moves as "including but not limited
# to", and names no complete set of the paths IRIS still writes outside it; the image's own
# start-up hook (which makes the admin) is not documented at all. A read-only root would be
# a guess, so the disk limit bounds the container's writable layer instead
# (``ephemeral-storage``).
_IRIS_PROBE = (
    "printf '%s\\n' "
    '"if ##class(Security.Users).Exists(\\"$IRIS_USERNAME\\")=0 '
    'do ##class(%SYSTEM.Process).Terminate(,1)" halt '
    '| iris session "${ISC_PACKAGE_INSTANCENAME:-IRIS}" -U %SYS >/dev/null'
)
IRIS_POD = ServerPod(
    engine=IRIS,
    uid=51773,
    gid=51773,
    probe=("sh", "-c", _IRIS_PROBE),
    start_seconds=300,
    config_files=IRIS.files,
)

PODS = {pod.engine.kind: pod for pod in (POSTGRES_POD, IRIS_POD)}


def server_pod(kind: str) -> ServerPod:
    """The pod facts of a database kind (any of its names); SQLite has no server to place."""
    database = databases.find(kind)
    pod = PODS.get(database.name) if database is not None else None
    if pod is None:
        if database is databases.SQLITE:
            raise ConfigurationError(
                "a sqlite sandbox is a file in this process: the kubernetes runtime places "
                "database servers (postgres, iris)"
            )
        raise ConfigurationError(f"no Kubernetes pod for {kind!r}; known: postgres, iris")
    return pod


@dataclass(frozen=True)
class Server:
    """One database server to place: the pod's facts, where, how big, how isolated.

    ``name`` must be a DNS label (it names the Service too); ``owner`` and ``root`` go into
    labels so that ``gc`` finds what a dead process left; ``clients`` are the labels of the
    pods allowed to reach the database port (the fence's pods, or the port-forward's).
    """

    name: str
    namespace: str
    pod: ServerPod
    root: str
    owner: Owner
    limits: Limits | None = None
    isolation: str | None = None  # runtimeClassName: gvisor, kata-qemu ...
    image: str | None = None  # default: the pod's engine image
    clients: Mapping[str, str] | None = None

    def __post_init__(self) -> None:
        if not _DNS_LABEL.fullmatch(self.name):
            raise ConfigurationError(
                f"{self.name!r} is not a Kubernetes name: lower-case letters, digits and '-', "
                "a letter first, at most 63 characters"
            )

    @property
    def secret_name(self) -> str:
        """The Secret holding this server's admin user and password."""
        return f"{self.name}-admin"

    @property
    def selector(self) -> dict[str, str]:
        """The labels that pick this server's pod."""
        return {f"{PREFIX}server": self.name}


def dns_name(text: str) -> str:
    """``text`` as a DNS label: lower case, '-' for the rest, a hash kept when shortened."""
    cleaned = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    if not cleaned or not cleaned[0].isalpha():
        cleaned = f"s-{cleaned}".rstrip("-")
    if len(cleaned) > 63:
        digest = hashlib.sha256(text.encode()).hexdigest()[:8]
        cleaned = f"{cleaned[:54].rstrip('-')}-{digest}"
    return cleaned


def owner_labels(root: str, owner: Owner) -> dict[str, str]:
    """The labels saying who made an object and for which sandbox root (``gc`` selects on
    them). A root is a path, which a label value cannot hold: its hash is the label, the path
    an annotation."""
    labels = {
        **MANAGED,
        f"{PREFIX}root": root_label(root),
        f"{PREFIX}owner-host": _label_value(owner.host),
        f"{PREFIX}owner-pid": str(owner.pid),
    }
    if owner.started is not None:
        labels[f"{PREFIX}owner-started"] = str(owner.started)
    return labels


def root_label(root: str) -> str:
    """The label value standing for a sandbox root: a hash of its absolute path."""
    return hashlib.sha256(root.encode()).hexdigest()[:16]


def lease_time(until: float) -> str:
    """A ``shutdownTime``: RFC 3339 in UTC, whole seconds."""
    moment = datetime.fromtimestamp(until, timezone.utc).replace(microsecond=0)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def owned_by(manifest: Manifest, owner: Manifest) -> Manifest:
    """``manifest`` with an ownerReference to ``owner`` (an object the server returned, so it
    has a uid): deleting the owner deletes it."""
    meta = owner["metadata"]
    reference = {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": False,
        "blockOwnerDeletion": False,
    }
    metadata = {**manifest["metadata"], "ownerReferences": [reference]}
    return {**manifest, "metadata": metadata}


# -- core objects ------------------------------------------------------------------------


def admin_secret(server: Server, user: str, password: str) -> Manifest:
    """The Secret the pod reads its admin login from (and the runtime, to log in)."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _metadata(server.secret_name, server),
        "type": "Opaque",
        "stringData": {ADMIN_USER_KEY: user, ADMIN_PASSWORD_KEY: password},
    }


def config_map(server: Server) -> Manifest | None:
    """The files the server reads at start (IRIS's CPF merge file), or None."""
    if not server.pod.config_files:
        return None
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _metadata(f"{server.name}-files", server),
        "data": {_file_key(path): text for path, text in server.pod.config_files},
    }


def ingress_rules(server: Server) -> list[Manifest]:
    """Who may connect: pods labelled as sqlfence's clients, on the database port only."""
    clients = dict(server.clients or {CLIENT_LABEL: "true"})
    return [
        {
            "from": [{"podSelector": {"matchLabels": clients}}],
            "ports": [{"protocol": "TCP", "port": server.pod.engine.port}],
        }
    ]


def network_policy(server: Server) -> Manifest:
    """Ingress from sqlfence's clients on the database port; no egress at all.

    A port-forward reaches the pod through the kubelet, not the pod network, so it works
    under this policy; a probe is run by the kubelet too.
    """
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _metadata(f"{server.name}-database", server),
        "spec": {
            "podSelector": {"matchLabels": server.selector},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": ingress_rules(server),
            "egress": [],
        },
    }


# -- agent-sandbox objects ---------------------------------------------------------------


def pod_template(server: Server) -> Manifest:
    """The ``podTemplate`` of a Sandbox or SandboxTemplate: metadata and a full PodSpec."""
    pod = server.pod
    limits = server.limits or Limits()
    volumes, mounts = _volumes(server, limits)
    spec: Manifest = {
        "enableServiceLinks": False,
        "automountServiceAccountToken": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": pod.uid,
            "runAsGroup": pod.gid,
            "fsGroup": pod.gid,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [_container(server, limits, mounts)],
        "volumes": volumes,
    }
    if server.isolation:
        spec["runtimeClassName"] = server.isolation
    labels = {**owner_labels(server.root, server.owner), **server.selector}
    return {"metadata": {"labels": labels}, "spec": spec}


def sandbox(server: Server, lease_until: float) -> Manifest:
    """A shared server: one Sandbox, with its headless Service, deleted when its lease ends."""
    return {
        "apiVersion": SANDBOX_API,
        "kind": "Sandbox",
        "metadata": _metadata(server.name, server, role="server"),
        "spec": {
            "podTemplate": pod_template(server),
            "service": True,
            "operatingMode": "Running",
            "shutdownTime": lease_time(lease_until),
            "shutdownPolicy": "Delete",
        },
    }


def sandbox_template(server: Server) -> Manifest:
    """The blueprint of dedicated servers; its network policy replaces the controller's
    default (which admits only the project's router, and so no database client)."""
    return {
        "apiVersion": EXTENSIONS_API,
        "kind": "SandboxTemplate",
        "metadata": _metadata(server.name, server, role="template"),
        "spec": {
            "podTemplate": pod_template(server),
            "service": True,
            "networkPolicyManagement": "Managed",
            "networkPolicy": {"ingress": ingress_rules(server), "egress": []},
            "envVarsInjectionPolicy": "Disallowed",
        },
    }


def warm_pool(server: Server, replicas: int) -> Manifest:
    """``replicas`` dedicated servers kept running from the template of ``server``."""
    if replicas < 0:
        raise ConfigurationError(f"a warm pool's size cannot be negative ({replicas})")
    return {
        "apiVersion": EXTENSIONS_API,
        "kind": "SandboxWarmPool",
        "metadata": _metadata(server.name, server, role="pool"),
        "spec": {"replicas": replicas, "sandboxTemplateRef": {"name": server.name}},
    }


def claim(name: str, pool: Server, lease_until: float) -> Manifest:
    """One agent's dedicated server, taken from the warm pool of ``pool`` (a cold start when
    the pool is drained). No ``env`` and no volume templates: either would force a cold start."""
    if not _DNS_LABEL.fullmatch(name):
        raise ConfigurationError(f"{name!r} is not a Kubernetes name (see dns_name)")
    return {
        "apiVersion": EXTENSIONS_API,
        "kind": "SandboxClaim",
        "metadata": _metadata(name, pool, role="claim"),
        "spec": {
            "warmPoolRef": {"name": pool.name},
            "lifecycle": {"shutdownTime": lease_time(lease_until), "shutdownPolicy": "Delete"},
        },
    }


def renewed(manifest: Manifest, lease_until: float) -> Manifest:
    """The merge patch that moves a Sandbox's or a claim's lease to ``lease_until``."""
    when = lease_time(lease_until)
    if manifest["kind"] == "SandboxClaim":
        return {"spec": {"lifecycle": {"shutdownTime": when}}}
    return {"spec": {"shutdownTime": when}}


def placement_objects(
    placement: Placement,
    server: Server,
    user: str,
    password: str,
    lease_until: float,
    replicas: int = 0,
) -> list[Manifest]:
    """Everything one placement creates, in the order to create it."""
    files = config_map(server)
    common = [admin_secret(server, user, password), *([files] if files else [])]
    if placement == "shared":
        return [*common, network_policy(server), sandbox(server, lease_until)]
    return [*common, sandbox_template(server), warm_pool(server, replicas)]


# -- the pod's parts ---------------------------------------------------------------------


def _container(server: Server, limits: Limits, mounts: list[Manifest]) -> Manifest:
    pod = server.pod
    engine = pod.engine
    secret = server.secret_name
    env: list[Manifest] = [
        {"name": engine.user_env, "valueFrom": _secret_key(secret, ADMIN_USER_KEY)},
        {"name": engine.password_env, "valueFrom": _secret_key(secret, ADMIN_PASSWORD_KEY)},
    ]
    if pod.data_env is not None:
        env.append({"name": pod.data_env[0], "value": pod.data_env[1]})
    for name, value in engine.environment("", "").items():
        if name not in (engine.user_env, engine.password_env):
            env.append({"name": name, "value": value})
    probe = {"exec": {"command": list(pod.probe)}, "timeoutSeconds": 5}
    container: Manifest = {
        "name": CONTAINER,
        "image": server.image or engine.image,
        "env": env,
        "ports": [{"name": "database", "containerPort": engine.port, "protocol": "TCP"}],
        "resources": _resources(limits, disk_in_layer=pod.data_mount is None),
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": engine.read_only_root,
            "capabilities": {"drop": ["ALL"]},
        },
        "startupProbe": {**probe, "periodSeconds": 2, "failureThreshold": pod.start_seconds // 2},
        "readinessProbe": {**probe, "periodSeconds": 5, "failureThreshold": 2},
        "volumeMounts": mounts,
    }
    args = engine.command(limits)
    if args:
        container["args"] = args
    return container


def _volumes(server: Server, limits: Limits) -> tuple[list[Manifest], list[Manifest]]:
    """The writable paths: the data directory (its size is the disk limit), and the engine's
    scratch directories when the root is read-only."""
    pod = server.pod
    volumes: list[Manifest] = []
    mounts: list[Manifest] = []
    if pod.data_mount is not None:
        empty: Manifest = {}
        if limits.disk_quota_mb is not None:
            empty["sizeLimit"] = _disk(limits.disk_quota_mb)
        volumes.append({"name": "data", "emptyDir": empty})
        mounts.append({"name": "data", "mountPath": pod.data_mount})
    if pod.engine.read_only_root:
        for index, path in enumerate(pod.engine.tmpfs):
            volumes.append({"name": f"scratch-{index}", "emptyDir": {"sizeLimit": "64Mi"}})
            mounts.append({"name": f"scratch-{index}", "mountPath": path})
    if pod.config_files:
        volumes.append(
            {"name": "files", "configMap": {"name": f"{server.name}-files", "defaultMode": 0o444}}
        )
        for path, _ in pod.config_files:
            key = _file_key(path)
            mounts.append({"name": "files", "mountPath": path, "subPath": key, "readOnly": True})
    return volumes, mounts


def _resources(limits: Limits, disk_in_layer: bool) -> Manifest:
    """Requests equal to limits (a Guaranteed pod when both are set): what is asked is held.
    The disk limit is the data volume's size; a server with no data volume (IRIS, written
    into its own root) gets it as the container's ``ephemeral-storage``, which bounds the
    writable layer and the logs."""
    bounded: dict[str, str] = {}
    if limits.cpu is not None:
        cpus = float(limits.cpu)
        if cpus <= 0:
            raise ConfigurationError(f"cpu limit must be positive, not {limits.cpu!r}")
        bounded["cpu"] = f"{round(cpus * 1000)}m"
    memory = memory_bytes(limits.memory)
    if memory is not None:
        bounded["memory"] = f"{memory // _MI}Mi" if memory % _MI == 0 else str(memory)
    if disk_in_layer and limits.disk_quota_mb is not None:
        bounded["ephemeral-storage"] = _disk(limits.disk_quota_mb)
    return {"limits": bounded, "requests": dict(bounded)} if bounded else {}


def _disk(megabytes: float) -> str:
    """A disk limit in MB as a quantity (at least 1Mi)."""
    return f"{max(1, round(megabytes))}Mi"


def _secret_key(secret: str, key: str) -> Manifest:
    return {"secretKeyRef": {"name": secret, "key": key}}


def _metadata(name: str, server: Server, role: str | None = None) -> Manifest:
    labels = owner_labels(server.root, server.owner)
    if role is not None:
        labels[f"{PREFIX}role"] = role
    return {
        "name": name,
        "namespace": server.namespace,
        "labels": labels,
        "annotations": {f"{PREFIX}root-path": server.root},
    }


def _file_key(path: str) -> str:
    """A ConfigMap key for a file path (keys allow letters, digits, '-', '_' and '.')."""
    return re.sub(r"[^-._a-zA-Z0-9]+", "-", path.strip("/"))


def _label_value(text: str) -> str:
    """``text`` as a label value (63 characters of ``[-A-Za-z0-9_.]``, alphanumeric ends)."""
    cleaned = re.sub(r"[^-A-Za-z0-9_.]+", "-", text)[:63].strip("-_.")
    return cleaned if _LABEL_VALUE.fullmatch(cleaned) else ""

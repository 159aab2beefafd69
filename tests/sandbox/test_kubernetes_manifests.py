"""The Kubernetes runtime's manifests, checked as the API server would check them on create.

Every object of both placements, for each database that has a server, with and without
limits and isolation, must pass the ``v1beta1`` schemas of the real agent-sandbox CRDs and the
core API's models; the rejected variants (``data/kubernetes_rejected.yaml``) must fail them
with the reason given. No cluster is involved: see ``test_kubernetes_pod.py`` for the pod
spec proven to serve, and the live tests for the client calls.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from sqlfence.errors import ConfigurationError
from sqlfence.sandbox.limits import Limits
from sqlfence.sandbox.registry import Owner
from sqlfence.sandbox.runtimes import kubernetes_manifests as k8s
from tests.sandbox.kubernetes_schema import problems, require_reference

REJECTED = yaml.safe_load((Path(__file__).parent / "data" / "kubernetes_rejected.yaml").read_text())
OWNER = Owner("build-7.example.internal", 4242, 1_764_600_000)
FULL = Limits(cpu="0.5", memory="512M", disk_quota_mb=200)
LEASE = 1_764_700_000.0
VARIANTS: dict[str, dict[str, Any]] = {
    "bare": {},
    "limited": {"limits": FULL},
    "isolated": {"limits": FULL, "isolation": "gvisor"},
    "kata, own clients": {"isolation": "kata-qemu", "clients": {"app": "agent-runner"}},
}


@pytest.fixture(autouse=True)
def _crds() -> None:
    require_reference()


def server(kind: str, **options: Any) -> k8s.Server:
    return k8s.Server(
        name=f"{kind}-server",
        namespace="agents",
        pod=k8s.server_pod(kind),
        root="/srv/app/.sqlfence",
        owner=OWNER,
        **options,
    )


def every_object() -> list[tuple[str, dict[str, Any]]]:
    objects = []
    for kind in ("postgres", "iris"):
        for variant, options in VARIANTS.items():
            one = server(kind, **options)
            for placement in ("shared", "dedicated"):
                made = k8s.placement_objects(placement, one, "admin", "s3cret-!", LEASE, 3)
                if placement == "dedicated":
                    made.append(k8s.claim("agent-a1-x7", one, LEASE))
                for manifest in made:
                    objects.append((f"{kind}-{variant}-{placement}-{manifest['kind']}", manifest))
    return objects


EVERY = every_object()


@pytest.mark.parametrize("manifest", [m for _, m in EVERY], ids=[name for name, _ in EVERY])
def test_every_generated_object_is_accepted(manifest: dict[str, Any]) -> None:
    assert problems(manifest) == []


def test_both_placements_make_what_they_should() -> None:
    kinds = {
        placement: [
            m["kind"] for m in k8s.placement_objects(placement, server("iris"), "a", "p", LEASE)
        ]
        for placement in ("shared", "dedicated")
    }
    assert kinds == {
        "shared": ["Secret", "ConfigMap", "NetworkPolicy", "Sandbox"],
        "dedicated": ["Secret", "ConfigMap", "SandboxTemplate", "SandboxWarmPool"],
    }


@pytest.mark.parametrize("case", REJECTED, ids=[case["why"] for case in REJECTED])
def test_rejected_variants_fail_with_the_reason(case: dict[str, Any]) -> None:
    found = problems(case["manifest"])
    assert found, case["why"]
    assert any(case["expect"] in problem for problem in found), found


MUTATIONS = {
    "the design report's spec.image": lambda m: m["spec"].__setitem__("image", "postgres:16"),
    "a claim carrying env": lambda m: m["spec"].__setitem__("envs", [{"name": "X", "value": "1"}]),
    "v1alpha1": lambda m: m.__setitem__("apiVersion", "agents.x-k8s.io/v1alpha1"),
    "lease as a number": lambda m: m["spec"].__setitem__("shutdownTime", 1764700000),
    "an unknown operating mode": lambda m: m["spec"].__setitem__("operatingMode", "Paused"),
    "service as text": lambda m: m["spec"].__setitem__("service", "headless"),
    "a container port as text": lambda m: _container(m)["ports"][0].__setitem__(
        "containerPort", "5432"
    ),
    "privileged escalation as text": lambda m: _container(m)["securityContext"].__setitem__(
        "allowPrivilegeEscalation", "no"
    ),
    "a probe without a threshold": lambda m: _container(m)["readinessProbe"].__setitem__(
        "failureThreshold", 0
    ),
    "a bad memory quantity": lambda m: _container(m)["resources"]["limits"].__setitem__(
        "memory", "lots"
    ),
    "a label key with two slashes": lambda m: m["metadata"]["labels"].__setitem__("a/b/c", "x"),
}


def _container(manifest: dict[str, Any]) -> dict[str, Any]:
    container: dict[str, Any] = manifest["spec"]["podTemplate"]["spec"]["containers"][0]
    return container


@pytest.mark.parametrize("mutate", MUTATIONS.values(), ids=MUTATIONS.keys())
def test_a_generated_sandbox_with_one_fault_is_refused(mutate: Any) -> None:
    manifest = copy.deepcopy(k8s.sandbox(server("postgres", limits=FULL), LEASE))
    assert problems(manifest) == []
    mutate(manifest)
    assert problems(manifest) != []


def test_the_pod_is_hardened() -> None:
    pod = k8s.pod_template(server("postgres", limits=FULL, isolation="gvisor"))["spec"]
    container = pod["containers"][0]
    assert pod["enableServiceLinks"] is False
    assert pod["automountServiceAccountToken"] is False
    assert pod["runtimeClassName"] == "gvisor"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert container["resources"]["limits"] == {"cpu": "500m", "memory": "512Mi"}
    assert container["resources"]["requests"] == container["resources"]["limits"]
    data = next(v for v in pod["volumes"] if v["name"] == "data")
    assert data["emptyDir"] == {"sizeLimit": "200Mi"}
    mounted = {m["mountPath"] for m in container["volumeMounts"]}
    assert mounted == {"/var/lib/postgresql/data", "/var/run/postgresql", "/tmp"}
    # the password is never in the pod spec: only a reference to the Secret
    assert "s3cret" not in str(pod)
    password = next(e for e in container["env"] if e["name"] == "POSTGRES_PASSWORD")
    assert password["valueFrom"]["secretKeyRef"]["name"] == "postgres-server-admin"


def test_the_iris_pod_bounds_its_writable_root_and_probes_without_a_password() -> None:
    """IRIS's root stays writable (its documentation names no complete set of the paths it
    writes): the disk limit is then the container's ephemeral storage, and the probe reads
    no password, so a claim's rotation cannot fail it."""
    pod = k8s.pod_template(server("iris", limits=FULL))["spec"]
    (container,) = pod["containers"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is False
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert pod["securityContext"]["runAsUser"] == 51773
    assert container["resources"]["limits"] == {
        "cpu": "500m",
        "memory": "512Mi",
        "ephemeral-storage": "200Mi",
    }
    assert container["resources"]["requests"] == container["resources"]["limits"]
    assert [v["name"] for v in pod["volumes"]] == ["files"]  # the CPF merge file only
    for probe in ("startupProbe", "readinessProbe"):
        assert "PASSWORD" not in " ".join(container[probe]["exec"]["command"])
    # PostgreSQL's disk limit is its data volume's size, not its writable layer's
    postgres = k8s.pod_template(server("postgres", limits=FULL))["spec"]["containers"][0]
    assert "ephemeral-storage" not in postgres["resources"]["limits"]
    assert "PASSWORD" not in " ".join(postgres["readinessProbe"]["exec"]["command"])


def test_dedicated_iris_makes_what_it_should() -> None:
    """A dedicated IRIS placement: its Secret, merge file, template and warm pool, and the
    claims; each accepted by the schemas (as every generated object is, above)."""
    one = server("iris", limits=FULL, isolation="gvisor")
    made = k8s.placement_objects("dedicated", one, "sandbox_admin", "bootstrap", LEASE, 2)
    made.append(k8s.claim("agent-a1-x7", one, LEASE))
    assert [m["kind"] for m in made] == [
        "Secret",
        "ConfigMap",
        "SandboxTemplate",
        "SandboxWarmPool",
        "SandboxClaim",
    ]
    for manifest in made:
        assert problems(manifest) == []
    template = made[2]["spec"]
    assert template["networkPolicy"]["ingress"][0]["ports"] == [{"protocol": "TCP", "port": 1972}]
    assert "env" not in made[-1]["spec"]  # a claim with env would start cold


def test_the_network_policy_admits_only_clients_on_the_database_port() -> None:
    policy = k8s.network_policy(server("postgres"))["spec"]
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    assert policy["egress"] == []
    assert policy["ingress"] == [
        {
            "from": [{"podSelector": {"matchLabels": {k8s.CLIENT_LABEL: "true"}}}],
            "ports": [{"protocol": "TCP", "port": 5432}],
        }
    ]
    assert policy["podSelector"] == {"matchLabels": {"sqlfence.dev/server": "postgres-server"}}


def test_leases_and_owners() -> None:
    made = k8s.sandbox(server("postgres"), LEASE)
    assert made["spec"]["shutdownPolicy"] == "Delete"
    assert made["spec"]["shutdownTime"] == "2025-12-02T18:26:40Z"
    assert k8s.renewed(made, LEASE + 60) == {"spec": {"shutdownTime": "2025-12-02T18:27:40Z"}}
    taken = k8s.claim("agent-a1-x7", server("postgres"), LEASE)
    assert k8s.renewed(taken, LEASE) == {
        "spec": {"lifecycle": {"shutdownTime": "2025-12-02T18:26:40Z"}}
    }
    labels = made["metadata"]["labels"]
    assert labels["sqlfence.dev/owner-pid"] == "4242"
    assert labels["sqlfence.dev/root"] == k8s.root_label("/srv/app/.sqlfence")
    assert made["metadata"]["annotations"]["sqlfence.dev/root-path"] == "/srv/app/.sqlfence"
    returned = {
        **made,
        "metadata": {**made["metadata"], "uid": "0d4c6f3e-1111-2222-3333-444455556666"},
    }
    secret = k8s.owned_by(k8s.admin_secret(server("postgres"), "a", "p"), returned)
    assert secret["metadata"]["ownerReferences"][0]["uid"].startswith("0d4c6f3e")
    assert problems(secret) == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("AGENT_A1_20261202_101010_ab12", "agent-a1-20261202-101010-ab12"),
        ("1st agent", "s-1st-agent"),
        ("___", "s"),
        ("x" * 80, "x" * 54 + "-" + k8s.dns_name("x" * 80)[-8:]),
    ],
)
def test_dns_names(text: str, expected: str) -> None:
    name = k8s.dns_name(text)
    assert name == expected
    assert len(name) <= 63


def test_bad_requests_are_refused_before_the_cluster() -> None:
    with pytest.raises(ConfigurationError, match="a sqlite sandbox is a file"):
        k8s.server_pod("sqlite")
    with pytest.raises(ConfigurationError, match="known: postgres, iris"):
        k8s.server_pod("mysql")
    with pytest.raises(ConfigurationError, match="is not a Kubernetes name"):
        server("postgres").__class__(
            name="Server_1", namespace="x", pod=k8s.POSTGRES_POD, root="/r", owner=OWNER
        )
    with pytest.raises(ConfigurationError, match="cannot be negative"):
        k8s.warm_pool(server("postgres"), -1)
    with pytest.raises(ConfigurationError, match="not a Kubernetes name"):
        k8s.claim("Agent 1", server("postgres"), LEASE)


RBAC = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes" / "rbac.yaml"


def test_the_rbac_manifest_is_valid_and_covers_what_the_runtime_does() -> None:
    """The repository's RBAC manifest parses into the client's models (unknown fields
    refused) and grants each kind of object the runtime creates, nothing cluster-wide."""
    from kubernetes import client

    documents = list(yaml.safe_load_all(RBAC.read_text()))
    models: dict[str, Any] = {"ServiceAccount": client.V1ServiceAccount, "Role": client.V1Role}
    models["RoleBinding"] = client.V1RoleBinding
    assert sorted(d["kind"] for d in documents) == ["Role", "RoleBinding", "ServiceAccount"]
    for document in documents:
        models[document["kind"]].model_validate(document)
    role = next(d for d in documents if d["kind"] == "Role")
    granted = {
        (g, r) for rule in role["rules"] for g in rule["apiGroups"] for r in rule["resources"]
    }
    made = {m["kind"] for _, m in EVERY}
    plural = {"Secret": ("", "secrets"), "ConfigMap": ("", "configmaps")}
    plural |= {"NetworkPolicy": ("networking.k8s.io", "networkpolicies")}
    plural |= {"Sandbox": ("agents.x-k8s.io", "sandboxes")}
    for kind in ("SandboxTemplate", "SandboxWarmPool", "SandboxClaim"):
        plural[kind] = ("extensions.agents.x-k8s.io", f"{kind.lower()}s")
    assert {plural[kind] for kind in made} <= granted
    assert ("", "pods/portforward") in granted

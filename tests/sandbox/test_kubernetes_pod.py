"""The Kubernetes runtime's pod spec serves: its container, run by a real Docker engine as
the kubelet would run it, starts PostgreSQL and passes its own readiness probe.

Each part of the generated container is carried over, not re-invented: the image, the
arguments, the environment (a ``secretKeyRef`` resolved from the generated Secret), the user
and group and the pod's ``fsGroup``, the read-only root file system with each ``emptyDir``
mounted writable at its path (owned by the ``fsGroup``, mode 2777, its ``sizeLimit`` as the
size), no capabilities and no privilege escalation, the memory and CPU limits. Then the
readiness probe's own command is run in the container until it answers, as the kubelet
would, and a client logs in from outside with the Secret's password. What a claim does to a
warm server (``kubernetes_logins.secure``) is run on it too, and the probe must still answer.

The local image's database user is uid 100 (Debian's package), not the official image's
999, so the pod facts are given that user, as a cluster running this image would need.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import psycopg
import pytest

from sqlfence.sandbox.limits import Limits
from sqlfence.sandbox.registry import Owner
from sqlfence.sandbox.runtimes import kubernetes_logins as logins
from sqlfence.sandbox.runtimes import kubernetes_manifests as k8s
from sqlfence.sandbox.runtimes.docker_specs import memory_bytes, nano_cpus

pytestmark = pytest.mark.docker
PASSWORD = "pod-probe-Secret-1"
ADMIN = "sandbox_admin"  # the runtime's admin login


def _server(image: str, engine: Any) -> k8s.Server:
    uid, gid = _database_user(engine, image)
    return k8s.Server(
        name="pod-check",
        namespace="agents",
        pod=dataclasses.replace(k8s.POSTGRES_POD, uid=uid, gid=gid),
        root="/srv/app/.sqlfence",
        owner=Owner.current(),
        limits=Limits(cpu="1", memory="256M", disk_quota_mb=256),
        image=image,
    )


def _database_user(engine: Any, image: str) -> tuple[int, int]:
    out = engine.containers.run(
        image, ["id", "-u", "postgres"], entrypoint=[], remove=True
    ).decode()
    group = engine.containers.run(
        image, ["id", "-g", "postgres"], entrypoint=[], remove=True
    ).decode()
    return int(out), int(group)


def _as_docker(pod: dict[str, Any], secret: dict[str, Any]) -> dict[str, Any]:
    """``docker run`` arguments that run the pod's one container as a kubelet would."""
    spec = pod["spec"]
    (container,) = spec["containers"]
    security = spec["securityContext"]
    values = secret["stringData"]
    env = {}
    for item in container["env"]:
        if "valueFrom" in item:
            reference = item["valueFrom"]["secretKeyRef"]
            assert reference["name"] == secret["metadata"]["name"]
            env[item["name"]] = values[reference["key"]]
        else:
            env[item["name"]] = item["value"]
    volumes = {volume["name"]: volume for volume in spec["volumes"]}
    tmpfs = {}
    for mount in container["volumeMounts"]:
        empty = volumes[mount["name"]]["emptyDir"]
        options = f"mode=2777,gid={security['fsGroup']}"
        if "sizeLimit" in empty:
            options += f",size={memory_bytes(empty['sizeLimit'].replace('Mi', 'M'))}"
        tmpfs[mount["mountPath"]] = options
    limits = container["resources"]["limits"]
    context = container["securityContext"]
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert context["allowPrivilegeEscalation"] is False
    return {
        "image": container["image"],
        "command": container.get("args"),
        "environment": env,
        "user": f"{security['runAsUser']}:{security['runAsGroup']}",
        "group_add": [str(security["fsGroup"])],
        "read_only": context["readOnlyRootFilesystem"],
        "tmpfs": tmpfs,
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges"],
        "mem_limit": memory_bytes(limits["memory"].replace("Mi", "M")),
        "nano_cpus": nano_cpus(int(limits["cpu"].removesuffix("m")) / 1000),
        "ports": {f"{container['ports'][0]['containerPort']}/tcp": ("127.0.0.1", None)},
        "labels": {"sqlfence": "test-kubernetes-pod"},
        "detach": True,
    }


def _probe(container: Any, command: list[str]) -> int:
    exit_code, _ = container.exec_run(command)
    return int(exit_code)


def test_the_generated_pod_serves_and_its_probe_logs_in(engine: Any, image: str) -> None:
    """The container starts as the kubelet would run it, its probe answers, a client logs in
    with the Secret's password, and the pod keeps its read-only root and its user."""
    server = _server(image, engine)
    pod = k8s.pod_template(server)
    secret = k8s.admin_secret(server, ADMIN, PASSWORD)
    container = engine.containers.run(**_as_docker(pod, secret))
    try:
        probe = pod["spec"]["containers"][0]["readinessProbe"]["exec"]["command"]
        _wait_ready(container, probe)
        container.reload()
        port = container.ports["5432/tcp"][0]["HostPort"]
        url = f"postgresql://{ADMIN}:{PASSWORD}@127.0.0.1:{port}/postgres"
        with psycopg.connect(url, connect_timeout=5) as conn:
            row = conn.execute("SELECT current_user, current_setting('data_directory')").fetchone()
        assert row == (ADMIN, "/var/lib/postgresql/data/pgdata")
        # the probe logs in for real: the same command as a role that does not exist fails
        wrong = [probe[0], probe[1], f"POSTGRES_USER=nobody; {probe[2]}"]
        assert _probe(container, wrong) != 0
        # it runs as the pod's user, on a read-only root with only the mounts writable
        assert container.exec_run(["id", "-u"]).output.decode().strip() == str(
            pod["spec"]["securityContext"]["runAsUser"]
        )
        assert _probe(container, ["sh", "-c", "touch /etc/sqlfence-probe"]) != 0
        assert _probe(container, ["sh", "-c", "touch /tmp/sqlfence-probe"]) == 0
    finally:
        container.remove(force=True)


def test_a_claimed_server_takes_its_own_password_and_stays_ready(engine: Any, image: str) -> None:
    """What a claim does to a warm server, on the generated container: the admin's bootstrap
    password (every warm pod's) is rotated to the sandbox's own, the bootstrap one is then
    refused, and the readiness probe still answers (a probe that used the password from the
    pod's environment would fail from then on, and the Sandbox would read as not ready)."""
    server = _server(image, engine)
    pod = k8s.pod_template(server)
    container = engine.containers.run(**_as_docker(pod, k8s.admin_secret(server, ADMIN, PASSWORD)))
    try:
        probe = pod["spec"]["containers"][0]["readinessProbe"]["exec"]["command"]
        _wait_ready(container, probe)
        container.reload()
        port = container.ports["5432/tcp"][0]["HostPort"]
        bootstrap = f"postgresql://{ADMIN}:{PASSWORD}@127.0.0.1:{port}/postgres"
        own = logins.new_password()
        logins.secure("postgres", bootstrap, ADMIN, own)
        url = f"postgresql://{ADMIN}:{own}@127.0.0.1:{port}/postgres"
        with psycopg.connect(url, connect_timeout=5) as conn:
            assert conn.execute("SELECT current_user").fetchone() == (ADMIN,)
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(bootstrap, connect_timeout=5).close()
        assert _probe(container, probe) == 0
    finally:
        container.remove(force=True)


def _wait_ready(container: Any, probe: list[str]) -> None:
    deadline = time.monotonic() + 60  # a poll bound, not a timing assertion
    while _probe(container, probe) != 0:
        container.reload()
        assert container.status == "running", container.logs(tail=30).decode()
        assert time.monotonic() < deadline, container.logs(tail=30).decode()
        time.sleep(0.5)

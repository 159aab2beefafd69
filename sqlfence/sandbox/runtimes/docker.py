"""``docker``: database servers started as containers with the docker SDK.

Two placements. ``shared``: one server container per (backend, image, sandbox root) for
this process, many sandbox namespaces in it (cheap; limits are the database's soft ones).
``dedicated``: one container per sandbox, whose ``limits`` become hard cgroup limits
(``cpu`` -> ``nano_cpus``, ``memory`` -> ``mem_limit`` with swap equal, ``pids``), with a
read-only root file system and tmpfs scratch where the image allows.

Every container carries labels saying who made it (host, pid, process start time), for
which sandbox root, tenant and agent, and when it expires, so ``reap()`` can remove what a
crashed process left behind. Ports are published on 127.0.0.1 only, chosen by the engine.
A process-wide watcher follows the engine's events: an OOM kill or a dead container is
reported to the sandbox that owns it.
"""

from __future__ import annotations

import contextlib
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from sqlfence import exits
from sqlfence.errors import ConfigurationError, SandboxError
from sqlfence.policies.model import Policy
from sqlfence.sandbox.backends.base import Backend, Contents, Namespace
from sqlfence.sandbox.limits import Limits
from sqlfence.sandbox.registry import Owner
from sqlfence.sandbox.runtimes.base import backend_for, drop_recorded
from sqlfence.sandbox.runtimes.docker_specs import (
    SPECS,
    EngineSpec,
    cpu_percent,
    memory_bytes,
    memory_used,
    nano_cpus,
    ready_logs_missing,
)

LABEL = "sqlfence"  # value: "server" on every container sqlfence starts
PLACEMENTS = ("shared", "dedicated")
DEFAULT_READY_TIMEOUT_S = 60.0
PROBE_TIMEOUT_S = 2.0  # one login attempt, readiness or health


def client() -> Any:
    """A docker client from the environment. Raises SandboxError when no engine answers."""
    try:
        import docker

        engine = docker.from_env()
        engine.ping()
    except Exception as error:
        raise SandboxError(f"no Docker engine answers ({error}); start dockerd") from error
    return engine


def owner_labels(root: Path, expires_at: float | None = None) -> dict[str, str]:
    """The labels saying who made a container, for which root, and until when."""
    owner = Owner.current()
    return {
        LABEL: "server",
        "sqlfence.root": str(root),
        "sqlfence.owner.host": owner.host,
        "sqlfence.owner.pid": str(owner.pid),
        "sqlfence.owner.started": "" if owner.started is None else str(owner.started),
        "sqlfence.expires_at": "" if expires_at is None else repr(expires_at),
    }


def label_owner(labels: dict[str, str]) -> Owner:
    """The owning process recorded in a container's labels."""
    started = labels.get("sqlfence.owner.started") or None
    return Owner(
        labels.get("sqlfence.owner.host", ""),
        int(labels.get("sqlfence.owner.pid", "0")),
        None if started is None else int(started),
    )


# -- containers --------------------------------------------------------------------------


class Server:
    """One running database container and the admin URL that reaches it."""

    def __init__(
        self,
        spec: EngineSpec,
        image: str,
        labels: dict[str, str],
        limits: Limits | None = None,
        ready_timeout: float = DEFAULT_READY_TIMEOUT_S,
    ) -> None:
        self.spec = spec
        self.engine = client()
        password = secrets.token_urlsafe(18)
        kwargs = _run_arguments(spec, limits)
        try:
            self.container = self.engine.containers.create(
                image,
                command=spec.command(limits or Limits()) or None,
                environment=spec.environment(spec.user, password),
                labels=labels,
                ports={f"{spec.port}/tcp": ("127.0.0.1", None)},
                detach=True,
                **kwargs,
            )
        except Exception as error:
            raise SandboxError(
                f"could not create a {spec.kind} container from {image}: {error}"
            ) from error
        try:
            for path, text in spec.files:
                _put_file(self.container, path, text)
            self.container.start()
            port = self._published_port(ready_timeout)
            self.admin_url = spec.admin_url("127.0.0.1", port, spec.user, password)
            self._wait_ready(ready_timeout)
        except BaseException:
            self.remove()
            raise
        # After the sandboxes in it are destroyed (a dedicated one usually goes with its own).
        exits.register(self, exits.SERVERS)

    @property
    def id(self) -> str:
        """The container id."""
        return str(self.container.id)

    def remove(self) -> None:
        """Remove the container and its anonymous volumes. No error when already gone."""
        exits.unregister(self, exits.SERVERS)
        remove_container(self.container)

    def at_exit(self) -> None:
        """Interpreter exit: remove the container."""
        self.remove()

    def status(self) -> str:
        """running, paused, exited, ... or ``gone``."""
        try:
            self.container.reload()
        except Exception:
            return "gone"
        return str(self.container.status)

    def logs(self, lines: int | None = 20) -> str:
        """The last ``lines`` lines of the container's log (all of it for None)."""
        with contextlib.suppress(Exception):
            tail = "all" if lines is None else lines
            return str(self.container.logs(tail=tail).decode(errors="replace")).strip()
        return ""

    def stats(self) -> dict[str, float]:
        """``cpu_percent`` and ``memory_used_mb`` (the formulas docker stats uses)."""
        raw = self.container.stats(stream=False)
        return {
            "cpu_percent": round(cpu_percent(raw), 2),
            "memory_used_mb": round(memory_used(raw) / (1024 * 1024), 2),
        }

    def _published_port(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while True:
            self.container.reload()
            bound = (self.container.attrs["NetworkSettings"]["Ports"] or {}).get(
                f"{self.spec.port}/tcp"
            )
            if bound:
                return int(bound[0]["HostPort"])
            if self.container.status not in ("created", "running") or (time.monotonic() > deadline):
                raise self._not_ready("its port was never published")
            time.sleep(0.05)

    def _wait_ready(self, timeout: float) -> None:
        """Until the spec's log lines have appeared in order and an admin login succeeds."""
        deadline = time.monotonic() + timeout
        delay = 0.05
        next_login = 0.0
        missing = self.spec.ready_logs
        while True:
            if missing:
                missing = ready_logs_missing(self.logs(None), self.spec.ready_logs)
            if not missing and time.monotonic() >= next_login:
                if self.spec.probe(self.admin_url, PROBE_TIMEOUT_S) == "ok":
                    return
                next_login = time.monotonic() + self.spec.probe_every
            if self.status() not in ("running", "created"):
                raise self._not_ready(f"the container stopped ({self.status()})")
            if time.monotonic() > deadline:
                waiting = f"the log line {missing[0]!r}" if missing else "an admin login"
                raise self._not_ready(f"not ready after {timeout:.0f} s, waiting for {waiting}")
            time.sleep(delay)
            delay = min(delay * 1.5, 0.5)

    def _not_ready(self, why: str) -> SandboxError:
        return SandboxError(
            f"{self.spec.kind} container {self.id[:12]} did not become ready: {why}; "
            f"last log lines:\n{self.logs()}"
        )


def _run_arguments(spec: EngineSpec, limits: Limits | None) -> dict[str, Any]:
    if limits is None:  # shared: no hard limits, the image's own layout
        return {"tmpfs": dict.fromkeys(spec.tmpfs, "")} if spec.tmpfs else {}
    from docker.types import Mount

    kwargs: dict[str, Any] = {}
    memory = memory_bytes(limits.memory)
    if memory is not None:
        kwargs["mem_limit"] = memory
        kwargs["memswap_limit"] = memory  # swap equal to memory: no swap on top
    cpus = nano_cpus(limits.cpu)
    if cpus is not None:
        kwargs["nano_cpus"] = cpus
    kwargs["pids_limit"] = limits.pids
    if spec.read_only_root:
        kwargs["read_only"] = True
        kwargs["tmpfs"] = dict.fromkeys(spec.tmpfs, "")
        if spec.data_dir:
            kwargs["mounts"] = [Mount(target=spec.data_dir, source=None, type="volume")]
    return kwargs


def _put_file(container: Any, path: str, text: str) -> None:
    import io
    import tarfile

    data = text.encode()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        info = tarfile.TarInfo(Path(path).name)
        info.size = len(data)
        info.mode = 0o644
        archive.addfile(info, io.BytesIO(data))
    container.put_archive(str(Path(path).parent), buffer.getvalue())


def remove_container(container: Any) -> None:
    """Force-remove ``container`` with its anonymous volumes; unpause first if paused."""
    with contextlib.suppress(Exception):
        container.reload()
        if container.status == "paused":
            container.unpause()
    with contextlib.suppress(Exception):
        container.remove(force=True, v=True)


class _Watcher:
    """Follows the engine's container events and reports OOM kills and deaths."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._listeners: dict[str, list[Callable[[str, str], None]]] = {}
        self._thread: threading.Thread | None = None

    def watch(self, container_id: str, listener: Callable[[str, str], None]) -> None:
        with self._lock:
            self._listeners.setdefault(container_id, []).append(listener)
            if self._thread is None or not self._thread.is_alive():
                stream = client().events(
                    decode=True, filters={"type": "container", "label": f"{LABEL}=server"}
                )
                self._thread = threading.Thread(
                    target=self._run, args=(stream,), name="sqlfence-docker-events", daemon=True
                )
                self._thread.start()

    def forget(self, container_id: str, listener: Callable[[str, str], None]) -> None:
        with self._lock:
            listeners = self._listeners.get(container_id, [])
            if listener in listeners:
                listeners.remove(listener)
            if not listeners:
                self._listeners.pop(container_id, None)

    def _run(self, stream: Iterator[dict[str, Any]]) -> None:
        with contextlib.suppress(Exception):
            for event in stream:
                action = str(event.get("Action") or event.get("status") or "")
                if action not in ("oom", "die"):
                    continue
                with self._lock:
                    listeners = list(self._listeners.get(str(event.get("id", "")), []))
                code = event.get("Actor", {}).get("Attributes", {}).get("exitCode", "")
                for listener in listeners:
                    with contextlib.suppress(Exception):
                        listener(action, str(code))


WATCHER = _Watcher()


# -- the runtime and the backend it hands out ----------------------------------------------


class DockerRuntime:
    """Servers in containers, ``shared`` (default) or ``dedicated`` per sandbox."""

    name = "docker"

    def __init__(
        self,
        placement: str = "shared",
        image: str | None = None,
        ready_timeout: float = DEFAULT_READY_TIMEOUT_S,
    ) -> None:
        if placement not in PLACEMENTS:
            raise ConfigurationError(f"placement must be one of {PLACEMENTS}, not {placement!r}")
        self.placement = placement
        self.image = image
        self.ready_timeout = ready_timeout

    def spec(self, kind: str) -> EngineSpec:
        """The engine spec of ``kind``. Raises ConfigurationError for SQLite and unknowns."""
        if kind == "sqlite":
            raise ConfigurationError("SQLite has no server: use runtime='embedded'")
        if kind not in SPECS:
            raise ConfigurationError(f"no container spec for backend {kind!r} (postgres, iris)")
        return SPECS[kind]

    def backend(self, kind: str, root: Path) -> Backend:
        """A backend whose namespaces live in containers of this runtime."""
        spec = self.spec(kind)
        return ContainerBackend(self, spec, self.image or spec.image, root)

    def stop(self) -> None:
        """Remove the shared servers this process started (dedicated ones go with sandboxes)."""
        stop_shared()


_shared: dict[tuple[str, str, str], Server] = {}
_shared_lock = threading.Lock()


def shared_server(runtime: DockerRuntime, spec: EngineSpec, image: str, root: Path) -> Server:
    """This process's shared server for (kind, image, root), started on first use."""
    key = (spec.kind, image, str(root))
    with _shared_lock:
        server = _shared.get(key)
        if server is not None and server.status() == "running":
            return server
        if server is not None:
            server.remove()
        labels = {**owner_labels(root), "sqlfence.placement": "shared"}
        server = Server(spec, image, labels, None, runtime.ready_timeout)
        _shared[key] = server
        return server


def stop_shared() -> None:
    """Remove every shared server this process started."""
    with _shared_lock:
        servers = list(_shared.values())
        _shared.clear()
    for server in servers:
        server.remove()


class ContainerBackend:
    """A ``Backend`` whose server is a container, plus the container's health and stats.

    Dedicated: ``create`` starts the sandbox's container, ``drop`` removes it, ``set_paused``
    is docker pause. Shared: namespaces on the process's shared server.
    """

    def __init__(self, runtime: DockerRuntime, spec: EngineSpec, image: str, root: Path) -> None:
        self.runtime = runtime
        self.spec = spec
        self.image = image
        self.root = root
        self.name = spec.kind  # SPECS maps "postgresql" to the "postgres" spec
        self.clones = spec.kind != "iris"
        self.shared_catalog = spec.kind == "postgres"  # as PostgresBackend's
        self.placement = runtime.placement
        self.server: Server | None = None
        self._inner: Backend | None = None
        self._failure: str | None = None
        self._sticky = False
        self._listeners: list[Callable[[str], None]] = []

    # -- the Backend protocol ----------------------------------------------------------

    def create(
        self, name: str, limits: Limits, policy: Policy, labels: dict[str, Any]
    ) -> Namespace:
        """Start (dedicated) or reuse (shared) a server, then make the namespace in it."""
        if self.placement == "dedicated":
            container_labels = {
                **owner_labels(self.root, _expiry(labels)),
                "sqlfence.placement": "dedicated",
                "sqlfence.sandbox": name,
                "sqlfence.agent_id": str(labels.get("agent_id") or ""),
                "sqlfence.tenant": str(labels.get("tenant") or ""),
            }
            self.server = Server(
                self.spec, self.image, container_labels, limits, self.runtime.ready_timeout
            )
        else:
            self.server = shared_server(self.runtime, self.spec, self.image, self.root)
        WATCHER.watch(self.server.id, self._on_event)
        self._inner = backend_for(self.spec.kind, self.root, self.server.admin_url, managed=True)
        return self._inner.create(name, limits, policy, labels)

    def drop(self, name: str) -> None:
        """Dedicated: remove the container. Shared: drop the namespace in the server."""
        if self.server is None:
            return
        WATCHER.forget(self.server.id, self._on_event)
        if self.placement == "dedicated":
            self._close_inner()
            self.server.remove()
        elif self._inner is not None and self.server.status() == "running":
            self._inner.drop(name)

    def names(self) -> list[str]:
        """Sandbox namespaces on this backend's server."""
        return self._backend().names()

    def size_bytes(self, name: str) -> int:
        """The namespace's size on disk."""
        return self._backend().size_bytes(name)

    def set_paused(self, name: str, paused: bool) -> None:
        """Dedicated: freeze or thaw the container. Shared: refuse new connections."""
        if self.placement == "dedicated" and self.server is not None:
            (self.server.container.pause if paused else self.server.container.unpause)()
        else:
            self._backend().set_paused(name, paused)

    def contents(self, name: str) -> Contents:
        """Tables, row counts and schema digest."""
        return self._backend().contents(name)

    def export_files(self, name: str, directory: Path) -> list[str]:
        """Portable snapshot files."""
        return self._backend().export_files(name, directory)

    def import_files(self, name: str, directory: Path, files: list[str]) -> None:
        """Load portable snapshot files."""
        self._backend().import_files(name, directory, files)

    def clone(self, name: str, clone: str) -> str:
        """In-server clone."""
        return self._backend().clone(name, clone)

    def restore_clone(self, name: str, clone: str, digest: str) -> None:
        """Restore an in-server clone."""
        self._backend().restore_clone(name, clone, digest)

    def drop_clone(self, clone: str) -> None:
        """Drop an in-server clone (nothing to do once a dedicated container is gone)."""
        if self.server is not None and self.server.status() == "running":
            self._backend().drop_clone(clone)

    def close(self) -> None:
        """Close admin connections (the container stays until ``drop``)."""
        self._close_inner()

    # -- the container side ------------------------------------------------------------

    def container_metrics(self) -> dict[str, Any]:
        """``cpu_percent``, ``memory_used_mb`` (of the whole shared server when shared)."""
        if self.server is None:
            return {}
        measured: dict[str, Any] = {"placement": self.placement, "container": self.server.id[:12]}
        with contextlib.suppress(Exception):
            measured.update(self.server.stats())
        return measured

    def failure(self) -> str | None:
        """Why the container is unusable (dead, OOM-killed), or None.

        An OOM kill the server survived is reported once; a dead container every time.
        """
        reason = self._failure
        if reason is not None and not self._sticky:
            self._failure = None
        return reason

    def healthy(self) -> bool:
        """True when the container runs and its server answers a login (or refuses one only
        for want of capacity: a full server is not a broken one)."""
        if self.server is None or self._sticky:
            return False
        if self.server.status() != "running":
            return False
        return self.spec.probe(self.server.admin_url, PROBE_TIMEOUT_S) in ("ok", "busy")

    def dead(self) -> bool:
        """True once the watcher saw the container die."""
        return self._sticky

    def on_failure(self, listener: Callable[[str], None]) -> None:
        """Call ``listener(reason)`` from the watcher thread when the container fails."""
        self._listeners.append(listener)

    def _on_event(self, action: str, exit_code: str) -> None:
        if action == "oom":
            self._failure = "its container ran out of memory and the OOM killer struck"
        else:
            self._failure = f"its container died (exit code {exit_code or '?'})"
            self._sticky = True
        for listener in list(self._listeners):
            listener(self._failure)

    def _backend(self) -> Backend:
        if self._inner is None:
            raise SandboxError("the container backend has no server yet")
        return self._inner

    def _close_inner(self) -> None:
        if self._inner is not None:
            self._inner.close()


def _expiry(labels: dict[str, Any]) -> float | None:
    value = labels.get("expires_at")
    return None if value is None else float(value)


# -- the reaper's side -------------------------------------------------------------------


def containers(root: Path) -> list[Any]:
    """Every container sqlfence started for sandbox root ``root`` (running or not)."""
    found: list[Any] = client().containers.list(
        all=True, filters={"label": [f"{LABEL}=server", f"sqlfence.root={root}"]}
    )
    return found


def admin_url_of(container: Any) -> str | None:
    """The admin URL of a running server container, rebuilt from its env and ports."""
    env = dict(item.split("=", 1) for item in container.attrs["Config"]["Env"] or [] if "=" in item)
    kind = "iris" if "IRIS_PASSWORD" in env else "postgres"
    spec = SPECS[kind]
    bound = (container.attrs["NetworkSettings"]["Ports"] or {}).get(f"{spec.port}/tcp")
    if container.status != "running" or not bound:
        return None
    user = env.get("IRIS_USERNAME" if kind == "iris" else "POSTGRES_USER", spec.user)
    password = env.get("IRIS_PASSWORD" if kind == "iris" else "POSTGRES_PASSWORD", "")
    return spec.admin_url("127.0.0.1", int(bound[0]["HostPort"]), user, password)


def drop_record(root: Path, name: str, kind: str, clones: tuple[str, ...]) -> None:
    """Remove sandbox ``name``'s container (dedicated) or its namespace in a shared server.

    Nothing to do when the container is already gone: its namespace went with it.
    """
    for container in containers(root):
        labels = container.labels
        if labels.get("sqlfence.sandbox") == name:
            remove_container(container)
        elif labels.get("sqlfence.placement") == "shared":
            url = admin_url_of(container)
            if url is not None:
                drop_recorded(kind, root, url, name, clones)


def reap_containers(root: Path, now: float | None = None, everything: bool = False) -> list[str]:
    """Remove containers of ``root`` whose owner is gone or that expired; return what went.

    A dedicated container is named by its sandbox, a shared one by its container id.
    """
    removed = []
    moment = now or time.time()
    for container in containers(root):
        labels = container.labels
        expires = labels.get("sqlfence.expires_at") or None
        expired = expires is not None and moment >= float(expires)
        if everything or expired or not label_owner(labels).alive():
            remove_container(container)
            removed.append(labels.get("sqlfence.sandbox") or container.id[:12])
    return removed

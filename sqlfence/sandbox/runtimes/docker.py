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
from sqlfence.sandbox.limits import Limits
from sqlfence.sandbox.registry import Owner, Record
from sqlfence.sandbox.runtimes.base import GivenServer, PlacementRequest, RuntimeOptions
from sqlfence.sandbox.runtimes.docker_specs import (
    EngineSpec,
    cpu_percent,
    memory_bytes,
    memory_used,
    nano_cpus,
    ready_logs_missing,
    spec_for,
    spec_of_container,
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
        return _status(self.container)

    def logs(self, lines: int | None = 20) -> str:
        """The last ``lines`` lines of the container's log (all of it for None)."""
        with contextlib.suppress(Exception):
            tail = "all" if lines is None else lines
            return str(self.container.logs(tail=tail).decode(errors="replace")).strip()
        return ""

    def _published_port(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while True:
            self.container.reload()
            port = _published(self.container, self.spec)
            if port is not None:
                return int(port)
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


# -- the runtime and the placements it hands out ------------------------------------------


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

    @classmethod
    def from_options(cls, options: RuntimeOptions) -> DockerRuntime:
        """``placement`` (default shared) and ``image`` (default: the database's)."""
        return cls(placement=options.placement or "shared", image=options.image)

    def check(self, kind: str) -> None:
        """A database with a container spec (PostgreSQL, IRIS)."""
        self.spec(kind)

    def spec(self, kind: str) -> EngineSpec:
        """The engine spec of ``kind``. Raises ConfigurationError for SQLite and unknowns."""
        return spec_for(kind)

    def place(self, request: PlacementRequest) -> ContainerPlacement:
        """Start the sandbox's own container (dedicated), or reuse the shared one."""
        spec = self.spec(request.kind)
        image = self.image or spec.image
        dedicated = self.placement == "dedicated"
        if dedicated:
            labels = {
                **owner_labels(request.root, request.expires_at),
                "sqlfence.placement": "dedicated",
                "sqlfence.sandbox": request.name,
                "sqlfence.agent_id": request.agent_id,
                "sqlfence.tenant": request.tenant or "",
            }
            server = Server(spec, image, labels, request.limits, self.ready_timeout)
        else:
            server = shared_server(self, spec, image, request.root)
        return ContainerPlacement(server.container, server.admin_url, dedicated, server)

    def stop(self) -> None:
        """Remove the shared servers this process started (dedicated ones go with sandboxes)."""
        stop_shared()

    @classmethod
    def reopen(cls, record: Record, root: Path) -> ContainerPlacement | GivenServer:
        """The sandbox's own container, or the shared one of its kind holding it; a placement
        holding nothing when the container is gone (its namespace went with it)."""
        shared = []
        for container in containers(root):
            labels = container.labels
            if labels.get("sqlfence.sandbox") == record.name:
                return ContainerPlacement(container, admin_url_of(container), dedicated=True)
            if labels.get("sqlfence.placement") == "shared" and (
                spec_of(container).kind == spec_for(record.backend).kind
            ):
                shared.append(container)
        for container in sorted(shared, key=lambda c: _port_of(c) not in record.location):
            url = admin_url_of(container)
            if url is not None:
                return ContainerPlacement(container, url, dedicated=False)
        return _GONE

    @classmethod
    def sweep(cls, root: Path, everything: bool) -> list[str]:
        """Containers of ``root`` whose owner is gone or that expired (none without an engine)."""
        try:
            client()
        except SandboxError:  # no engine, or no docker SDK: no containers to reap
            return []
        return reap_containers(root, everything=everything)


class _Gone(GivenServer):
    """A container that is no more: its namespaces went with it."""

    def holds_namespaces(self) -> bool:
        """Nothing left to drop."""
        return False


_GONE = _Gone(None)

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


class ContainerPlacement:
    """A sandbox's place in a container: its own (dedicated) or the shared server's.

    Dedicated: releasing removes the container (and the namespace in it), pausing freezes
    it. Shared: the namespace is dropped and paused in the server, which stays. Either way
    the engine's events say when the container dies or is OOM-killed.
    """

    managed = True  # sqlfence started it: confined server-wide
    outlives_process = False  # the owner's exit removes it (and the reaper, after a crash)

    def __init__(
        self, container: Any, admin_url: str | None, dedicated: bool, server: Server | None = None
    ) -> None:
        self.container = container
        self.admin_url = admin_url
        self.dedicated = dedicated
        self._server = server  # started by this process: removed at exit if still there
        self._spec = spec_of(container)
        self._failure: str | None = None
        self._sticky = False
        self._listeners: list[Callable[[str], None]] = []
        WATCHER.watch(self.container.id, self._on_event)

    def holds_namespaces(self) -> bool:
        """Shared and running: drop in the server. Dedicated, or gone: the container goes."""
        return not self.dedicated and _status(self.container) == "running"

    def release(self) -> None:
        """Stop following the container; remove it when it was the sandbox's own."""
        WATCHER.forget(self.container.id, self._on_event)
        if self.dedicated and self._server is not None:
            self._server.remove()
        elif self.dedicated:
            remove_container(self.container)

    def pause(self, paused: bool) -> bool:
        """Dedicated: docker pause or unpause. Shared: False (pause the namespace)."""
        if not self.dedicated:
            return False
        (self.container.pause if paused else self.container.unpause)()
        return True

    def metrics(self) -> dict[str, Any]:
        """``cpu_percent``, ``memory_used_mb`` (of the whole shared server when shared), by
        the formulas docker stats uses."""
        placement = "dedicated" if self.dedicated else "shared"
        measured: dict[str, Any] = {"placement": placement, "container": self.container.id[:12]}
        with contextlib.suppress(Exception):
            raw = self.container.stats(stream=False)
            measured["cpu_percent"] = round(cpu_percent(raw), 2)
            measured["memory_used_mb"] = round(memory_used(raw) / (1024 * 1024), 2)
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
        if self._sticky or self.admin_url is None or _status(self.container) != "running":
            return False
        return self._spec.probe(self.admin_url, PROBE_TIMEOUT_S) in ("ok", "busy")

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


def _status(container: Any) -> str:
    """running, paused, exited, ... or ``gone``."""
    try:
        container.reload()
    except Exception:
        return "gone"
    return str(container.status)


# -- the reaper's side -------------------------------------------------------------------


def containers(root: Path) -> list[Any]:
    """Every container sqlfence started for sandbox root ``root`` (running or not)."""
    found: list[Any] = client().containers.list(
        all=True, filters={"label": [f"{LABEL}=server", f"sqlfence.root={root}"]}
    )
    return found


def spec_of(container: Any) -> EngineSpec:
    """The engine spec of a server container sqlfence started, told from its environment."""
    return spec_of_container(_environment(container))


def _environment(container: Any) -> dict[str, str]:
    return dict(
        item.split("=", 1) for item in container.attrs["Config"]["Env"] or [] if "=" in item
    )


def _published(container: Any, spec: EngineSpec) -> str | None:
    """The host port the server's port is published on, or None."""
    bound = (container.attrs["NetworkSettings"]["Ports"] or {}).get(f"{spec.port}/tcp")
    return str(bound[0]["HostPort"]) if bound else None


def _port_of(container: Any) -> str:
    port = _published(container, spec_of(container))
    return f":{port}/" if port else "-"


def admin_url_of(container: Any) -> str | None:
    """The admin URL of a running server container, rebuilt from its env and ports."""
    env = _environment(container)
    spec = spec_of_container(env)
    port = _published(container, spec)
    if container.status != "running" or port is None:
        return None
    user = env.get(spec.user_env, spec.user)
    password = env.get(spec.password_env, "")
    return spec.admin_url("127.0.0.1", int(port), user, password)


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

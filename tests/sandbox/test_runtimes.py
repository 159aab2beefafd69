"""The runtime seam (sqlfence/sandbox/runtimes/): the registry by name, the checks each
runtime makes of its options, and a sandbox asking its runtime's placement, not its kind."""

from __future__ import annotations

from pathlib import Path

import pytest

from sqlfence.errors import ConfigurationError
from sqlfence.sandbox import AgentSandbox, reap
from sqlfence.sandbox.backends.base import backend_type
from sqlfence.sandbox.registry import Record, Registry
from sqlfence.sandbox.runtimes import RUNTIMES, runtime_for, runtime_type, runtime_types
from sqlfence.sandbox.runtimes.base import (
    GivenServer,
    PlacementRequest,
    Runtime,
    RuntimeOptions,
)
from sqlfence.sandbox.runtimes.docker import DockerRuntime
from sqlfence.sandbox.runtimes.embedded import EmbeddedRuntime
from sqlfence.sandbox.runtimes.external import ExternalRuntime
from sqlfence.sandbox.runtimes.kubernetes_runtime import KubernetesRuntime

# mypy checks that each runtime class is a Runtime (classmethods included).
_RUNTIMES: tuple[type[Runtime], ...] = (
    EmbeddedRuntime,
    ExternalRuntime,
    DockerRuntime,
    KubernetesRuntime,
)


class Frozen(GivenServer):
    """A placement that freezes its whole server and counts what the sandbox asked of it."""

    outlives_process = False

    def __init__(self) -> None:
        super().__init__(None)
        self.calls: list[str] = []

    def release(self) -> None:
        """Counted."""
        self.calls.append("release")

    def pause(self, paused: bool) -> bool:
        """Counted, and done: the namespace is not paused."""
        self.calls.append(f"pause {paused}")
        return True

    def metrics(self) -> dict[str, float]:
        """A reading of the server's own."""
        return {"cpu_percent": 12.5}


class Counting(EmbeddedRuntime):
    """The embedded runtime, placing every sandbox on a ``Frozen`` placement."""

    name = "embedded"  # records reopen as embedded ones

    def __init__(self) -> None:
        self.requests: list[PlacementRequest] = []
        self.placement = Frozen()

    def place(self, request: PlacementRequest) -> Frozen:
        """Counted."""
        self.requests.append(request)
        return self.placement


def test_every_registered_name_gives_its_runtime() -> None:
    """runtime_type(name) is the class named so; None (an old record) reads as external."""
    assert {name: runtime_type(name).name for name in RUNTIMES} == {n: n for n in RUNTIMES}
    assert runtime_type(None) is ExternalRuntime
    assert set(runtime_types()) == set(_RUNTIMES)
    with pytest.raises(ConfigurationError, match="not available"):
        runtime_type("kubernetes-someday")


@pytest.mark.parametrize(
    ("name", "backend", "options", "match"),
    [
        ("external", "postgres", RuntimeOptions(placement="dedicated"), "container runtime"),
        ("embedded", "sqlite", RuntimeOptions(image="postgres:17"), "container runtime"),
        ("embedded", "postgres", RuntimeOptions(), "SQLite only"),
        ("external", "postgres", RuntimeOptions(), "needs server_url"),
        ("external", "sqlite", RuntimeOptions(server_url="postgresql://h/p"), "no server"),
        ("docker", "sqlite", RuntimeOptions(), "no server"),
        ("docker", "postgres", RuntimeOptions(placement="sideways"), "placement must be"),
        ("kubernetes", "sqlite", RuntimeOptions(), "a sqlite sandbox is a file"),
        ("kubernetes", "postgres", RuntimeOptions(server_url="postgresql://h/p"), "no server_url"),
        ("kubernetes", "postgres", RuntimeOptions(placement="sideways"), "placement must be"),
    ],
)
def test_each_runtime_refuses_what_it_cannot_do(
    name: str, backend: str, options: RuntimeOptions, match: str
) -> None:
    """Options a runtime has no use for, and databases it cannot run, fail before anything."""
    with pytest.raises(ConfigurationError, match=match):
        runtime_for(name, backend, options)


def test_an_unknown_backend_is_refused() -> None:
    """backend_type names the known ones."""
    with pytest.raises(ConfigurationError, match="sqlite, postgres, iris"):
        backend_type("mongo")
    assert backend_type("postgresql").name == "postgres"


def test_the_sandbox_asks_its_placement(root: Path) -> None:
    """Pause, metrics and teardown go to the runtime's placement; the request names the
    sandbox, its limits and agent; a placement that dies with the process refuses detach."""
    runtime = Counting()
    sandbox = AgentSandbox.create(
        "a1", "t1", runtime=runtime, root=root, limits={"max_connections": 3}, ttl=60
    )
    (request,) = runtime.requests
    assert (request.name, request.kind, request.agent_id, request.tenant) == (
        sandbox.name, "sqlite", "a1", "t1"
    )  # fmt: skip
    assert request.limits.max_connections == 3
    assert request.expires_at == sandbox.expires_at
    sandbox.pause()
    sandbox.resume()
    assert sandbox.get_metrics()["cpu_percent"] == 12.5
    with pytest.raises(ConfigurationError, match="cannot outlive"):
        sandbox.detach()
    sandbox.destroy()
    assert runtime.placement.calls == ["pause True", "pause False", "release"]
    assert Registry(root.resolve()).get(sandbox.name) is None


def test_the_reaper_reopens_a_record_through_its_runtime(root: Path) -> None:
    """An orphaned record is dropped where its runtime says it is now."""
    home = root.resolve()
    sandbox = AgentSandbox.create("a1", root=home)
    sandbox.detach()
    record = Registry(home).get(sandbox.name)
    assert isinstance(record, Record)
    assert record.runtime == "embedded"
    assert isinstance(EmbeddedRuntime.reopen(record, home), GivenServer)
    assert sandbox.name in reap(home, everything=True)
    assert Registry(home).get(sandbox.name) is None


def test_the_command_line_offers_every_registered_runtime() -> None:
    """The CLI keeps its own list (it must not import the runtimes to build its parser)."""
    from sqlfence.cli.parser import RUNTIMES as OFFERED

    assert set(OFFERED) == {*RUNTIMES, "auto"}


class Warm(EmbeddedRuntime):
    """The embedded runtime with warm servers of its own to keep (as Kubernetes has)."""

    name = "embedded"

    def __init__(self) -> None:
        self.kept: list[int] = []

    def keep_warm(self, size: int) -> None:
        """Counted."""
        self.kept.append(size)

    def warm_status(self) -> dict[str, int]:
        """What the runtime would report of its warm servers."""
        return {"ready": self.kept[-1]}


def test_a_pool_asks_a_runtime_with_warm_servers_to_keep_as_many(root: Path) -> None:
    from sqlfence.sandbox import SandboxPool

    runtime = Warm()
    pool = SandboxPool(size=2, backend="sqlite", runtime=runtime, root=root, warmup=True)
    try:
        assert runtime.kept == [2]
        assert pool.metrics()["runtime"] == {"ready": 2}
    finally:
        pool.close()

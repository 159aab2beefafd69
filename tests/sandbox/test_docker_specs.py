"""The docker runtime's engine specs without an engine: when a server counts as ready, and
the IRIS health probe against real local processes that are not IRIS."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest

from sqlfence import databases
from sqlfence.errors import ConfigurationError
from sqlfence.sandbox.runtimes.docker_specs import (
    IRIS,
    POSTGRES,
    EngineSpec,
    ready_logs_missing,
    spec_for,
    spec_of_container,
)

IRIS_LINES = ("Enabling logons", "executed command")
# A log as the community image writes it: logons open, then the IRIS_PASSWORD hook runs.
STARTED = "[INFO] Starting InterSystems IRIS instance IRIS...\n... Enabling logons.\n"
HOOKED = STARTED + "[INFO] ...executed command iris session iris -U %SYS ...\n"


@pytest.mark.parametrize(
    ("log", "missing"),
    [
        ("", IRIS_LINES),
        (STARTED, ("executed command",)),
        (HOOKED, ()),
        ("executed command\nEnabling logons\n", ("executed command",)),  # out of order
        ("Enabling logons executed command", ()),
    ],
    ids=["nothing", "logons only", "hook done", "wrong order", "one line"],
)
def test_ready_means_every_line_in_order(log: str, missing: tuple[str, ...]) -> None:
    """IRIS is waited for until the hook's line follows "Enabling logons"."""
    assert ready_logs_missing(log, IRIS_LINES) == missing


def test_iris_waits_for_the_password_hook() -> None:
    """The IRIS spec waits for the hook's line after logons open, and paces its logins."""
    assert IRIS.ready_logs == IRIS_LINES
    assert IRIS.probe_every >= 1.0
    assert POSTGRES.ready_logs == ()


@pytest.mark.parametrize(
    ("spec", "database"),
    [(POSTGRES, databases.POSTGRES), (IRIS, databases.IRIS)],
    ids=["pg", "iris"],
)
def test_a_spec_runs_its_profiles_image(
    spec: EngineSpec, database: databases.DatabaseProfile
) -> None:
    """Image, port and admin login come from the profile; every name of it finds the spec."""
    assert database.image is not None
    assert (spec.kind, spec.image, spec.port, spec.user) == (
        database.name,
        database.image.name,
        database.default_port,
        database.image.user,
    )
    environment = spec.environment("admin", "s3cret")
    assert environment[spec.user_env] == environment[database.image.user_env] == "admin"
    assert environment[spec.password_env] == environment[database.image.password_env] == "s3cret"
    assert spec_of_container(environment) is spec
    for name in database.names:
        assert spec_for(name) is spec


def test_sqlite_and_unknown_kinds_have_no_spec() -> None:
    """SQLite has no server to run; a kind of no database names those that have one."""
    with pytest.raises(ConfigurationError, match="SQLite has no server"):
        spec_for("sqlite3")
    with pytest.raises(ConfigurationError, match=r"'mysql' \(postgres, iris\)"):
        spec_for("mysql")


def test_a_container_without_a_known_password_variable_is_postgres() -> None:
    """As before the profiles: a container is IRIS's only when IRIS's password is set."""
    assert spec_of_container({}) is POSTGRES
    assert spec_of_container({"IRIS_PASSWORD": "x", "POSTGRES_PASSWORD": "y"}) is IRIS


_LISTENER = """
import socket, sys, time
server = socket.socket()
server.bind(("127.0.0.1", 0))
server.listen(8)
print(server.getsockname()[1], flush=True)
mode = sys.argv[1]
while True:
    client, _ = server.accept()
    if mode == "http":
        client.recv(1024)
        client.sendall(b"HTTP/1.0 400 Bad Request\\r\\nContent-Length: 0\\r\\n\\r\\n")
    client.close()
"""


@pytest.fixture(params=["close", "http"])
def other_server(request: pytest.FixtureRequest) -> Iterator[int]:
    """A separate process listening on a local port that speaks something else than IRIS."""
    child = subprocess.Popen(
        [sys.executable, "-c", _LISTENER, request.param], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        yield int(child.stdout.readline())
    finally:
        child.kill()
        child.wait()


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A listener that accepts and then never says a word."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    accepted: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                accepted.append(server.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield server.getsockname()[1]
    finally:
        server.close()
        for client in accepted:
            client.close()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _url(port: int) -> str:
    return IRIS.admin_url("127.0.0.1", port, "_SYSTEM", "secret")


def test_a_refused_port_is_not_iris() -> None:
    """Nothing listening: the probe answers no."""
    assert IRIS.probe(_url(_free_port()), 1.0) == "no"


def test_another_server_is_not_iris(other_server: int) -> None:
    """A process that accepts and hangs up, or answers HTTP: no."""
    assert IRIS.probe(_url(other_server), 1.0) == "no"


def test_a_silent_server_is_not_iris(silent_server: int) -> None:
    """A listener that never answers: the probe gives up after its timeout and answers no."""
    assert IRIS.probe(_url(silent_server), 1.0) == "no"

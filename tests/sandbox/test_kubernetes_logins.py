"""What the Kubernetes runtime does to a server's logins before an agent's namespace goes in,
where no server is needed to check it: the IRIS statements it writes (table-driven,
``data/kubernetes_iris_passwords.yaml``), the order it runs them in (against a recorder
standing in for the admin session), its first-login wait, and the IRIS readiness probe's
shell (against a stand-in ``iris`` command that records what it is given).

PostgreSQL's rotation runs for real on the generated container (``test_kubernetes_pod``);
IRIS's, on a cluster (``test_kubernetes_iris_live``).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from sqlfence.errors import ConfigurationError, LicenceRefused, SandboxError
from sqlfence.sandbox.backends import iris_admin
from sqlfence.sandbox.runtimes import kubernetes_logins as logins
from sqlfence.sandbox.runtimes import kubernetes_manifests as k8s
from sqlfence.sandbox.runtimes.kubernetes_runtime import ADMIN, KubernetesRuntime

CASES = yaml.safe_load(
    (Path(__file__).parent / "data" / "kubernetes_iris_passwords.yaml").read_text()
)


@pytest.mark.parametrize("case", CASES, ids=[case["why"] for case in CASES])
def test_the_iris_password_statement(case: dict[str, str]) -> None:
    """ALTER USER delimits the name and quotes the password, or refuses what it cannot write."""
    if "statement" in case:
        assert iris_admin.password_statement(case["user"], case["password"]) == case["statement"]
    else:
        with pytest.raises(ConfigurationError, match=case["refused"]):
            iris_admin.password_statement(case["user"], case["password"])


def test_generated_passwords_fit_both_databases() -> None:
    """A new admin password is 32 URL-safe characters: IRIS's limit, nothing to quote."""
    passwords = {logins.new_password() for _ in range(50)}
    assert len(passwords) == 50
    for password in passwords:
        assert len(password) == 32
        iris_admin.password_statement(ADMIN, password)


def test_which_logins_are_locked() -> None:
    """IRIS's predefined %All and %Manager logins; PostgreSQL's image makes only the admin."""
    assert logins.predefined("iris") == ("_SYSTEM", "SuperUser", "Admin")
    assert logins.predefined("postgresql") == ()
    with pytest.raises(ConfigurationError, match="has no server"):
        logins.secure("sqlite", "sqlite:///x.db", ADMIN, "p4ssword")


def test_dedicated_iris_is_no_longer_refused() -> None:
    """check() accepts a dedicated IRIS placement (it asks no cluster), as does runtime_for."""
    from sqlfence.sandbox.runtimes import runtime_for
    from sqlfence.sandbox.runtimes.base import RuntimeOptions

    chosen = runtime_for("kubernetes", "iris", RuntimeOptions(placement="dedicated"))
    assert isinstance(chosen, KubernetesRuntime)
    assert chosen.placement == "dedicated"
    KubernetesRuntime(placement="dedicated").check("iris")
    KubernetesRuntime(placement="shared").check("iris")
    with pytest.raises(ConfigurationError, match="a sqlite sandbox is a file"):
        KubernetesRuntime(placement="dedicated").check("sqlite")


# -- the order of IRIS's statements, against a recorder ----------------------------------


class Recorder:
    """Stands in for ``iris_admin.IRISServer``: records what is run, answers ``Exists``."""

    made: list[Recorder] = []

    def __init__(self, parts: Any, existing: tuple[str, ...] = ("_SYSTEM", "SuperUser")) -> None:
        self.parts, self.existing = parts, existing
        self.done: list[str] = []
        self.fail_logins = 0
        self.closed = False
        Recorder.made.append(self)

    def query(self, statement: str) -> list[Any]:
        if self.fail_logins:
            self.fail_logins -= 1
            raise SandboxError("IRIS server 127.0.0.1:1972: cannot log in: Access Denied")
        self.done.append(statement)
        return []

    def call(self, class_name: str, method: str, *args: Any) -> Any:
        self.done.append(f"{class_name}.{method}{args}")
        return 1 if args[0] in self.existing else 0

    def set_password(self, user: str, password: str) -> None:
        self.query(iris_admin.password_statement(user, password))

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> type[Recorder]:
    Recorder.made = []
    monkeypatch.setattr(iris_admin, "IRISServer", Recorder)
    monkeypatch.setattr(logins, "_RETRY_S", 0.01)
    return Recorder


def test_a_claimed_iris_server_rotates_its_admin_then_locks_the_predefined(
    recorder: type[Recorder],
) -> None:
    """On claim: one session, logged in with the bootstrap password, the admin's password set,
    then each predefined login that exists given a password nobody keeps; closed after."""
    url = "iris://sandbox_admin:bootstrap-pw@127.0.0.1:31972/USER"
    logins.secure("iris", url, ADMIN, "own-password-of-this-sandbox")
    (server,) = recorder.made
    assert server.parts.password == "bootstrap-pw"
    assert server.parts.port == 31972
    done = server.done
    assert done[0] == "SELECT 1"
    assert done[1] == "ALTER USER \"sandbox_admin\" IDENTIFY BY 'own-password-of-this-sandbox'"
    assert done[2:] == [
        "Security.Users.Exists('_SYSTEM',)",
        done[3],
        "Security.Users.Exists('SuperUser',)",
        done[5],
        "Security.Users.Exists('Admin',)",
    ]
    for locked, name in ((done[3], "_SYSTEM"), (done[5], "SuperUser")):
        assert locked.startswith(f'ALTER USER "{name}" IDENTIFY BY \'')
    assert done[3] != done[5]  # a fresh random password each
    assert server.closed


def test_a_shared_iris_server_keeps_its_admin_password(recorder: type[Recorder]) -> None:
    """Shared: no rotation (its Secret holds the password), the predefined still locked."""
    logins.secure("iris", "iris://sandbox_admin:pw@10.0.0.7:1972/USER", ADMIN, None)
    (server,) = recorder.made
    assert not any("sandbox_admin" in statement for statement in server.done)
    assert sum(statement.startswith("ALTER USER") for statement in server.done) == 2


def test_the_first_login_waits_for_the_admin_but_not_for_a_licence(
    recorder: type[Recorder],
) -> None:
    """A login refused while the image makes its admin is tried again; a full server is not."""
    server = Recorder(None)
    server.fail_logins = 3
    logins._first_login(server, 5.0)  # type: ignore[arg-type]  # the recorder stands in
    assert server.done == ["SELECT 1"]
    server.fail_logins = 1000
    with pytest.raises(SandboxError, match="cannot log in"):
        logins._first_login(server, 0.05)  # type: ignore[arg-type]

    def full(statement: str) -> list[Any]:
        raise LicenceRefused("no licence unit")

    server.query = full  # type: ignore[method-assign]
    with pytest.raises(LicenceRefused):
        logins._first_login(server, 5.0)  # type: ignore[arg-type]


def test_a_failed_rotation_closes_the_session(
    recorder: type[Recorder], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The session is closed when the server refuses (the claim is deleted by the runtime)."""

    class Refusing(Recorder):
        def set_password(self, user: str, password: str) -> None:
            raise SandboxError("IRIS: ERROR #838: User sandbox_admin does not exist")

    monkeypatch.setattr(iris_admin, "IRISServer", Refusing)
    with pytest.raises(SandboxError, match="#838"):
        logins.secure("iris", "iris://sandbox_admin:pw@h:1972/USER", ADMIN, "new-password")
    assert recorder.made[-1].closed


# -- the IRIS readiness probe's shell, against a stand-in iris command -------------------


@pytest.fixture
def iris_command(tmp_path: Path) -> Path:
    """An ``iris`` on PATH that records its arguments and standard input, and exits with
    the status in STUB_EXIT (what ``%SYSTEM.Process.Terminate(, 1)`` gives a session)."""
    script = tmp_path / "bin" / "iris"
    script.parent.mkdir()
    script.write_text(
        '#!/bin/sh\nprintf "%s\\n" "$*" > "$STUB_LOG"\ncat >> "$STUB_LOG"\nexit "${STUB_EXIT:-0}"\n'
    )
    script.chmod(0o755)
    return script


def _run_probe(iris_command: Path, **env: str) -> tuple[int, str]:
    log = iris_command.parent / "log"
    environment = {
        "PATH": f"{iris_command.parent}:{os.environ['PATH']}",
        "STUB_LOG": str(log),
        "IRIS_USERNAME": ADMIN,
        "IRIS_PASSWORD": "bootstrap-Secret-1",
        **env,
    }
    probe = list(k8s.IRIS_POD.probe)
    done = subprocess.run(probe, env=environment, capture_output=True, timeout=30, check=False)
    return done.returncode, log.read_text()


def test_the_iris_probe_asks_a_session_whether_the_admin_exists(iris_command: Path) -> None:
    """The probe opens an operating-system-authenticated session in %SYS of instance IRIS and
    asks whether the admin named in IRIS_USERNAME exists; no password goes anywhere."""
    status, seen = _run_probe(iris_command)
    assert status == 0
    arguments, *lines = seen.splitlines()
    assert arguments == "session IRIS -U %SYS"
    assert lines == [
        'if ##class(Security.Users).Exists("sandbox_admin")=0 '
        "do ##class(%SYSTEM.Process).Terminate(,1)",
        "halt",
    ]
    assert "bootstrap-Secret-1" not in seen
    assert "PASSWORD" not in " ".join(k8s.IRIS_POD.probe)


def test_the_iris_probe_fails_while_the_session_does(iris_command: Path) -> None:
    """The session's exit status is the probe's: not ready until the admin exists."""
    status, _ = _run_probe(iris_command, STUB_EXIT="1")
    assert status == 1
    status, seen = _run_probe(iris_command, ISC_PACKAGE_INSTANCENAME="IRIS2")
    assert status == 0
    assert seen.startswith("session IRIS2 -U %SYS")

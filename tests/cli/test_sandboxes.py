"""``sqlfence sandbox ...`` and ``sqlfence pool warm`` on real SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import sqlfence
from sqlfence.cli import main
from sqlfence.sandbox import AgentSandbox, listing
from tests.cli.processes import cli
from tests.postgres_server import PostgresServer


def _cli(*args: str) -> str:
    done = cli("--json", *args)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_detached_sandbox_lifecycle(tmp_path: Path) -> None:
    """create outlives its command, gc keeps it, snapshot/restore work, destroy removes it."""
    root = str(tmp_path / "root")
    created = json.loads(_cli("sandbox", "create", "bot", "--root", root))
    name = created["name"]
    assert json.loads(_cli("sandbox", "gc", "--root", root)) == {"removed": []}
    with sqlfence.connect(created["url"], policy={"read_only": False, "statements": ["*"]}) as c:
        c.execute("CREATE TABLE notes (body TEXT)")
        c.execute("INSERT INTO notes VALUES ('kept')")
    snapshot = json.loads(_cli("sandbox", "snapshot", name, "before", "--root", root))
    assert snapshot["tables"] == {"notes": 1}
    with sqlfence.connect(created["url"], policy={"read_only": False}) as c:
        c.execute("DELETE FROM notes")
    _cli("sandbox", "restore", name, "before", "--root", root)
    opened = AgentSandbox.open(name, root)
    with opened.get_connection() as conn:
        assert conn.execute("SELECT body FROM notes").fetchall() == [("kept",)]
    _cli("sandbox", "destroy", name, "--root", root)
    assert listing(root) == []
    assert not Path(created["url"].removeprefix("sqlite:///")).exists()


def test_gc_all_removes_detached_sandboxes(tmp_path: Path) -> None:
    """A detached sandbox ends with `gc --all` (or its ttl)."""
    root = str(tmp_path / "root")
    name = json.loads(_cli("sandbox", "create", "bot", "--root", root))["name"]
    assert json.loads(_cli("sandbox", "gc", "--all", "--root", root)) == {"removed": [name]}


@pytest.mark.postgres
def test_postgres_sandbox_from_the_command_line(
    postgres_server: PostgresServer, tmp_path: Path
) -> None:
    """On PostgreSQL: create, snapshot, restore and destroy by name leave no database."""
    root = str(tmp_path / "root")
    created = json.loads(
        _cli("sandbox", "create", "pg-bot", "--backend", "postgres",
             "--server-url", postgres_server.url, "--root", root)
    )  # fmt: skip
    name = created["name"]
    _cli("sandbox", "snapshot", name, "s1", "--root", root)
    _cli("sandbox", "restore", name, "s1", "--root", root)
    with pytest.raises(sqlfence.SandboxError):
        AgentSandbox.open(name, root).get_connection()  # its role password stayed behind
    _cli("sandbox", "destroy", name, "--root", root)
    with sqlfence.connect(postgres_server.url, policy=sqlfence.Policy.unrestricted()) as admin:
        left = admin.execute(
            "SELECT datname FROM pg_database WHERE datname ILIKE %s", (f"{name}%",)
        ).fetchall()
    assert left == []


def test_pool_warm(tmp_path: Path) -> None:
    """`pool warm` reports when the pool's sandboxes are ready and leaves none behind."""
    root = str(tmp_path / "root")
    report = json.loads(_cli("pool", "warm", "--size", "2", "--root", root))
    assert report["ready"] == 2
    assert listing(root) == []


def test_create_prints_only_the_name(tmp_path: Path) -> None:
    """`N=$(sqlfence sandbox create a1)` captures the name: one line, nothing else."""
    root = str(tmp_path / "root")
    done = cli("sandbox", "create", "a1", "--root", root)
    assert done.returncode == 0
    (name,) = done.stdout.splitlines()
    assert [record.name for record in listing(root)] == [name]
    assert main(["sandbox", "destroy", name, "--root", root]) == 0


@pytest.mark.parametrize("ttl", ["-5", "0", "soon"])
def test_create_refuses_a_ttl_that_is_not_positive(ttl: str, tmp_path: Path) -> None:
    """--ttl must be a number of seconds above zero (exit 2), and nothing is created."""
    done = cli("sandbox", "create", "a1", "--ttl", ttl, "--root", str(tmp_path / "root"))
    assert done.returncode == 2
    assert "--ttl" in done.stderr
    assert listing(tmp_path / "root") == []


def test_list_piped_is_whole(tmp_path: Path) -> None:
    """Piped, `sandbox list` cuts no column: whole names, backends, owners and expiry times."""
    root = str(tmp_path / "root")
    for agent in ("a-rather-long-agent-name", "b"):
        cli("sandbox", "create", agent, "--ttl", "3600", "--tenant", "acme-corp", "--root", root)
    done = cli("sandbox", "list", "--root", root)
    assert done.returncode == 0
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["name", "backend", "agent", "tenant", "owner", "expires"]
    for record, line in zip(listing(root), lines[1:], strict=True):
        assert line.startswith(record.name + "  ")
        assert record.agent_id in line.split()
        assert line.endswith(" UTC")
        assert "detached" in line
    assert "…" not in done.stdout
    _cli("sandbox", "gc", "--all", "--root", root)


def test_pool_warm_says_why_it_cannot_start(tmp_path: Path) -> None:
    """A pool whose sandboxes cannot be made stops at the first failure and says why (exit 1),
    its metrics as lines rather than a Python dict."""
    pytest.importorskip("psycopg")
    done = cli("pool", "warm", "--size", "2", "--backend", "postgres", "--runtime", "external",
               "--server-url", "postgresql://nobody@127.0.0.1:1/postgres",
               "--root", str(tmp_path / "root"))  # fmt: skip
    assert done.returncode == 1
    assert "ready: 0" in done.stdout
    reason = next(line for line in done.stdout.splitlines() if line.startswith("reason: "))
    assert "127.0.0.1" in reason
    assert "{" not in done.stdout
    assert "  create_failures: " in done.stdout


def test_pool_warm_json_has_the_reason(tmp_path: Path) -> None:
    """--json: one document with ready, the reason and the metrics."""
    pytest.importorskip("psycopg")
    done = cli("--json", "pool", "warm", "--size", "1", "--backend", "postgres",
               "--runtime", "external", "--server-url", "postgresql://nobody@127.0.0.1:1/x",
               "--root", str(tmp_path / "root"))  # fmt: skip
    assert done.returncode == 1
    report = json.loads(done.stdout)
    assert report["ready"] == 0
    assert "127.0.0.1" in report["reason"]
    assert report["metrics"]["create_failures"] >= 1


def test_sandbox_gc_after_a_killed_process(tmp_path: Path) -> None:
    """A process that made a sandbox and was SIGKILLed leaves nothing after `sandbox gc`."""
    import subprocess
    import sys

    root = tmp_path / "root"
    script = (
        "import os, signal\n"
        "from sqlfence.sandbox import AgentSandbox\n"
        f"sb = AgentSandbox.create('crashy', root={str(root)!r})\n"
        "print(sb.name, flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    child = subprocess.run(
        [sys.executable, "-c", script], check=False, capture_output=True, text=True
    )
    name = child.stdout.strip()
    assert name
    assert [
        record["name"] for record in json.loads(_cli("sandbox", "list", "--root", str(root)))
    ] == [name]
    assert main(["sandbox", "gc", "--root", str(root)]) == 0
    assert main(["--json", "sandbox", "list", "--root", str(root)]) == 0
    assert not list(root.rglob("*.db"))


def test_a_missing_docker_image_gets_a_hint() -> None:
    """When the cause of a failure is Docker's ImageNotFound, pool warm says what to do."""
    from sqlfence.cli.sandboxes import _hint

    class ImageNotFound(Exception):
        """Stands in for docker.errors.ImageNotFound (only its name is looked at)."""

    try:
        try:
            raise ImageNotFound("postgres:16")
        except ImageNotFound as missing:
            raise sqlfence.SandboxError("could not create a postgres container") from missing
    except sqlfence.SandboxError as error:
        hint = _hint(error, {"image": "postgres:16"})
    assert "postgres:16 is not in the Docker engine" in hint
    assert "--image" in hint
    assert _hint(sqlfence.SandboxError("other"), {}) == ""

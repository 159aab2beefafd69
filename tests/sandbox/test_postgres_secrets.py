"""No secret on disk or in argv: PostgreSQL sandboxes on a server that asks for passwords.

The registry keeps the server's address only; pg_dump and pg_restore get the password in
their own environment; files are 0600 in 0700 directories; another process cleans up with
credentials from its environment, and says what is missing without them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

import psycopg
import pytest

from sqlfence.sandbox import AgentSandbox, CredentialsMissing, Registry, listing, naming, reap
from sqlfence.sandbox import credentials as creds
from tests.sandbox.conftest import (
    REPOSITORY,
    PasswordServer,
    files_holding,
    signal_when_ready,
    wide_modes,
)

pytestmark = pytest.mark.postgres

_TOOLS = ("pg_dump", "pg_restore", "psql")
# Shell: the argv separated by \x1f, then whether PGPASSWORD was in the environment.
_LOG_ARGV = '{ printf "%s\\037" "$0" "$@"; echo "PGPASSWORD=${PGPASSWORD+set}"; }'
# Makes a sandbox with a snapshot from the URL in SERVER_URL (never on a command line).
_CHILD = textwrap.dedent(
    """
    import os, sys, time
    from sqlfence.sandbox import AgentSandbox
    sb = AgentSandbox.create(agent_id="child", backend="postgres", runtime="external",
                             server_url=os.environ.pop("SERVER_URL"), root=sys.argv[1])
    with sb.get_connection() as conn:
        conn.execute("CREATE TABLE t (a integer)")
    sb.create_snapshot("s")
    print("ready", flush=True)
    time.sleep(600)
    """
)
_GC = (
    "import sys; from sqlfence.cli import main; "
    "sys.exit(main(['sandbox', 'gc', '--root', sys.argv[1]]))"
)


def _create(server: PasswordServer, root: Path, agent_id: str) -> AgentSandbox:
    return AgentSandbox.create(
        agent_id, backend="postgres", runtime="external", server_url=server.url, root=root
    )


def _sandbox_objects(server: PasswordServer) -> list[str]:
    with psycopg.connect(server.url, autocommit=True) as admin:
        rows = admin.execute(
            "SELECT datname FROM pg_database WHERE datname ~ %(p)s UNION ALL "
            "SELECT rolname FROM pg_roles WHERE rolname ~ %(p)s",
            {"p": naming.PATTERN},
        ).fetchall()
    return [row[0] for row in rows]


@pytest.fixture
def server(
    password_server: PasswordServer, no_stored_password: dict[str, str]
) -> Iterator[PasswordServer]:
    """The password server, in an environment holding no password; nothing may outlive it."""
    yield password_server
    assert _sandbox_objects(password_server) == []


@pytest.fixture
def argv_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """PATH starts with wrappers of pg_dump, pg_restore and psql that log their argv (and
    whether PGPASSWORD was in their environment), then run the real program."""
    log = tmp_path / "argv.log"
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for tool in _TOOLS:
        real = shutil.which(tool)
        if real is None:
            continue
        wrapper = bindir / tool
        wrapper.write_text(f"#!/bin/sh\n{_LOG_ARGV} >> '{log}'\nexec '{real}' \"$@\"\n")
        wrapper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    return log


def _calls(log: Path) -> list[tuple[list[str], str]]:
    """(argv, PGPASSWORD=set or PGPASSWORD=) of each wrapped program run."""
    calls = []
    for line in log.read_text().splitlines():
        *argv, environment = line.split("\x1f")
        calls.append((argv, environment))
    return calls


def test_no_password_on_disk_or_in_argv(server: PasswordServer, root: Path, argv_log: Path) -> None:
    """Create, snapshot (in-server and pg_dump), restore and load: no file under the root and
    no child's argv holds the admin or the role password; files 0600, directories 0700."""
    previous = os.umask(0)  # whatever is not private by its creating call comes out 0666/0777
    try:
        with _create(server, root, "a1") as sb:
            role_password = creds.split(sb.namespace.url)[1]
            assert role_password
            with sb.get_connection() as conn:
                conn.execute("CREATE TABLE entities (id integer PRIMARY KEY, secret text)")
                conn.execute("INSERT INTO entities VALUES (1, 'one'), (2, 'two')")
            sb.create_snapshot("own")
            sb.create_snapshot("golden", shared=True)
            with sb.get_connection() as conn:
                conn.execute("DELETE FROM entities")
            sb.load_snapshot("golden")
            sb.restore_snapshot("own")
            with sb.get_connection() as conn:
                assert conn.execute("SELECT count(*) FROM entities").fetchone()[0] == 2

            record = Registry(root).get(sb.name)
            assert record is not None
            assert record.server == server.address
            assert files_holding(root, server.password, role_password) == []
            assert wide_modes(root) == []
            assert (root / "snapshots" / "golden" / "data.pgdump").is_file()
    finally:
        os.umask(previous)
    calls = _calls(argv_log)
    assert {Path(argv[0]).name for argv, _ in calls} >= {"pg_dump", "pg_restore"}
    for argv, environment in calls:
        assert not any(server.password in arg or role_password in arg for arg in argv), argv
        assert environment == "PGPASSWORD=set"
    assert "PGPASSWORD" not in os.environ  # the child's environment only
    assert files_holding(root, server.password, role_password) == []


def test_gc_in_another_process_needs_and_takes_credentials_from_its_environment(
    server: PasswordServer,
    root: Path,
    no_stored_password: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A SIGKILLed creator's sandbox: `sqlfence sandbox gc` without a password says which
    server and how to give one (and keeps the record); with PGPASSWORD it removes it all."""
    with monkeypatch.context() as patch:
        patch.setenv("SERVER_URL", server.url)  # the child reads and drops it: not in its argv
        signal_when_ready(_CHILD, str(root))
    assert len(_sandbox_objects(server)) == 3  # database, clone, role
    gc = [sys.executable, "-c", _GC, str(root)]

    refused = subprocess.run(gc, env=no_stored_password, cwd=REPOSITORY, capture_output=True,
                             text=True, check=False)  # fmt: skip
    assert refused.returncode == 2, refused.stderr
    assert server.address in refused.stderr
    assert "needs an admin password" in refused.stderr
    assert "PGPASSWORD" in refused.stderr
    assert "PGPASSFILE" in refused.stderr
    assert server.password not in refused.stderr
    assert len(listing(root)) == 1
    assert len(_sandbox_objects(server)) == 3

    wrong = {**no_stored_password, "PGPASSWORD": "not-the-password"}
    refused = subprocess.run(gc, env=wrong, cwd=REPOSITORY, capture_output=True, text=True,
                             check=False)  # fmt: skip
    assert refused.returncode == 2
    assert "refused the admin password" in refused.stderr

    given = {**no_stored_password, "PGPASSWORD": server.password}
    done = subprocess.run(gc, env=given, cwd=REPOSITORY, capture_output=True, text=True,
                          check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "removed 1 sandbox" in done.stdout
    assert listing(root) == []
    assert _sandbox_objects(server) == []


def test_password_file_and_passed_credentials_work_too(
    server: PasswordServer, root: Path, no_stored_password: dict[str, str], tmp_path: Path
) -> None:
    """libpq's password file (PGPASSFILE) in a child process, or credentials= in this one."""
    passfile = tmp_path / "pgpass"
    passfile.write_text(f"127.0.0.1:{server.port}:*:postgres:{server.password}\n")
    passfile.chmod(0o600)
    first, second = _create(server, root, "a1"), _create(server, root, "a2")
    for sb in (first, second):
        sb.detach()
        sb.backend.close()
    script = (
        "import sys; from sqlfence.sandbox import AgentSandbox; "
        "AgentSandbox.open(sys.argv[1], root=sys.argv[2]).destroy()"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, first.name, str(root)],
        env={**no_stored_password, "PGPASSFILE": str(passfile)},
        cwd=REPOSITORY, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    with pytest.raises(CredentialsMissing, match="needs an admin password") as caught:
        reap(root, everything=True)
    assert caught.value.servers == (server.address,)
    assert reap(root, everything=True, credentials=[server.url]) == [second.name]
    assert _sandbox_objects(server) == []


def test_a_record_written_with_a_password_is_read_and_rewritten_without_it(
    server: PasswordServer, root: Path
) -> None:
    """An older version's record (admin URL with password): reap() in the same run can still
    use that password, and the file no longer holds it once read."""
    sb = _create(server, root, "old")
    sb.detach()
    sb.backend.close()
    path = root / "registry" / f"{sb.name}.json"
    record = Registry(root).get(sb.name)
    assert record is not None
    old = {**asdict(record), "server": server.url}

    def as_an_older_version_left_it() -> None:
        Registry(root).remove(sb.name)
        path.write_text(json.dumps(old))

    as_an_older_version_left_it()
    registry = Registry(root)
    record = registry.get(sb.name)
    assert record is not None
    assert record.server == server.address
    assert not path.exists()  # moved into the registry's database, without the password
    assert files_holding(root, server.password) == []
    assert registry.recovered == {server.address: server.url}

    as_an_older_version_left_it()  # for a fresh gc
    assert reap(root, everything=True) == [sb.name]
    assert _sandbox_objects(server) == []


def test_record_updates_keep_the_password_out(server: PasswordServer, root: Path) -> None:
    """Records rewritten after creation (assign, clones, detach) still hold no password."""
    with _create(server, root, "a1") as sb:
        sb.assign("a2", "t2")
        sb.create_snapshot("s")
        record = Registry(root).get(sb.name)
        assert record is not None
        assert (record.agent_id, record.server) == ("a2", server.address)
        assert files_holding(root, server.password) == []

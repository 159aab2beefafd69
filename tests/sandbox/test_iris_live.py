"""IRIS sandboxes against a live server, when ``SQLFENCE_IRIS_URL`` points at one.

IRIS cannot run on the CI machines, so this module is skipped without the variable (the one
exception to "missing components fail in CI"). The URL's user needs ``%Admin_Manage`` and
``%Admin_Secure`` (``_SYSTEM`` has both). Run with the IRIS Community container:
``SQLFENCE_IRIS_URL=iris://_SYSTEM:SYS@localhost:1972/USER pytest tests/sandbox/test_iris_live.py``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import iris
import iris.dbapi
import pytest

from sqlfence.sandbox import AgentSandbox, SnapshotCorrupt
from sqlfence.sandbox.backends import iris_admin, iris_globals
from sqlfence.sandbox.backends.iris import IRISBackend
from tests.sandbox.conftest import flip_byte

IRIS_URL = os.environ.get("SQLFENCE_IRIS_URL")
pytestmark = [
    pytest.mark.iris,
    pytest.mark.skipif(not IRIS_URL, reason="SQLFENCE_IRIS_URL is not set"),
]


def _admin_url() -> str:
    assert IRIS_URL is not None
    parts = urlsplit(IRIS_URL)
    return parts._replace(path="/%SYS").geturl()


@pytest.fixture
def server() -> Iterator[str]:
    """The admin URL; the test fails if a sandbox namespace outlives it."""
    backend = IRISBackend(_admin_url())
    before = set(backend.names())
    yield _admin_url()
    try:
        assert set(backend.names()) <= before
    finally:
        backend.close()


def _create(server: str, root: Path, **kwargs: Any) -> AgentSandbox:
    return AgentSandbox.create(
        backend="iris", runtime="external", server_url=server, root=root, **kwargs
    )


def _raw(url: str, namespace: str | None = None) -> Any:
    """A plain iris.dbapi connection with the URL's credentials."""
    parts = urlsplit(url)
    return iris.dbapi.connect(
        hostname=parts.hostname,
        port=parts.port or 1972,
        namespace=namespace or parts.path.lstrip("/"),
        username=unquote(parts.username or ""),
        password=unquote(parts.password or ""),
    )


def _fill(sb: AgentSandbox, rows: int = 10) -> None:
    with sb.get_connection() as conn:
        conn.execute("CREATE TABLE Entities (ID INTEGER PRIMARY KEY, Name VARCHAR(20))")
        conn.cursor().executemany(
            "INSERT INTO Entities (ID, Name) VALUES (?, ?)", [(i, f"e{i}") for i in range(rows)]
        )
        conn.commit()


def _count(sb: AgentSandbox) -> int:
    with sb.get_connection() as conn:
        return int(conn.execute("SELECT COUNT(*) FROM Entities").fetchone()[0])


def test_create_use_snapshot_restore_destroy(server: str, root: Path) -> None:
    """The sandbox's own user works in its namespace; a snapshot brings rows back."""
    with _create(server, root, agent_id="a1", tenant="acme") as sb:
        assert sb.namespace.url.startswith(f"iris://{sb.name}:")
        _fill(sb)
        sb.create_snapshot("ten")
        with sb.get_connection() as conn:
            conn.execute("DELETE FROM Entities WHERE ID < 5")
            conn.commit()
        assert _count(sb) == 5
        sb.restore_snapshot("ten")
        assert _count(sb) == 10
        assert sb.size_bytes() > 0


def test_the_user_cannot_open_another_namespace(server: str, root: Path) -> None:
    """Another tenant's user is refused by IRIS itself, not only by the fence."""
    with (
        _create(server, root, agent_id="a1", tenant="acme") as acme,
        _create(server, root, agent_id="a1", tenant="globex") as globex,
    ):
        _fill(acme)
        with pytest.raises(iris.dbapi.Error):
            _raw(globex.namespace.url, namespace=acme.name).cursor().execute(
                "SELECT COUNT(*) FROM Entities"
            )


def test_read_only_is_enforced_by_the_database(server: str, root: Path) -> None:
    """With a read-only policy, a raw connection as the sandbox user cannot write either."""
    with _create(server, root, agent_id="a1", access_policy={"read_only": True}) as sb:
        writer = _create(server, root, agent_id="w1")
        try:
            _fill(writer)
            writer.create_snapshot("golden", shared=True)
            sb.load_snapshot("golden")
        finally:
            writer.destroy()
        assert _count(sb) == 10
        connection = _raw(sb.namespace.url)
        cursor = connection.cursor()
        with pytest.raises(iris.dbapi.Error):  # SQLCODE -99: SELECT is all it was granted
            cursor.execute("INSERT INTO Entities (ID, Name) VALUES (99, 'x')")
        connection.close()


def test_pause_refuses_new_logins(server: str, root: Path) -> None:
    """A paused sandbox's user cannot log in; after resume it can."""
    with _create(server, root, agent_id="a1") as sb:
        sb.pause()
        with pytest.raises(iris.dbapi.Error):  # the disabled user's login is refused
            _raw(sb.namespace.url)
        sb.resume()
        _raw(sb.namespace.url).close()


def test_a_flipped_byte_is_refused_and_nothing_changes(server: str, root: Path) -> None:
    """A globals file with one flipped byte is refused; the sandbox keeps its rows."""
    with _create(server, root, agent_id="a1") as sb:
        _fill(sb)
        manifest = sb.create_snapshot("ten")
        with sb.get_connection() as conn:
            conn.execute("DELETE FROM Entities WHERE ID < 3")
            conn.commit()
        data = sb.snapshots.path("ten") / manifest.files[0]
        flip_byte(data)
        with pytest.raises(SnapshotCorrupt):
            sb.restore_snapshot("ten")
        assert _count(sb) == 7


# -- issue 18: what the documentation and the driver say, tried on the server -------------


def test_the_probe_logs_in_and_a_wrong_password_does_not(server: str) -> None:
    """The health probe answers ok for the admin login, no for a wrong password."""
    assert iris_admin.probe(server, 5.0) == "ok"
    parts = urlsplit(server)
    wrong = parts._replace(netloc=f"{parts.username}:wrong@{parts.hostname}:{parts.port or 1972}")
    assert iris_admin.probe(wrong.geturl(), 5.0) == "no"


def test_snapshots_keep_wide_strings_doubles_and_lists(server: str, root: Path) -> None:
    """Values of every IRIS type come back from a snapshot as the same type and value."""
    values: list[Any] = ["\u4e2d\u6587 wide", "caf\u00e9", 12, "12", 1.5, 0.1, Decimal("2.5")]
    admin = iris_admin.shared_server(urlsplit(server))
    try:
        with _create(server, root, agent_id="a1") as sb:
            _fill(sb)
            with admin.namespace_native(sb.name) as native:
                for index, value in enumerate(values):
                    native.set(value, "SqlfenceTypes", index)
                native.set(iris.IRISList(), "SqlfenceTypes", "list")  # an empty $LIST
                listed = iris.IRISList()
                listed.add("\u4e2d")
                listed.add(1.5)
                native.set(listed, "SqlfenceTypes", "list", 2.5)
                before = _typed_nodes(native)
            sb.create_snapshot("typed")
            with admin.namespace_native(sb.name) as native:
                native.kill("SqlfenceTypes")
            sb.restore_snapshot("typed")
            with admin.namespace_native(sb.name) as native:
                assert _typed_nodes(native) == before
                assert native.getIRISList("SqlfenceTypes", "list", 2.5).equals(listed)
    finally:
        iris_admin.release(admin)


def _typed_nodes(native: Any) -> list[tuple[Any, type, Any]]:
    found = []
    for node in iris_globals.walk(native, "SqlfenceTypes"):
        found.append((node[1], type(node[2]), node[2]))
    return found


def test_roles_record_their_mode(server: str, root: Path) -> None:
    """A writable sandbox's role reads back writable, a read-only one's read-only."""
    admin = iris_admin.shared_server(urlsplit(server))
    try:
        with (
            _create(server, root, agent_id="w1") as writable,
            _create(server, root, agent_id="r1", access_policy={"read_only": True}) as reader,
        ):
            assert admin.role_read_only(writable.name) is False
            assert admin.role_read_only(reader.name) is True
    finally:
        iris_admin.release(admin)


def test_globals_sizes_and_sessions(server: str, root: Path) -> None:
    """DirectoryList lists a namespace's globals; Size is in MB; one admin session at most."""
    admin = iris_admin.shared_server(urlsplit(server))
    try:
        with _create(server, root, agent_id="a1") as sb, _create(server, root, agent_id="a2"):
            _fill(sb)
            names = admin.global_names(sb.name)
            assert names, "DirectoryList returned no globals for a namespace with a table"
            size = admin.size_bytes(sb.name)
            # two fresh databases of about 1 MB each; KB or bytes would be far off
            assert 1024 * 1024 <= size < 1024**3, size
            assert iris_admin.admin_sessions() <= 1
    finally:
        iris_admin.release(admin)


def test_a_restored_writable_sandbox_stays_writable(server: str, root: Path) -> None:
    """A restore by another handle (the mode read from the role) keeps writes working."""
    with _create(server, root, agent_id="a1") as sb:
        _fill(sb)
        sb.create_snapshot("ten")
        # a handle of its own, as another process gets: its backend never made the role
        AgentSandbox.open(sb.name, root, credentials=[server]).restore_snapshot("ten")
        with sb.get_connection() as conn:
            conn.execute("INSERT INTO Entities (ID, Name) VALUES (99, 'x')")
            conn.commit()
        assert _count(sb) == 11

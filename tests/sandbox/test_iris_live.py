"""IRIS sandboxes against a live server, when ``SQLFENCE_IRIS_URL`` points at one.

IRIS cannot run on the CI machines, so this module is skipped without the variable (the one
exception to "missing components fail in CI"). The URL's user needs ``%Admin_Manage`` and
``%Admin_Secure`` (``_SYSTEM`` has both). Run with the IRIS Community container:
``SQLFENCE_IRIS_URL=iris://_SYSTEM:SYS@localhost:1972/USER pytest tests/sandbox/test_iris_live.py``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import iris.dbapi
import pytest

from sqlfence.sandbox import AgentSandbox, SnapshotCorrupt
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

"""The IRIS admin side's pure pieces: the mode a role records, the one shared session per
server, and the driver type that carries both SQL and the Native API."""

from __future__ import annotations

from urllib.parse import urlsplit

import iris
import iris.dbapi
import pytest

from sqlfence.sandbox.backends import iris_admin


@pytest.mark.parametrize("read_only", [True, False])
def test_a_role_records_its_mode(read_only: bool) -> None:
    """The description a sandbox role is made with reads back as its mode."""
    description = iris_admin.role_description("AGENT_A1", read_only)
    assert description.startswith("sqlfence sandbox AGENT_A1")
    assert iris_admin.described_read_only(description) is read_only


@pytest.mark.parametrize(
    "description",
    ["sqlfence sandbox AGENT_A1", "", None, "(writable) sqlfence sandbox AGENT_A1"],
    ids=["made before modes were recorded", "empty", "none", "not at the end"],
)
def test_an_unrecorded_mode_is_read_only(description: object) -> None:
    """Fail closed: only a description ending in "(writable)" is writable."""
    assert iris_admin.described_read_only(description) is True


def test_one_admin_side_per_server_and_login() -> None:
    """Backends of one server and login share an admin side whatever their URL's path; the
    last release closes it; nothing connects until work is asked for."""
    first = iris_admin.shared_server(urlsplit("iris://_SYSTEM:pw@db.example:1972/%SYS"))
    second = iris_admin.shared_server(urlsplit("iris://_SYSTEM:pw@db.example/USER"))
    other = iris_admin.shared_server(urlsplit("iris://_SYSTEM:other@db.example:1972/%SYS"))
    try:
        assert first is second
        assert other is not first
        assert iris_admin.admin_sessions() == 0
    finally:
        for server in (first, second, other):
            iris_admin.release(server)
    assert first.sessions == 0


def test_one_connection_carries_sql_and_the_native_api() -> None:
    """``iris.createIRIS`` takes a DB-API connection (it only asks for a live one), so the
    admin session needs no second connection for the Native API."""
    assert issubclass(iris.dbapi.IRISConnection, iris.IRISConnection)
    with pytest.raises(ValueError, match="Connection required"):
        iris.createIRIS(iris.dbapi.IRISConnection())
    with pytest.raises(TypeError):
        iris.createIRIS(object())

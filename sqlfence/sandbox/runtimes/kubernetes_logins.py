"""The logins of a server the Kubernetes runtime placed: made the runtime's own before an
agent's namespace goes in.

- **On claim** (dedicated servers): every warm pod of a template starts with the template's
  bootstrap password (a claim that carried a secret of its own would start cold), so the
  runtime logs in with it, through the same port-forward or Service FQDN as any client, and
  gives the admin a password of the sandbox's own. The agent's own login is made afterwards
  by the database's backend, as on any server (PostgreSQL's login role, IRIS's user and role
  confined to its namespace): nothing here makes a second copy of that.
- **IRIS's predefined logins**: every IRIS instance has ``_SYSTEM``, ``SuperUser`` (``%All``)
  and ``Admin`` (``%Manager``) with the password ``SYS``, which the image's merge file keeps
  from expiring. InterSystems says to change and disable them before production, so each
  that exists gets a random password nobody keeps, on claim and once per shared server.

The statements are IRIS's and PostgreSQL's own (``iris_admin.password_statement``,
``ALTER ROLE ... PASSWORD``); they run against a live server only in the live tests
(``SQLFENCE_K8S_CONTEXT``, ``SQLFENCE_K8S_IRIS_IMAGE``): written to the documentation.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from sqlfence import databases
from sqlfence.errors import ConfigurationError, LicenceRefused, SandboxError

if TYPE_CHECKING:  # imported where used: the driver is an extra
    from sqlfence.sandbox.backends.iris_admin import IRISServer

# InterSystems, "Predefined User Accounts": change the password of these and disable them
# before production. CSPSystem (no roles; the Web Gateway's) and _Ensemble (internal) stay.
IRIS_PREDEFINED = ("_SYSTEM", "SuperUser", "Admin")
FIRST_LOGIN_S = 60.0  # the image may make its admin a moment after the pod reads as ready
_RETRY_S = 2.0  # IRIS counts failed logins against its invalid-login limit: not faster


def new_password() -> str:
    """A password for a server's admin: 32 URL-safe characters (IRIS takes at most 32)."""
    return secrets.token_urlsafe(24)


def predefined(kind: str) -> tuple[str, ...]:
    """The logins every server of ``kind`` is made with that ``secure`` locks (none for
    PostgreSQL, whose image makes only the admin)."""
    return IRIS_PREDEFINED if databases.profile(kind) is databases.IRIS else ()


def secure(kind: str, admin_url: str, user: str, password: str | None) -> None:
    """Make the server at ``admin_url`` (logged in as ``user``) the runtime's own: set
    ``user``'s password to ``password`` (None: keep it) and lock the logins anyone could know.

    Raises SandboxError when the server refuses (the claim is then unusable; its lease ends
    it), ConfigurationError for a kind with no server.
    """
    database = databases.profile(kind)
    securing = _SECURING.get(database.name)
    if securing is None:
        raise ConfigurationError(f"{database.title} has no server to secure")
    securing(admin_url, user, password)


def _postgres(admin_url: str, user: str, password: str | None) -> None:
    """``ALTER ROLE user WITH PASSWORD ...``; PostgreSQL has no predefined login to lock
    (the image's only superuser is the admin)."""
    if password is None:
        return
    import psycopg
    from psycopg import sql

    statement = sql.SQL("ALTER ROLE {} WITH PASSWORD {}").format(
        sql.Identifier(user), sql.Literal(password)
    )
    with psycopg.connect(admin_url, connect_timeout=10, autocommit=True) as conn:
        conn.execute(statement)


def _iris(admin_url: str, user: str, password: str | None) -> None:
    """The admin's password, then each predefined login that exists, in one admin session
    (the Community Edition's licence allows about five connections in all)."""
    from sqlfence.sandbox.backends.iris_admin import IRISServer

    server = IRISServer(urlsplit(admin_url))  # not the shared one: it closes here
    try:
        _first_login(server, FIRST_LOGIN_S)
        if password is not None:
            server.set_password(user, password)
        for name in IRIS_PREDEFINED:
            if name.lower() != user.lower() and server.call("Security.Users", "Exists", name):
                server.set_password(name, new_password())
    finally:
        server.close()


def _first_login(server: IRISServer, timeout: float) -> None:
    """Log in, tried every ``_RETRY_S`` until ``timeout``: the readiness probe checks that
    the admin exists, but its password may be set just after. A full server (no licence
    unit) is not waited for."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            server.query("SELECT 1")
            return
        except LicenceRefused:
            raise
        except SandboxError:  # cannot log in yet
            if time.monotonic() + _RETRY_S > deadline:
                raise
            time.sleep(_RETRY_S)


_SECURING: dict[str, Callable[[str, str, str | None], None]] = {
    databases.POSTGRES.name: _postgres,
    databases.IRIS.name: _iris,
}

"""Server addresses without their secrets, and where a process finds an admin password again.

The registry keeps a server's *address*: its admin URL with the password taken out (user,
host, port, database and options stay). A process other than the one that made a sandbox
(the reaper, ``AgentSandbox.open``) gets the password the way the creator could have:

- an admin URL the caller passes (``credentials=``), matched to the address by scheme, host,
  port and user;
- PostgreSQL: libpq's own sources, which it reads by itself (``PGPASSWORD``, a password file
  ``PGPASSFILE`` or ``~/.pgpass``, a service file ``PGSERVICE``);
- IRIS, whose driver reads no environment: ``SQLFENCE_IRIS_PASSWORD``.

When none gives one, ``CredentialsMissing`` says which server and how to give it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from sqlfence import databases
from sqlfence.errors import ConfigurationError

IRIS_PASSWORD_ENV = "SQLFENCE_IRIS_PASSWORD"
Credentials = str | Iterable[str] | None  # admin URLs (with passwords) a caller hands over

# key=value connection strings (libpq's other form): the password pair, quoted or not.
_PASSWORD_PAIR = re.compile(r"\bpassword\s*=\s*(?:'(?:[^'\\]|\\.)*'|\S+)\s*")


class CredentialsMissing(ConfigurationError):
    """This process has no (working) admin password for a server the registry names.

    ``servers`` are the addresses concerned; ``removed`` what a reaper run removed anyway.
    """

    def __init__(
        self, message: str, servers: tuple[str, ...] = (), removed: list[str] | None = None
    ):
        super().__init__(message)
        self.servers = servers
        self.removed = list(removed or [])


def split(url: str) -> tuple[str, str | None]:
    """``url`` without its password (from the user part or a ``password=`` option), and it."""
    if "://" not in url:
        found = _PASSWORD_PAIR.search(url)
        if found is None:
            return url, None
        value = found.group(0).split("=", 1)[1].strip()
        if value.startswith("'"):
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        return _PASSWORD_PAIR.sub("", url).strip(), value
    parts = urlsplit(url)
    userinfo, at, hosts = parts.netloc.rpartition("@")
    password = None
    if at and ":" in userinfo:
        userinfo, _, quoted = userinfo.partition(":")
        password = unquote(quoted)
    # Options are kept as written (libpq decodes %XX only: re-encoding could change them).
    kept = []
    for option in parts.query.split("&") if parts.query else []:
        key, _, value = option.partition("=")
        if unquote(key) == "password":
            password = unquote(value)
        else:
            kept.append(option)
    netloc = f"{userinfo}@{hosts}" if at else hosts
    return urlunsplit((parts.scheme, netloc, parts.path, "&".join(kept), parts.fragment)), password


def address(url: str) -> str:
    """``url`` with no password in it: what may be written to disk or shown."""
    return split(url)[0]


def with_password(url: str, password: str) -> str:
    """``url`` (a URL without a password) with ``password`` in its user part."""
    parts = urlsplit(url)
    userinfo, at, hosts = parts.netloc.rpartition("@")
    netloc = (
        f"{userinfo}:{quote(password, safe='')}@{hosts}"
        if at
        else f":{quote(password, safe='')}@{hosts}"
    )
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def admin_url(kind: str, server: str, given: Credentials = None) -> str:
    """The URL to manage ``server`` (an address or a full admin URL) with.

    A URL that has a password is used as it is; otherwise a matching ``given`` URL's password
    is put in; otherwise PostgreSQL gets the address (libpq looks for the password itself and
    the backend raises ``CredentialsMissing`` when the server asks for one it cannot find)
    and IRIS the password in ``SQLFENCE_IRIS_PASSWORD``. Raises CredentialsMissing (IRIS).
    """
    bare, password = split(server)
    if password is not None:
        return server
    key = _server_key(bare)
    for candidate in urls(given):
        candidate_bare, candidate_password = split(candidate)
        if candidate_password is not None and _server_key(candidate_bare) == key:
            return with_password(bare, candidate_password)
    if kind == "iris":
        from_env = os.environ.get(IRIS_PASSWORD_ENV)
        if from_env:
            return with_password(bare, from_env)
        raise missing(kind, bare)
    return bare


def urls(given: Credentials) -> list[str]:
    """The admin URLs in a ``credentials=`` value (one URL, several, or None)."""
    return [given] if isinstance(given, str) else list(given or ())


def missing(kind: str, server: str, refused: bool = False) -> CredentialsMissing:
    """The error for a server whose admin password this process lacks (or gave wrongly)."""
    what = "refused the admin password this process gave" if refused else "needs an admin password"
    return CredentialsMissing(
        f"{address(server)} {what}; sandbox registries keep server addresses without "
        f"passwords, so give it to this process: {how_to_give(kind)}",
        servers=(address(server),),
    )


def how_to_give(kind: str) -> str:
    """The ways a process can be given the admin password of a ``kind`` server."""
    passed = "or pass credentials=['<admin URL with password>'] to reap() / AgentSandbox.open()"
    if kind == "iris":
        return f"set {IRIS_PASSWORD_ENV}, {passed}"
    return (
        "set PGPASSWORD, add the server to a password file (PGPASSFILE, default ~/.pgpass) "
        f"or a service file (PGSERVICE), {passed}"
    )


def _server_key(url: str) -> tuple[str, str, str]:
    """Which server and login a URL names: scheme, hosts with ports, user."""
    parts = urlsplit(url)
    database = databases.find(parts.scheme)
    scheme = database.name if database is not None else parts.scheme  # postgresql: postgres
    userinfo, _, hosts = parts.netloc.rpartition("@")
    hosts = hosts.lower()
    default = database.default_port if database is not None else None
    if default is not None and ":" not in hosts.rsplit("]", 1)[-1]:
        hosts = f"{hosts}:{default}"
    user = unquote(userinfo)
    ignore_case = database is not None and database.users_ignore_case  # IRIS
    return scheme, hosts, user.lower() if ignore_case else user

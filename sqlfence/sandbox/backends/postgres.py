"""PostgreSQL: a database per namespace, served to a login role of its own.

The second layer is the server's: the role may connect only to its own database (CONNECT is
revoked from PUBLIC), which the admin owns so the role cannot open it to others; its rights
are privileges (``postgres_grants``: a read-only role can write nothing even after changing
its session defaults), with ``CONNECTION LIMIT`` from ``max_connections``, a role-level
``statement_timeout``, and ``default_transaction_read_only`` when the policy is read-only.
Every login can read ``pg_database`` and ``pg_roles``: names and comments there say nothing
of agents or tenants (the sandbox picks opaque names, see ``shared_catalog``). On a server
sqlfence runs alone (``managed``), PUBLIC may not connect to ``postgres`` or ``template1``.
In-server snapshots are ``CREATE DATABASE ... TEMPLATE`` clones; portable ones are pg_dump
archives. A restore is built beside the live database and swapped in only once verified.

A backend holds no connection between operations: admin statements run on a connection of
the server's shared pool (``postgres_admin``), statements inside a sandbox's database on a
connection opened for them and closed after.

pg_dump and pg_restore get the admin password in their own environment (``PGPASSWORD``),
never on their command line, and write their files 0600. An admin URL without a password
leaves libpq to find one (PGPASSWORD, a password file, a service file); when the server asks
for one it cannot find, ``CredentialsMissing`` says how to give it.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from sqlfence.errors import ConfigurationError, NothingMade, SandboxError, SnapshotCorrupt
from sqlfence.policies.model import Policy
from sqlfence.sandbox import credentials, naming, private_files
from sqlfence.sandbox.backends import postgres_admin
from sqlfence.sandbox.backends import postgres_digest as content_digest
from sqlfence.sandbox.backends import postgres_grants as grants
from sqlfence.sandbox.backends import postgres_row_security as row_security
from sqlfence.sandbox.backends.base import Contents, Namespace
from sqlfence.sandbox.limits import Limits
from sqlfence.sql.row_filters import Identity

DUMP_FILE = "data.pgdump"
# What a database's comment may say: everyone can read comments, so no agent id or tenant.
_COMMENT_KEYS = ("sqlfence", "role", "read_only", "parent")
_TABLES = """
SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg_toast%' ORDER BY 1, 2"""
_SCHEMA = """
SELECT table_schema, table_name, column_name, data_type, coalesce(column_default, '')
FROM information_schema.columns WHERE table_schema NOT IN ('pg_catalog', 'information_schema')
ORDER BY 1, 2, ordinal_position"""


class PostgresBackend:
    """Sandboxes on one PostgreSQL server, managed through its admin URL."""

    name = "postgres"
    clones = True
    shared_catalog = True  # every login reads pg_database and pg_roles: names must be opaque

    def __init__(self, server_url: str, managed: bool = False) -> None:
        """``managed``: the server is sqlfence's alone, so server-wide confinement applies."""
        try:
            import psycopg
        except ImportError as error:  # pragma: no cover - the postgres extra is missing
            raise ConfigurationError("pip install 'sqlfence[postgres]' for PostgreSQL") from error
        self._psycopg = psycopg
        self.server_url = server_url
        self.managed = managed
        self._confined = False
        self._pool: postgres_admin.AdminPool | None = None
        self._lock = threading.Lock()
        # Sandbox -> the row filters its restores get before they are swapped in, so that
        # its role never sees a restored database unsecured (see secure_rows).
        self._row_security: dict[str, tuple[Policy, Identity]] = {}
        # Databases secured for a policy without row filters since their last change of
        # data (create, restore): none of sqlfence's policies is on them, for any identity,
        # so a new agent (a pool's acquire) needs no round trip.
        self._unfiltered: set[str] = set()

    # -- namespaces ------------------------------------------------------------------

    def create(
        self, name: str, limits: Limits, policy: Policy, labels: dict[str, Any]
    ) -> Namespace:
        """Create login role ``name`` and database ``name`` (the admin's), closed to all else."""
        password = secrets.token_urlsafe(24)
        sql = self._psycopg.sql
        role = sql.Identifier(name)
        read_only = policy.read_only
        statements = [
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {} CONNECTION LIMIT {}").format(
                role, sql.Literal(password), sql.Literal(limits.max_connections or -1)
            )
        ]
        if read_only:
            owner = sql.Identifier(grants.owner_role(name))
            statements.append(sql.SQL("CREATE ROLE {} NOLOGIN").format(owner))
        timeout = policy.statement_timeout_ms or limits.statement_timeout_ms
        if timeout:
            statements.append(
                sql.SQL("ALTER ROLE {} SET statement_timeout = {}").format(
                    role, sql.Literal(int(timeout))
                )
            )
        if policy.row_filters:
            who = Identity(labels.get("agent_id"), labels.get("tenant"), {})
            self._row_security[name] = (policy, who)
        if read_only:  # a clear message for a stray write; the privileges are what refuse it
            statements.append(
                sql.SQL("ALTER ROLE {} SET default_transaction_read_only = on").format(role)
            )
        statements += [
            sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)),
            *self._closed(name, {**labels, "role": name, "read_only": read_only}),
        ]
        self._reach()
        try:
            self._confine_server()
            self._run(*statements)
            self._run_in(name, grants.inside(sql, name, read_only))
        except self._psycopg.Error as error:
            raise SandboxError(f"could not create PostgreSQL sandbox {name}: {error}") from error
        if not policy.row_filters:
            self._unfiltered.add(name)  # a new database: no policy of sqlfence's on it
        return Namespace(
            name=name,
            backend=self.name,
            url=self._url(name, name, password),
            location=f"{self._where()}/{name}",
            role=name,
        )

    def drop(self, name: str) -> None:
        """Drop the database, any half-made restore and clones of it, then its roles."""
        sql = self._psycopg.sql
        self._row_security.pop(name, None)
        self._unfiltered.discard(name)
        for clone in self._clones_of(name):
            self.drop_clone(clone)
        for database in (naming.derived(name, "RESTORING"), name):
            self._run(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database))
            )
        self._run(
            sql.SQL("DROP ROLE IF EXISTS {}, {}").format(
                sql.Identifier(name), sql.Identifier(grants.owner_role(name))
            )
        )

    def names(self) -> list[str]:
        """Sandbox databases on the server (clones and half-made restores excluded)."""
        rows = self._query(
            "SELECT datname FROM pg_database WHERE shobj_description(oid, 'pg_database') "
            'LIKE \'%"sqlfence": "sandbox"%\' ORDER BY 1'
        )
        return [row[0] for row in rows]

    def roles(self) -> list[str]:
        """Roles that sqlfence sandboxes own (by name prefix)."""
        rows = self._query("SELECT rolname FROM pg_roles WHERE rolname ~ %s", (naming.PATTERN,))
        return sorted(row[0] for row in rows)

    def size_bytes(self, name: str) -> int:
        """``pg_database_size``."""
        return int(self._query("SELECT pg_database_size(%s)", (name,))[0][0])

    def set_paused(self, name: str, paused: bool) -> None:
        """``ALLOW_CONNECTIONS false`` refuses new sessions, even the admin's."""
        sql = self._psycopg.sql
        self._run(
            sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS {}").format(
                sql.Identifier(name), sql.SQL("false" if paused else "true")
            )
        )

    def contents(self, name: str) -> Contents:
        """Tables with row counts and a SHA-256 of the column definitions."""
        with self._named_errors(), self._connect(name) as conn:
            tables = {
                f"{schema}.{table}": int(
                    conn.execute(
                        self._psycopg.sql.SQL("SELECT count(*) FROM {}").format(
                            self._psycopg.sql.Identifier(schema, table)
                        )
                    ).fetchone()[0]
                )
                for schema, table in conn.execute(_TABLES).fetchall()
            }
            schema = conn.execute(_SCHEMA).fetchall()
        return Contents(
            tables=tables, schema_digest=hashlib.sha256(repr(schema).encode()).hexdigest()
        )

    def secure_rows(self, name: str, policy: Policy, agent_id: str, tenant: str | None) -> None:
        """Make the row security of database ``name`` match the policy's row filters for that
        agent and tenant (``postgres_row_security``), in one transaction; this backend's
        later restores of ``name`` are secured before they are swapped in. Raises
        SandboxError."""
        identity = Identity(agent_id, tenant, {})
        self._row_security[name] = (policy, identity)
        if not policy.row_filters and name in self._unfiltered:
            return  # nothing of the identity is in the database: nothing to change
        if self._labels(name)[1]:  # paused, it takes no session: secured at the next restore
            self._secure(name, policy, identity, name)

    def _secure(self, database: str, policy: Policy, identity: Identity, name: str) -> None:
        """Secure ``database`` (``name`` itself, or a restore of it before it is swapped in)."""
        sql = self._psycopg.sql
        self._unfiltered.discard(name)
        with self._named_errors(), self._connect(database) as conn, conn.transaction():
            found = conn.execute(row_security.TABLES, (row_security.PERMISSIVE,)).fetchall()
            tables = [row_security.table(row) for row in found]
            filtered = row_security.conditions(policy, identity, tables)
            for statement in row_security.statements(sql, tables, filtered):
                conn.execute(statement)
        if not policy.row_filters and database == name:
            self._unfiltered.add(name)

    # -- snapshots -------------------------------------------------------------------

    def clone(self, name: str, clone: str) -> str:
        """``CREATE DATABASE clone TEMPLATE name``; sessions on ``name`` are ended first."""
        sql = self._psycopg.sql
        self._terminate(name)
        self._run(
            sql.SQL("CREATE DATABASE {} TEMPLATE {} STRATEGY FILE_COPY").format(
                sql.Identifier(clone), sql.Identifier(name)
            ),
            *self._closed(clone, {"sqlfence": "clone", "parent": name}),
        )
        try:
            digest = self._digest(clone)
            self._run(
                sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS false").format(sql.Identifier(clone))
            )
        except BaseException:
            self.drop_clone(clone)
            raise
        return digest

    def restore_clone(self, name: str, clone: str, digest: str) -> None:
        """Copy ``clone`` beside ``name``, check its digest, then swap it in."""
        sql = self._psycopg.sql
        staging = self._staging(name)
        self._run(
            sql.SQL("CREATE DATABASE {} TEMPLATE {} STRATEGY FILE_COPY").format(
                sql.Identifier(staging), sql.Identifier(clone)
            )
        )
        if self._digest(staging, digest) != digest:
            self._drop_database(staging)
            raise SnapshotCorrupt(
                f"in-server snapshot {clone} does not match its recorded digest "
                f"(refusing to restore; the sandbox is unchanged)"
            )
        self._swap_in(name, staging)

    def drop_clone(self, clone: str) -> None:
        """Drop an in-server snapshot database."""
        self._drop_database(clone)

    def export_files(self, name: str, directory: Path) -> list[str]:
        """A pg_dump custom-format archive: portable to any server of this major version."""
        target = directory / DUMP_FILE
        self._tool("pg_dump", name, "--format=custom", "--no-owner", "--no-acl",
                   f"--file={target}")  # fmt: skip
        return [DUMP_FILE]

    def import_files(self, name: str, directory: Path, files: list[str]) -> None:
        """pg_restore into a database beside ``name`` as its role (a read-only sandbox's owner
        role), then swap it in."""
        if files != [DUMP_FILE]:
            raise SandboxError(
                f"not a PostgreSQL snapshot: expected [{DUMP_FILE!r}], found {files}"
            )
        sql = self._psycopg.sql
        read_only = bool(self._labels(name)[0].get("read_only"))
        staging = self._staging(name)
        self._run(
            sql.SQL("CREATE DATABASE {}").format(sql.Identifier(staging)),
            *grants.database(sql, staging, name, read_only),
        )
        try:
            self._run_in(staging, grants.inside(sql, name, read_only))
            self._tool("pg_restore", staging, "--no-owner", "--no-acl", "--exit-on-error",
                       f"--role={grants.loader(name, read_only)}",
                       str(directory / DUMP_FILE))  # fmt: skip
        except BaseException:
            self._drop_database(staging)
            raise
        self._swap_in(name, staging)

    def close(self) -> None:
        """Let go of the server's admin pool (the last backend on it closes its connections).

        The backend stays usable: its next operation takes the pool again."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            postgres_admin.release(pool)

    # -- plumbing --------------------------------------------------------------------

    def _labels(self, name: str) -> tuple[dict[str, Any], bool]:
        """Sandbox database ``name``'s labels (its comment) and whether it takes connections."""
        rows = self._query(
            "SELECT shobj_description(oid, 'pg_database'), datallowconn FROM pg_database "
            "WHERE datname = %s",
            (name,),
        )
        found = json.loads(rows[0][0]) if rows and rows[0][0] else {}
        return {"sqlfence": "sandbox", "role": name, **found}, rows[0][1] if rows else True

    def _swap_in(self, name: str, staging: str) -> None:
        sql = self._psycopg.sql
        known = self._row_security.get(name)
        self._unfiltered.discard(name)
        if known is not None:
            self._secure(staging, *known, name)
        labels, allowed = self._labels(name)
        self._drop_database(name)
        self._run(
            sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
                sql.Identifier(staging), sql.Identifier(name)
            ),
            *self._closed(name, labels),
        )
        if not allowed:
            self.set_paused(name, True)
        if known is not None and not known[0].row_filters:
            self._unfiltered.add(name)  # the restore was secured as it came in

    def _staging(self, name: str) -> str:
        staging = naming.derived(name, "RESTORING")
        self._drop_database(staging)
        return staging

    def _closed(self, database: str, labels: dict[str, Any]) -> list[Any]:
        """PUBLIC shut out, the sandbox's role (``labels["role"]``) let in, the labels set."""
        sql = self._psycopg.sql
        ident = sql.Identifier(database)
        role = labels.get("role")
        access = (
            grants.database(sql, database, role, bool(labels.get("read_only")))
            if role
            else [sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(ident)]
        )
        comment = {key: labels[key] for key in _COMMENT_KEYS if key in labels}
        return [
            *access,
            sql.SQL("COMMENT ON DATABASE {} IS {}").format(
                ident, sql.Literal(json.dumps(comment, sort_keys=True))
            ),
        ]

    def _reach(self) -> None:
        """Take an admin connection (and give it back): NothingMade when the server does not
        answer, so a create that cannot start leaves nothing to clean up."""
        try:
            with self._admin():
                pass
        except self._psycopg.OperationalError as error:
            raise NothingMade(f"PostgreSQL server {self._where()}: {error}") from error

    def _confine_server(self) -> None:
        """On a managed server, once: PUBLIC may not connect to postgres or template1."""
        if self.managed and not self._confined:
            self._run(*grants.server(self._psycopg.sql))
            self._confined = True

    def _clones_of(self, name: str) -> list[str]:
        marker = json.dumps({"parent": name})[1:-1]
        rows = self._query(
            "SELECT datname FROM pg_database WHERE shobj_description(oid, 'pg_database') LIKE %s",
            (f"%{marker}%",),
        )
        return [row[0] for row in rows]

    def _digest(self, database: str, recorded: str | None = None) -> str:
        """A digest of ``database``'s schema and every row, to check ``recorded`` against (a
        new one, with a fresh key, when None). Made by an older version: checked its way."""
        if recorded is not None and not recorded.startswith(content_digest.VERSION):
            return self._digest_v1(database)
        key = content_digest.key_of(recorded) if recorded else content_digest.new_key()
        sql = self._psycopg.sql
        digest = content_digest.Digest(key)
        with self._named_errors(), self._connect(database) as conn:
            digest.schema(repr(conn.execute(_SCHEMA).fetchall()))
            for schema, table in conn.execute(_TABLES).fetchall():
                columns = conn.execute(content_digest.COLUMNS, (schema, table)).fetchall()
                query = content_digest.table_query(sql, schema, table, columns, key)
                count, total = conn.execute(query).fetchone()
                digest.table(f"{schema}.{table}", int(count), int(total))
        return digest.hexdigest()

    def _digest_v1(self, database: str) -> str:
        """An older version's digest: each table's rows as one sorted string (a table of more
        than about 1 GB of text cannot be digested so; no new snapshot uses it)."""
        sql = self._psycopg.sql
        digest = hashlib.sha256()
        with self._named_errors(), self._connect(database) as conn:
            digest.update(repr(conn.execute(_SCHEMA).fetchall()).encode())
            for schema, table in conn.execute(_TABLES).fetchall():
                row = conn.execute(
                    sql.SQL(
                        "SELECT md5(coalesce(string_agg(t::text, E'\\n' ORDER BY t::text), '')) "
                        "FROM {} AS t"
                    ).format(sql.Identifier(schema, table))
                ).fetchone()
                digest.update(f"{schema}.{table}:{row[0]}".encode())
        return digest.hexdigest()

    def _terminate(self, database: str) -> None:
        self._query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (database,),
        )

    def _drop_database(self, database: str) -> None:
        sql = self._psycopg.sql
        self._run(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database))
        )

    def _run(self, *statements: Any) -> None:
        with self._named_errors(), self._admin() as admin:
            for statement in statements:
                admin.execute(statement)

    def _run_in(self, database: str, statements: list[Any]) -> None:
        with self._named_errors(), self._connect(database) as conn:
            for statement in statements:
                conn.execute(statement)

    def _query(self, query: str, params: tuple[Any, ...] = ()) -> list[Any]:
        with self._named_errors(), self._admin() as admin:
            return list(admin.execute(query, params or None).fetchall())

    @contextmanager
    def _named_errors(self) -> Iterator[None]:
        """The driver's errors as SandboxError naming the server (a dead server is an error
        of the sandbox layer, not a psycopg one)."""
        try:
            yield
        except self._psycopg.Error as error:
            raise SandboxError(f"PostgreSQL server {self._where()}: {error}") from error

    def _admin(self) -> Any:
        """An admin connection of the server's shared pool, for one ``with`` block."""
        with self._lock:
            if self._pool is None:
                connect = partial(_connect_admin, self._psycopg, self.server_url)
                self._pool = postgres_admin.shared(self.server_url, connect)
            pool = self._pool
        return pool.connection()

    def _connect(self, database: str) -> Any:
        return _connect_admin(self._psycopg, self._admin_url(database))

    def _url(self, database: str, user: str | None = None, password: str | None = None) -> str:
        """A URL of ``database`` as ``user`` (default: the admin, with the admin's password)."""
        bare, admin_password = credentials.split(self.server_url)
        parts = urlsplit(bare)
        userinfo, at, hosts = parts.netloc.rpartition("@")
        if user is not None:
            userinfo, at = quote(user, safe=""), "@"
        else:
            password = admin_password
        netloc = f"{userinfo}@{hosts}" if at else hosts
        url = urlunsplit((parts.scheme, netloc, f"/{quote(database)}", parts.query, ""))
        return url if password is None else credentials.with_password(url, password)

    def _admin_url(self, database: str) -> str:
        return self._url(database)

    def _where(self) -> str:
        parts = urlsplit(self.server_url)
        return f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}"

    def _tool(self, program: str, database: str, *args: str) -> None:
        """Run ``program`` on ``database`` as the admin: the password goes in its environment."""
        path = shutil.which(program) or _pg_bindir_tool(program)
        if path is None:
            raise ConfigurationError(f"{program} is needed for portable PostgreSQL snapshots")
        target, password = credentials.split(self._admin_url(database))
        environment = dict(os.environ)
        if password is not None:
            environment["PGPASSWORD"] = password
        done = subprocess.run(
            [path, f"--dbname={target}", *args],
            env=environment,
            umask=private_files.CHILD_UMASK,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            message = done.stderr.strip()
            if "no password supplied" in message:
                raise credentials.missing(self.name, self.server_url) from None
            raise SandboxError(f"{program} failed: {message}")


def _connect_admin(psycopg: Any, url: str) -> Any:
    """A new autocommit connection to ``url``; CredentialsMissing when it wants a password."""
    try:
        return psycopg.connect(url, autocommit=True)
    except psycopg.OperationalError as error:
        lacking = _credentials_error(error, url)
        if lacking is None:
            raise
        raise lacking from error


def _credentials_error(error: Exception, url: str) -> Exception | None:
    """CredentialsMissing when a connection failed for want of a (right) password, else None."""
    pgconn = getattr(error, "pgconn", None)
    if pgconn is None:
        return None
    if pgconn.needs_password:  # libpq found no password anywhere it looks
        return credentials.missing("postgres", url)
    if pgconn.used_password and "password authentication failed" in str(error):
        return credentials.missing("postgres", url, refused=True)
    return None


def _pg_bindir_tool(program: str) -> str | None:
    config = shutil.which("pg_config")
    if config is None:
        return None
    bindir = subprocess.run([config, "--bindir"], capture_output=True, text=True, check=False)
    candidate = Path(bindir.stdout.strip()) / program
    return str(candidate) if candidate.is_file() else None

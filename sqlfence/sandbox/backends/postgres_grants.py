"""The privileges that confine a PostgreSQL sandbox's role, as statements (no I/O here).

The database is owned by the admin, never by the sandbox's login role: an owner could
``GRANT CONNECT ... TO PUBLIC`` and open its database to every other sandbox's role. The
role gets only what it needs, and nothing it could pass on:

- read-write: CONNECT, TEMPORARY and CREATE on its database, USAGE and CREATE on
  ``public``; what it makes, it owns.
- read-only: CONNECT, and USAGE/SELECT on what is in the database. The data belongs to a
  second, NOLOGIN role of the sandbox (``owner_role``), which snapshots are loaded as
  (never the admin: a view or SECURITY DEFINER function from a snapshot would then run
  with the admin's rights); default privileges give the login role SELECT on whatever
  that role makes. The login role cannot write even after ``SET default_transaction_read_only
  = off``, create temporary tables, or create large objects.

PUBLIC keeps nothing on the database or on ``public``. On a server sqlfence runs alone
(``managed``), PUBLIC also loses CONNECT on ``postgres`` and ``template1``, so a sandbox's
role can open no database but its own.
"""

from __future__ import annotations

from typing import Any

from sqlfence.sandbox import naming

# Large objects need no privilege to be created: take the functions that create them away.
_LARGE_OBJECT_MAKERS = ("lo_creat(integer)", "lo_create(oid)", "lo_from_bytea(oid, bytea)")
SERVER_DATABASES = ("postgres", "template1")


def owner_role(name: str) -> str:
    """The NOLOGIN role owning a read-only sandbox's data."""
    return naming.derived(name, "OWNER")


def loader(name: str, read_only: bool) -> str:
    """The role snapshots are loaded as: the sandbox's own, or its owner role (read-only)."""
    return owner_role(name) if read_only else name


def database(sql: Any, database: str, role: str, read_only: bool) -> list[Any]:
    """Database-level privileges of ``database``, which serves sandbox ``role``."""
    ident = sql.Identifier(database)
    rights = "CONNECT" if read_only else "CONNECT, TEMPORARY, CREATE"
    statements = [
        sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(ident),
        sql.SQL(f"GRANT {rights} ON DATABASE {{}} TO {{}}").format(ident, sql.Identifier(role)),
    ]
    if read_only:
        statements.append(
            sql.SQL("GRANT CREATE ON DATABASE {} TO {}").format(
                ident, sql.Identifier(owner_role(role))
            )
        )
    return statements


def inside(sql: Any, role: str, read_only: bool) -> list[Any]:
    """Privileges set inside a fresh database (run connected to it) before data is loaded."""
    login = sql.Identifier(role)
    statements = [sql.SQL("REVOKE ALL ON SCHEMA public FROM PUBLIC")]
    if not read_only:
        return [*statements, sql.SQL("GRANT USAGE, CREATE ON SCHEMA public TO {}").format(login)]
    owner = sql.Identifier(owner_role(role))
    statements += [
        sql.SQL("GRANT USAGE, CREATE ON SCHEMA public TO {}").format(owner),
        sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(login),
        *(
            sql.SQL("ALTER DEFAULT PRIVILEGES FOR ROLE {} GRANT " + grant + " TO {}").format(
                owner, login
            )
            for grant in ("USAGE ON SCHEMAS", "SELECT ON TABLES", "SELECT ON SEQUENCES")
        ),
    ]
    for function in _LARGE_OBJECT_MAKERS:  # the owner role may still load a snapshot's
        statements += [
            sql.SQL(f"REVOKE EXECUTE ON FUNCTION pg_catalog.{function} FROM PUBLIC"),
            sql.SQL(f"GRANT EXECUTE ON FUNCTION pg_catalog.{function} TO {{}}").format(owner),
        ]
    return statements


def server(sql: Any) -> list[Any]:
    """Server-wide: PUBLIC may not connect to the databases every server has."""
    return [
        sql.SQL("REVOKE CONNECT, TEMPORARY ON DATABASE {} FROM PUBLIC").format(sql.Identifier(name))
        for name in SERVER_DATABASES
    ]

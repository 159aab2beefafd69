"""Function names: one canonical name per function, and the built-in deny list per dialect.

Typed sqlglot nodes have several names (``SUBSTR``/``SUBSTRING``); a policy may use any of
them, and facts use the canonical one, so both sides are mapped through ``canonical``.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlglot import exp
from sqlglot.dialects.dialect import Dialect

# Functions that reach outside SQL or change state behind a SELECT: files, network, sleeping,
# sequences, configuration, dynamic SQL (which hides a statement from the fence), server control.
_POSTGRES = frozenset(
    {
        # files and server-side large objects
        "pg_read_file", "pg_read_binary_file", "pg_ls_dir", "pg_stat_file", "pg_ls_logdir",
        "pg_ls_waldir", "pg_ls_tmpdir", "pg_ls_archive_statusdir", "pg_file_write",
        "pg_file_rename", "pg_file_unlink", "pg_logdir_ls", "lo_import", "lo_export",
        "lo_unlink", "lo_put", "lo_from_bytea", "lo_create", "lo_creat", "lo_open", "lowrite",
        "lo_truncate",
        # network and other databases
        "dblink", "dblink_exec", "dblink_connect", "dblink_connect_u", "dblink_send_query",
        "dblink_open", "dblink_fetch", "dblink_get_result",
        # sleeping, locking, signalling
        "pg_sleep", "pg_sleep_for", "pg_sleep_until", "pg_advisory_lock",
        "pg_advisory_xact_lock", "pg_advisory_lock_shared", "pg_try_advisory_lock",
        "pg_notify", "pg_cancel_backend", "pg_terminate_backend", "pg_reload_conf",
        "pg_rotate_logfile", "pg_promote", "pg_switch_wal", "pg_create_restore_point",
        "pg_backup_start", "pg_backup_stop", "pg_wal_replay_pause", "pg_wal_replay_resume",
        "pg_create_logical_replication_slot", "pg_create_physical_replication_slot",
        "pg_drop_replication_slot", "pg_logical_emit_message", "pg_export_snapshot",
        "pg_stat_reset", "pg_stat_statements_reset", "pg_stat_reset_shared",
        "pg_stat_reset_single_table_counters", "pg_stat_reset_single_function_counters",
        "pg_advisory_unlock", "pg_advisory_unlock_all", "pg_advisory_unlock_shared",
        "pg_advisory_xact_lock_shared", "pg_try_advisory_lock_shared",
        "pg_try_advisory_xact_lock", "pg_try_advisory_xact_lock_shared", "lo_get",
        "txid_current", "pg_current_xact_id",
        # sequences and configuration
        "nextval", "setval", "set_config",
        # dynamic SQL: the text of another query is executed server-side
        "query_to_xml", "query_to_xml_and_xmlschema", "query_to_xmlschema", "table_to_xml",
        "table_to_xml_and_xmlschema", "table_to_xmlschema", "cursor_to_xml",
        "schema_to_xml", "schema_to_xml_and_xmlschema", "database_to_xml",
        "database_to_xml_and_xmlschema", "ts_stat", "ts_rewrite",
        "crosstab", "crosstab2", "crosstab3", "crosstab4", "connectby",
    }
)  # fmt: skip
_SQLITE = frozenset(
    {
        "load_extension", "readfile", "writefile", "edit", "fts3_tokenizer", "lsdir",
        "sqlar_compress", "sqlar_uncompress", "zipfile", "eval",
    }
)  # fmt: skip
_BUILTIN: dict[str, frozenset[str]] = {"postgres": _POSTGRES, "sqlite": _SQLITE}

_ALIASES: dict[str, str] = {}
_BY_CLASS: dict[type[exp.Func], str] = {}
for _cls in exp.ALL_FUNCTIONS if hasattr(exp, "ALL_FUNCTIONS") else ():
    _names = [name.lower() for name in _cls.sql_names()]
    if _names:
        for _name in _names:
            _ALIASES.setdefault(_name, _names[0])


def canonical(name: str) -> str:
    """The canonical lowercase name of a function known by ``name``."""
    lowered = name.lower().strip('"')
    if lowered.startswith("exploding_"):
        lowered = lowered[len("exploding_") :]
    return _ALIASES.get(lowered, lowered)


def function_name(node: exp.Func) -> str:
    """The canonical name of a function node (anonymous ones keep the name as written)."""
    if isinstance(node, exp.Anonymous):
        return canonical(node.this if isinstance(node.this, str) else node.name)
    cls = type(node)
    name = _BY_CLASS.get(cls)
    if name is None:
        names = cls.sql_names()
        name = canonical(names[0]) if names else cls.key
        _BY_CLASS[cls] = name
    return name


def builtin_denied_rule(dialect: str) -> Callable[[str], bool] | None:
    """A predicate for deny rules a name list cannot express (IRIS: ``%SYSTEM.*``, ``##class``)."""
    if dialect == "iris":
        from sqlfence.sql.dialects.iris import is_denied_function

        return is_denied_function
    return None


def builtin_denied(dialect: str) -> frozenset[str]:
    """The built-in deny list for a sqlglot dialect name (canonical names)."""
    names = _BUILTIN.get(dialect)
    if names is None and dialect == "iris":
        from sqlfence.sql.dialects.iris import IRIS_DENIED_FUNCTIONS

        names = IRIS_DENIED_FUNCTIONS
    return frozenset(canonical(name) for name in names or ())


def policy_names(name: str, dialect: Dialect) -> frozenset[str]:
    """The names facts use for a function a policy names as the agent would write it.

    ``date_trunc`` is sqlglot's ``TimestampTrunc`` on PostgreSQL: parse calls to learn that.
    """
    names = {canonical(name)}
    for arguments in ("", "x", "x, y", "x, y, z"):
        try:
            trees = dialect.parse(f"SELECT {name}({arguments})")
        except Exception:
            continue
        tree = trees[0] if trees else None
        call = tree.find(exp.Func) if tree is not None else None
        if call is not None:
            names.add(function_name(call))  # SQLite's min(a, b) is least(): every arity counts
    return frozenset(names)

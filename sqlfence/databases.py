"""One profile per database sqlfence knows: SQLite, PostgreSQL and InterSystems IRIS.

A ``DatabaseProfile`` is data only: the names a database goes by (kind, aliases, URL
schemes, sqlglot dialect, OpenTelemetry system), where unqualified names live, its DBAPI
driver's module, the fixed catalog SQL the MCP server and the shell run, what its system
catalog is, how a session is made read-only, and the Docker image its servers run from.
What a database *does* stays code beside its kind: the driver (``proxy/``), the backend
(``sandbox/backends/``) and the sqlglot dialect (``sql/dialects/``).

``profile(name)`` resolves any name a database goes by; ``find(name)`` is the same for
callers that also serve other sqlglot dialects (None for those).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from sqlfence.errors import ConfigurationError

__all__ = [
    "IRIS",
    "POSTGRES",
    "PROFILES",
    "SQLITE",
    "CatalogQueries",
    "DatabaseProfile",
    "DockerImage",
    "SystemCatalog",
    "find",
    "profile",
]


@dataclass(frozen=True)
class CatalogQueries:
    """The catalog SQL sqlfence runs itself (fixed text, never the agent's), on a read-only
    connection of its own: the MCP server's tools and the shell's ``\\d``."""

    list_tables: str  # rows: schema (NULL where there is none), name, whether it is a view
    describe_table: str  # rows: column, type, not null, primary key
    describe_with_schema: bool  # its parameters: (schema, table), else (table,)
    explain_prefix: str  # put before a judged statement to have its plan
    # Something that changes with any DDL; None where the database has none
    schema_stamp: str | None = None


@dataclass(frozen=True)
class SystemCatalog:
    """What the system catalog is (the ``system_catalog`` rule's ground): names are
    compared in lower case, but for ``marks``."""

    schemas: frozenset[str] = frozenset()  # every table in them is the catalog's
    tables: frozenset[str] = frozenset()  # in any schema
    table_prefixes: tuple[str, ...] = ()  # a table whose name starts so
    schema_prefixes: tuple[str, ...] = ()  # a schema whose name starts so
    function_prefixes: tuple[str, ...] = ()  # functions that read the catalog
    function_suffixes: tuple[str, ...] = ()
    # Substrings (case as written) at least one of which every catalog name the rule
    # recognises holds: a cheap test before the name is split
    marks: tuple[str, ...] = ()
    # Catalog relations holding values and counts of every row of a table (planner
    # statistics): refused under row filters and masks even where the catalog is allowed
    statistics: frozenset[str] = frozenset()
    statistics_prefixes: tuple[str, ...] = ()  # and every relation whose name starts so
    # Functions measuring every row of a table (a table's size) or every session's writes:
    # refused under row filters and masks, whether or not the catalog is allowed
    statistics_functions: frozenset[str] = frozenset()


@dataclass(frozen=True)
class DockerImage:
    """The image sandbox servers run from, and how its first start is given the admin login.
    Its port is the profile's ``default_port``."""

    name: str
    user: str  # the admin login it makes
    user_env: str  # the environment variables naming that login and its password
    password_env: str


@dataclass(frozen=True)
class DatabaseProfile:
    """Everything sqlfence knows about one database as plain data."""

    name: str  # the kind: a sandbox backend's name, and what other names resolve to
    title: str  # as people write it, in messages
    aliases: tuple[str, ...]
    system: str  # OpenTelemetry db.system.name, what events and sessions say
    dialect: str  # sqlglot's dialect name
    default_schema: str  # where unqualified names live
    paramstyle: str  # its DBAPI module's (PEP 249)
    driver_module: str  # the DBAPI module, imported when first needed
    driver_packages: tuple[str, ...]  # top-level packages of its connection classes
    pip_extra: str | None  # sqlfence's extra that installs the driver; None: a core dependency
    url_schemes: tuple[str, ...]
    default_port: int | None
    catalog: CatalogQueries
    system_catalog: SystemCatalog
    # connect() keywords that make a session read-only in the database itself
    read_only_options: Mapping[str, str] = field(
        default_factory=lambda: MappingProxyType({}), hash=False
    )
    image: DockerImage | None = None  # None: no server to run (SQLite)
    # Session settings an agent's SET may change: those that change neither how the server
    # reads a statement's text (standard_conforming_strings, client_encoding), nor how names
    # resolve (search_path), nor who the session is (role), nor a limit the fence set
    # (statement_timeout, default_transaction_read_only). Anything else is denied.
    settable: frozenset[str] = frozenset()
    # Of those, the ones that change how a literal reads or a value prints: pinned as well
    # under row filters or masks (a filter's date literal, a masker's text of a number)
    reading_settings: frozenset[str] = frozenset()
    # Of those, the ones that choose a plan: pinned under masks, where the session scans no
    # index (an index's order would rank rows by a masked value; see the driver's settings)
    planner_settings: frozenset[str] = frozenset()
    users_ignore_case: bool = False  # login names compare case-insensitively

    @property
    def names(self) -> tuple[str, ...]:
        """Every name ``profile`` resolves to this database."""
        spelled = (self.name, *self.aliases, self.dialect, self.system, *self.url_schemes)
        return tuple(dict.fromkeys(spelled))


# Is {column} of the outer row (c) part of its table's primary key? (information_schema)
_PRIMARY_KEY = (
    "SELECT 1 FROM information_schema.table_constraints k "
    "JOIN information_schema.key_column_usage u ON u.constraint_schema = k.constraint_schema "
    "AND u.constraint_name = k.constraint_name AND u.table_name = k.table_name "
    "WHERE k.constraint_type = 'PRIMARY KEY' AND k.table_schema = c.table_schema "
    "AND k.table_name = c.table_name AND u.column_name = {column}"
)

SQLITE = DatabaseProfile(
    name="sqlite",
    title="SQLite",
    aliases=("sqlite3",),
    system="sqlite",
    dialect="sqlite",
    default_schema="main",
    paramstyle="qmark",
    driver_module="sqlite3",
    driver_packages=("sqlite3",),
    pip_extra=None,
    url_schemes=("sqlite", "sqlite3"),
    default_port=None,
    catalog=CatalogQueries(
        list_tables=(
            "SELECT NULL, name, type = 'view' FROM sqlite_master WHERE type IN ('table', 'view') "
            "AND name NOT LIKE 'sqlite~_%' ESCAPE '~' ORDER BY name"
        ),
        # table_xinfo lists generated columns too (hidden 2, 3); hidden 1 is a virtual
        # table's own
        describe_table=(
            'SELECT name, type, "notnull", pk FROM pragma_table_xinfo(?) WHERE hidden <> 1'
        ),
        describe_with_schema=False,
        explain_prefix="EXPLAIN QUERY PLAN ",
        schema_stamp="PRAGMA schema_version",
    ),
    system_catalog=SystemCatalog(
        tables=frozenset(
            {
                "sqlite_master",
                "sqlite_schema",
                "sqlite_temp_master",
                "sqlite_temp_schema",
                "dbstat",
                "sqlite_stmt",
                "sqlite_dbpage",
            }
        ),
        # pragma_table_info written without arguments; sqlite_ names are SQLite's own (no
        # user table may take one): sqlite_sequence, and sqlite_stat1 to sqlite_stat4, whose
        # statistics count and sample every row of a table
        table_prefixes=("pragma_", "sqlite_"),
        # pragma_* and the catalog's virtual tables called as table-valued functions
        function_prefixes=("pragma_", "dbstat", "sqlite_stmt", "sqlite_dbpage", "sqlite_schema"),
        marks=("sqlite_", "dbstat", "pragma_"),
        # dbstat: each row's size, page by page
        statistics=frozenset(
            {"sqlite_stat1", "sqlite_stat2", "sqlite_stat3", "sqlite_stat4", "dbstat"}
        ),
        # the rowid an INSERT took: one past every tenant's rows
        statistics_functions=frozenset({"last_insert_rowid"}),
    ),
    read_only_options=MappingProxyType({"mode": "ro"}),
)

# The settings that choose a plan: an agent may set them, but not under masks (the session
# scans no index there; see the driver's session settings)
_POSTGRES_PLANNER = frozenset(
    {
        "random_page_cost",
        "seq_page_cost",
        "cpu_tuple_cost",
        "cpu_index_tuple_cost",
        "cpu_operator_cost",
        "effective_cache_size",
        "enable_seqscan",
        "enable_indexscan",
        "enable_indexonlyscan",
        "enable_bitmapscan",
        "enable_hashjoin",
        "enable_mergejoin",
        "enable_nestloop",
        "enable_sort",
        "enable_hashagg",
        "enable_material",
    }
)

# Functions that read PostgreSQL's catalog (name prefixes)
_POSTGRES_CATALOG_FUNCTIONS = (
    # definitions, names and privileges of every object, denied ones included
    "pg_get_", "to_reg", "obj_description", "col_description", "shobj_description",
    "has_",  # has_table_privilege, has_any_column_privilege, ... every privilege check
    "pg_has_role", "pg_describe_object", "pg_identify_object",
    # take a table's name and tell whether it exists, its size or its file
    "pg_relation_", "pg_total_relation_size", "pg_table_size", "pg_indexes_size",
    "pg_filenode_relation", "pg_partition_",
    # functions that take an object's name or oid and tell about it: sequences, heap
    # tuples, indexes, updatability, row security, statistics, cursors, prepared
    # statements, extensions and tablespaces on the server, settings' flags, types
    "pg_sequence_", "currtid", "pg_index_", "pg_indexam_", "pg_column_is_updatable",
    "pg_relation_is_updatable", "row_security_active", "pg_stat_have_stats", "pg_cursor",
    "pg_prepared_statement", "pg_prepared_xact", "pg_available_extension",
    "pg_extension_update_paths", "pg_tablespace_", "pg_database_size",
    "pg_settings_get_flags", "ts_debug", "format_type", "pg_options_to_table",
    # casts that look a name up in the catalog ('secrets'::regclass)
    "regclass", "regproc", "regoper", "regtype", "regrole", "regnamespace", "regconfig",
    "regdictionary", "regcollation",
)  # fmt: skip

POSTGRES = DatabaseProfile(
    name="postgres",
    title="PostgreSQL",
    aliases=("postgresql", "postgresql+psycopg"),
    system="postgresql",
    dialect="postgres",
    default_schema="public",
    paramstyle="pyformat",
    driver_module="psycopg",
    driver_packages=("psycopg",),
    pip_extra="postgres",
    url_schemes=("postgresql", "postgres", "postgresql+psycopg"),
    default_port=5432,
    catalog=CatalogQueries(
        list_tables=(
            "SELECT table_schema, table_name, table_type = 'VIEW' FROM information_schema.tables "
            "WHERE table_schema NOT IN ('pg_catalog', 'information_schema') "
            "ORDER BY table_schema, table_name"
        ),
        describe_table=(
            "SELECT c.column_name, c.data_type, c.is_nullable = 'NO', EXISTS ("
            + _PRIMARY_KEY.format(column="c.column_name")
            + ") FROM information_schema.columns c "
            "WHERE c.table_schema = %s AND c.table_name = %s ORDER BY c.ordinal_position"
        ),
        describe_with_schema=True,
        explain_prefix="EXPLAIN ",
        # no schema version: the catalog's size stands in
        schema_stamp=(
            "SELECT (SELECT count(*) FROM pg_class), (SELECT max(oid::int8) FROM pg_class), "
            "(SELECT count(*) FROM pg_attribute WHERE attnum > 0), "
            "(SELECT count(*) FROM pg_attrdef), (SELECT count(*) FROM pg_rewrite)"
        ),
    ),
    system_catalog=SystemCatalog(
        schemas=frozenset({"pg_catalog", "information_schema"}),
        # (no table prefix: public.pg_archive is the owner's; an unqualified pg_shadow is
        # qualified with pg_catalog, which PostgreSQL searches first)
        function_prefixes=_POSTGRES_CATALOG_FUNCTIONS,
        # pg_table_is_visible, pg_type_is_visible, ...: whether a named object is on the path
        function_suffixes=("_is_visible",),
        marks=("pg_", "information_schema", "INFORMATION_SCHEMA"),
        statistics=frozenset(
            {
                "pg_stats",
                "pg_stats_ext",
                "pg_stats_ext_exprs",
                "pg_statistic",
                "pg_statistic_ext",
                "pg_statistic_ext_data",
                "pg_class",  # reltuples
                "pg_prepared_xacts",  # every session's prepared transactions
                "pg_sequences",  # last_value: one past every tenant's ids
                "pg_largeobject",  # every large object's bytes, every tenant's
                "pg_largeobject_metadata",
                "pg_database",  # datfrozenxid: the transaction counter
                "pg_replication_slots",
                "pg_stat_all_tables",
                "pg_stat_user_tables",
                "pg_stat_xact_all_tables",
                "pg_stat_xact_user_tables",
                "pg_statio_all_tables",
                "pg_statio_user_tables",
                "pg_stat_sys_tables",
                "pg_stat_xact_sys_tables",
                "pg_statio_sys_tables",
                "pg_stat_all_indexes",
                "pg_stat_user_indexes",
                "pg_stat_sys_indexes",
                "pg_statio_all_indexes",
                "pg_statio_user_indexes",
                "pg_statio_sys_indexes",
                "pg_stat_database",
                "pg_stat_user_functions",
                "pg_stat_xact_user_functions",
                # other sessions' statement texts, with their literals
                "pg_stat_activity",
                "pg_stat_statements",
                "pg_stat_statements_info",
                "pg_locks",
            }
        ),
        # a table's size grows with every tenant's rows; transaction ids, snapshots and the
        # write-ahead log's position move with every tenant's writes
        statistics_functions=frozenset(
            {
                "pg_relation_size",
                "pg_table_size",
                "pg_indexes_size",
                "pg_total_relation_size",
                "pg_relation_filenode",
                "pg_relation_filepath",
                "pg_stat_get_live_tuples",
                "pg_current_snapshot",
                "txid_current_snapshot",
                "pg_current_xact_id_if_assigned",
                "txid_current_if_assigned",
                "pg_xact_status",
                "txid_status",
                "pg_xact_commit_timestamp",
                "pg_xact_commit_timestamp_origin",
                "pg_last_committed_xact",
                "pg_current_wal_lsn",
                "pg_current_wal_insert_lsn",
                "pg_current_wal_flush_lsn",
                "pg_walfile_name",
                "pg_walfile_name_offset",
                "pg_last_wal_receive_lsn",
                "pg_last_wal_replay_lsn",
                "pg_last_xact_replay_timestamp",
                "pg_control_checkpoint",
                "pg_control_system",
                "pg_control_init",
                "pg_control_recovery",
                # who waits on whom, every session's notifications, which backend this is
                "pg_isolation_test_session_is_blocked",
                "pg_blocking_pids",
                "pg_safe_snapshot_blocking_pids",
                "pg_notification_queue_usage",
                "pg_backend_pid",
                # a transaction id's age counts every session's transactions since; a tuple
                # id's newest version is where a hidden row's update was stored; the
                # database's size grows with every tenant's rows, a sequence with their ids
                "xid",
                "xid8",
                "cid",
                "tid",
                "mxid_age",
                "currtid",
                "currtid2",
                "pg_database_size",
                "pg_tablespace_size",
                "pg_sequence_last_value",
            }
        ),
        # every pg_stat_* and pg_statio_* view: counters of every session's work
        statistics_prefixes=("pg_stat",),
    ),
    reading_settings=frozenset(
        {"timezone", "datestyle", "intervalstyle", "extra_float_digits", "bytea_output"}
    ),
    planner_settings=_POSTGRES_PLANNER,
    settable=frozenset(
        {
            "transaction",  # SET TRANSACTION ISOLATION LEVEL ..., READ WRITE (not read-only)
            "timezone",
            "datestyle",
            "intervalstyle",
            "extra_float_digits",
            "bytea_output",
            "application_name",
            "lc_monetary",
            "lc_numeric",
            "lc_time",
            "work_mem",
            "temp_buffers",
            "jit",
            "from_collapse_limit",
            "join_collapse_limit",
            "geqo",
            "plan_cache_mode",
            "max_parallel_workers_per_gather",
        }
    )
    | _POSTGRES_PLANNER,
    read_only_options=MappingProxyType({"options": "-c default_transaction_read_only=on"}),
    image=DockerImage(
        name="postgres:16",
        user="postgres",
        user_env="POSTGRES_USER",
        password_env="POSTGRES_PASSWORD",
    ),
)

IRIS = DatabaseProfile(
    name="iris",
    title="InterSystems IRIS",
    aliases=("intersystems", "intersystems_iris"),
    system="intersystems_iris",
    dialect="iris",
    default_schema="SQLUser",
    paramstyle="qmark",
    driver_module="iris.dbapi",
    driver_packages=("iris", "intersystems_iris"),
    pip_extra=None,  # intersystems-irispython is a core dependency
    url_schemes=("iris", "intersystems"),
    default_port=1972,
    catalog=CatalogQueries(
        list_tables=(
            "SELECT TABLE_SCHEMA, TABLE_NAME, CASE WHEN TABLE_TYPE = 'VIEW' THEN 1 ELSE 0 END "
            "FROM INFORMATION_SCHEMA.TABLES "
            "WHERE TABLE_SCHEMA NOT LIKE '%SYS%' AND TABLE_SCHEMA NOT LIKE 'Ens%' "
            "ORDER BY TABLE_SCHEMA, TABLE_NAME"
        ),
        describe_table=(
            "SELECT c.COLUMN_NAME, c.DATA_TYPE, CASE WHEN c.IS_NULLABLE = 'NO' THEN 1 ELSE 0 END, "
            "CASE WHEN EXISTS ("
            + _PRIMARY_KEY.format(column="c.COLUMN_NAME")
            + ") THEN 1 ELSE 0 END FROM INFORMATION_SCHEMA.COLUMNS c "
            "WHERE c.TABLE_SCHEMA = ? AND c.TABLE_NAME = ? ORDER BY c.ORDINAL_POSITION"
        ),
        describe_with_schema=True,
        explain_prefix="EXPLAIN ",
    ),
    system_catalog=SystemCatalog(
        schemas=frozenset({"information_schema"}),
        schema_prefixes=("%",),  # %Dictionary and the other system class packages
        marks=("information_schema", "INFORMATION_SCHEMA", "%"),
    ),
    # no read_only_options: sqlfence knows none for IRIS's driver
    image=DockerImage(
        name="intersystemsdc/iris-community:latest",
        user="_SYSTEM",
        user_env="IRIS_USERNAME",
        password_env="IRIS_PASSWORD",
    ),
    users_ignore_case=True,
)

PROFILES = (SQLITE, POSTGRES, IRIS)
_BY_NAME = {name: each for each in PROFILES for name in each.names}


def find(name: str) -> DatabaseProfile | None:
    """The profile ``name`` (any case) names, or None for a database sqlfence has none of."""
    found = _BY_NAME.get(name)
    return found if found is not None else _BY_NAME.get(name.lower())


def profile(name: str) -> DatabaseProfile:
    """The profile ``name`` (kind, alias, URL scheme, dialect or system, any case) names.

    Raises ConfigurationError naming the known kinds.
    """
    found = find(name)
    if found is None:
        known = ", ".join(each.name for each in PROFILES)
        raise ConfigurationError(f"unknown database {name!r} (known: {known})")
    return found

"""The built-in function deny lists, derived from the servers' own catalogs, not guessed.

PostgreSQL: every ``pg_proc`` function of a family of the documentation (System Administration
Functions and its sections, the statistics functions, Mapping Tables to XML) and of the contrib
extensions that reach outside SQL or read raw data must be on ``builtin_denied("postgres")``.
SQLite: the same over ``pragma_function_list`` and ``pragma_module_list`` of the Python module's
SQLite and of the sqlite3 shell (whose extensions add files, archives and dynamic SQL), and
every extension function (``builtin = 0``) must be either denied or reviewed as harmless.
Functions agents use in analytics must stay allowed.
"""

from __future__ import annotations

import re
import shutil
import sqlite3
import subprocess
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from sqlfence import Guard
from sqlfence.policies.tables import is_catalog_function
from sqlfence.sql.functions import builtin_denied, canonical
from tests.postgres_server import PostgresServer

# PostgreSQL families: name -> pattern over pg_catalog's proname (PostgreSQL and Python regex).
PG_FAMILIES: dict[str, str] = {
    # 9.27.1 Configuration Settings (set_config) and the configuration files' views
    "configuration": r"^(set_config|pg_show_all_(file_)?settings|pg_hba_file_rules"
    r"|pg_ident_file_mappings|pg_config)$",
    # 9.27.2 Server Signaling
    "server signalling": r"^pg_(cancel_backend|terminate_backend|reload_conf|rotate_logfile\w*"
    r"|log_backend_memory_contexts)$",
    # 9.27.3 Backup Control (the LSN readers and pg_walfile_name stay allowed: read-only)
    "backup control": r"^pg_(backup_(start|stop)|start_backup|stop_backup|create_restore_point"
    r"|switch_wal)$",
    # 9.27.4 Recovery Control (pg_is_in_recovery, pg_is_wal_replay_paused stay allowed)
    "recovery control": r"^pg_(wal_replay_(pause|resume)|promote)$",
    # 9.27.5 Snapshot Synchronization
    "snapshot synchronization": r"^pg_export_snapshot$",
    # 9.27.6 Replication Management: slots, logical decoding, replication origins
    "replication": r"^pg_(create_\w*_slot|copy_\w*_slot|drop_replication_slot|replication_\w+"
    r"|logical_\w+|show_replication_origin_status|log_standby_snapshot"
    r"|sync_replication_slots)$",
    # 9.27.7 Database Object Management that writes (sizes and locations stay allowed), and
    # the internal writers pg_upgrade and initdb use
    "object management": r"^(pg_(nextoid|import_system_collations|stop_making_pinned_objects"
    r"|extension_config_dump)|binary_upgrade_\w+)$",
    # 9.27.8 Index Maintenance
    "index maintenance": r"^(brin_(summarize_new_values|summarize_range|desummarize_range)"
    r"|gin_clean_pending_list)$",
    # 9.27.9 Generic File Access, and the log file's name
    "file access": r"^pg_(ls_\w+|read_\w+|stat_file|current_logfile|file_\w+|logdir_ls)$",
    # 9.27.10 Advisory Lock Functions
    "advisory locks": r"^pg_(try_)?advisory_\w+$",
    # 28.2 The Cumulative Statistics System: resets and the functions behind the views
    "statistics": r"^pg_stat_(reset\w*|get_\w+|statements\w*)$",
    # other sessions: locks, prepared transactions, who blocks whom (the views are catalog)
    "other sessions": r"^pg_(lock_status|prepared_xact|blocking_pids"
    r"|safe_snapshot_blocking_pids)$",
    # 9.26 Control Data Functions: the server's control file
    "control data": r"^pg_control_\w+$",
    # 9.15.4 Mapping Tables to XML: each runs a query (text, table, cursor, schema, database)
    "xml mapping": r"^(query|table|cursor|schema|database)_to_xml\w*$",
    # 35.4 Server-Side Large Object Functions
    "large objects": r"^(lo_\w+|loread|lowrite)$",
    # 9.28 Sequence Manipulation and transaction ids that assign one
    "state behind a select": r"^(nextval|setval|txid_current|pg_current_xact_id|pg_notify"
    r"|pg_sleep\w*)$",
    # 9.13 Text Search Functions that run the text of a query
    "text search dynamic sql": r"^(ts_stat|ts_rewrite)$",
}

# Contrib extensions: name -> pattern of its functions that must be denied ("" for all).
PG_EXTENSIONS: dict[str, str] = {
    "adminpack": "",  # writes, renames and removes server files
    "dblink": "",  # other databases and servers
    "postgres_fdw": "",  # other servers' connections
    "file_fdw": "",  # server files as tables
    "lo": "",  # large objects
    "pg_stat_statements": "",  # every session's statements
    "pageinspect": "",  # raw pages of any table
    "pg_walinspect": "",  # WAL records of every table
    "pgstattuple": "",  # tuple-level statistics of any table
    "pgrowlocks": "",  # the locked rows of any table
    "pg_visibility": "",  # visibility maps (and truncates them)
    "pg_freespacemap": "",  # free space of any table
    "pg_buffercache": "",  # the shared buffers of every table
    "pg_prewarm": "",  # loads tables into memory, starts workers
    "pg_surgery": "",  # kills and freezes heap tuples
    "amcheck": "",  # raw heap and index checks
    "old_snapshot": "",  # the server's snapshot time map
    "tablefunc": r"^(crosstab\d*|connectby)$",  # run the query texts they are given
    "xml2": r"^(xpath_table|xslt_process)$",  # runs a query; XSLT reached files before 9.1.5
}

# Denied whether or not the server offers the extension (a fixed list of its names).
PG_EXTENSION_NAMES = (
    "dblink", "dblink_exec", "dblink_connect", "dblink_connect_u", "dblink_send_query",
    "dblink_open", "dblink_fetch", "dblink_get_result", "pg_file_write", "pg_file_rename",
    "pg_file_unlink", "pg_file_sync", "pg_logdir_ls", "postgres_fdw_get_connections",
    "postgres_fdw_disconnect", "pg_stat_statements", "pg_stat_statements_reset",
    "get_raw_page", "heap_page_items", "pg_get_wal_records_info", "pgstattuple", "pgrowlocks",
    "pg_visibility", "pg_truncate_visibility_map", "pg_freespace", "pg_buffercache_pages",
    "pg_prewarm", "heap_force_kill", "heap_force_freeze", "verify_heapam",
    "pg_old_snapshot_time_mapping", "crosstab", "connectby", "xpath_table", "lo_manage",
)  # fmt: skip

# Agent SQL that must stay allowed: name -> a statement calling it (core or a common extension).
PG_ALLOWED: dict[str, str] = {
    "now": "SELECT now()",
    "date_part": "SELECT date_part('year', now())",
    "date_trunc": "SELECT date_trunc('month', now())",
    "count": "SELECT count(*)",
    "string_agg": "SELECT string_agg('a', ',')",
    "generate_series": "SELECT * FROM generate_series(1, 3)",
    "coalesce": "SELECT coalesce(NULL, 1)",
    "lower": "SELECT lower('A')",
    "to_char": "SELECT to_char(now(), 'YYYY')",
    "json_build_object": "SELECT json_build_object('a', 1)",
    "jsonb_agg": "SELECT jsonb_agg(1)",
    "current_setting": "SELECT current_setting('TimeZone')",
    "current_database": "SELECT current_database()",
    "pg_typeof": "SELECT pg_typeof(1)",
    "version": "SELECT version()",
    "pg_size_pretty": "SELECT pg_size_pretty(1024::bigint)",
    "pg_column_size": "SELECT pg_column_size(1)",
    "pg_backend_pid": "SELECT pg_backend_pid()",
    "pg_postmaster_start_time": "SELECT pg_postmaster_start_time()",
    "pg_is_in_recovery": "SELECT pg_is_in_recovery()",
    "pg_wal_lsn_diff": "SELECT pg_wal_lsn_diff('0/2', '0/1')",
    "pg_current_xact_id_if_assigned": "SELECT pg_current_xact_id_if_assigned()",
    "txid_current_if_assigned": "SELECT txid_current_if_assigned()",
    "currval": "SELECT currval('s')",
    "xpath": "SELECT xpath('/a', '<a/>'::xml)",
    "to_tsvector": "SELECT to_tsvector('english', 'a b')",
    "gen_random_uuid": "SELECT gen_random_uuid()",
    "digest": "SELECT digest('a', 'sha256')",
    "similarity": "SELECT similarity('a', 'b')",
    "levenshtein": "SELECT levenshtein('a', 'b')",
    "normal_rand": "SELECT * FROM normal_rand(3, 0, 1)",
}
PG_EXTENSION_ALLOWED = ("gen_random_uuid", "digest", "similarity", "levenshtein", "normal_rand")
# Extensions whose functions all stay allowed (tablefunc: all but the PG_EXTENSIONS pattern).
PG_HARMLESS = (
    "pgcrypto", "pg_trgm", "fuzzystrmatch", "uuid-ossp", "hstore", "citext", "ltree", "intarray",
    "cube", "earthdistance", "isn", "seg", "unaccent", "btree_gin", "btree_gist", "tablefunc",
)  # fmt: skip
_IN_PG_CATALOG = "pronamespace = 'pg_catalog'::regnamespace"

# SQLite families: name -> pattern over pragma_function_list and pragma_module_list names.
SQLITE_FAMILIES: dict[str, str] = {
    "loading code": r"^(load_extension|fts3_tokenizer)$",
    "files and processes": r"^(readfile|writefile|edit|lsdir|lsmode|fsdir|mkdir|symlink"
    r"|fileio_\w+|zipfile\w*|sqlar_\w+)$",
    "dynamic sql": r"^(eval|sha3_query|define\w*|undefine)$",
    "raw pages": r"^sqlite_db(page|data|ptr)$",
    "writes, log, sleep": r"^(optimize|sqlite_log|usleep|sleep)$",
    "shell helpers": r"^shell_\w+$",
    "names in strings": r"^(rtreecheck|completion)$",
}
SQLITE_EXTENSION_NAMES = (
    "load_extension", "readfile", "writefile", "edit", "fsdir", "lsdir", "zipfile",
    "sqlar_compress", "sqlar_uncompress", "eval", "sha3_query", "fileio_read", "fileio_write",
    "define", "sqlite_dbpage", "sqlite_dbdata", "fts3_tokenizer", "usleep", "completion",
    "shell_putsnl",
)  # fmt: skip
# Extension functions and modules reviewed as harmless: FTS and R*Tree auxiliaries over their own
# tables, arithmetic, hashing, regular expressions, build information, JSON and series modules.
SQLITE_REVIEWED = frozenset(
    {
        "bm25", "highlight", "snippet", "offsets", "matchinfo", "match", "fts5",
        "fts5_source_id", "rtreedepth", "rtreenode", "decimal", "decimal_add", "decimal_cmp",
        "decimal_mul", "decimal_sub", "decimal_sum", "ieee754", "ieee754_exponent",
        "ieee754_from_blob", "ieee754_mantissa", "ieee754_to_blob", "regexp", "regexpi", "sha3",
        "sha3_agg", "fts3", "fts4", "fts3tokenize", "fts4aux", "fts5vocab", "rtree",
        "rtree_i32", "geopoly", "json_each", "json_tree", "generate_series",
    }
)  # fmt: skip
# Catalog readers the system_catalog rule should own (sqlfence/policies/tables.py).
SQLITE_CATALOG_MODULES = ("dbstat", "sqlite_stmt")
SQLITE_ALLOWED: dict[str, str] = {
    "date": "SELECT date('now')",
    "strftime": "SELECT strftime('%Y', 'now')",
    "julianday": "SELECT julianday('now')",
    "json_extract": "SELECT json_extract('{}', '$.a')",
    "group_concat": "SELECT group_concat('a')",
    "printf": "SELECT printf('%d', 1)",
    "substr": "SELECT substr('abc', 1, 2)",
    "round": "SELECT round(1.5)",
    "ifnull": "SELECT ifnull(NULL, 1)",
    "sqlite_version": "SELECT sqlite_version()",
    "sqlite_source_id": "SELECT sqlite_source_id()",
    "sqlite_compileoption_used": "SELECT sqlite_compileoption_used('ENABLE_FTS5')",
    "changes": "SELECT changes()",
    "last_insert_rowid": "SELECT last_insert_rowid()",
    "random": "SELECT random()",
    "randomblob": "SELECT randomblob(4)",
    "sha3": "SELECT sha3('a')",
    "json_each": "SELECT * FROM json_each('[1]')",
    "generate_series": "SELECT * FROM generate_series(1, 3)",
}


def _matching(names: set[str], families: Mapping[str, str]) -> dict[str, set[str]]:
    return {family: {n for n in names if re.search(p, n)} for family, p in families.items()}


def _undenied(names: set[str], dialect: str) -> list[str]:
    denied = builtin_denied(dialect)
    return sorted(n for n in names if canonical(n) not in denied)


# PostgreSQL -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pg_conn(postgres_server: PostgresServer) -> Iterator[Any]:
    """A connection to the test server's postgres database."""
    import psycopg

    with psycopg.connect(postgres_server.url, autocommit=True) as conn:
        yield conn


@pytest.fixture(scope="module")
def pg_catalog_functions(pg_conn: Any) -> set[str]:
    """The names of pg_catalog's functions on the test server."""
    rows = pg_conn.execute(f"SELECT DISTINCT proname FROM pg_proc WHERE {_IN_PG_CATALOG}")
    return {row[0] for row in rows.fetchall()}


@pytest.fixture(scope="module")
def pg_extension_functions(postgres_server: PostgresServer) -> Iterator[dict[str, set[str]]]:
    """The functions of each listed extension the server offers, installed in a new database."""
    import psycopg

    name = f"t_ext_{uuid.uuid4().hex[:12]}"
    base = postgres_server.url.rsplit("/", 1)[0]
    with psycopg.connect(postgres_server.url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        with psycopg.connect(f"{base}/{name}", autocommit=True) as conn:
            rows = conn.execute("SELECT name FROM pg_available_extensions").fetchall()
            offered = {row[0] for row in rows}
            for extension in sorted((set(PG_EXTENSIONS) | set(PG_HARMLESS)) & offered):
                conn.execute(f'CREATE EXTENSION IF NOT EXISTS "{extension}" CASCADE')
            rows = conn.execute(
                "SELECT e.extname, p.proname FROM pg_extension e"
                " JOIN pg_depend d ON d.refclassid = 'pg_extension'::regclass"
                " AND d.refobjid = e.oid AND d.classid = 'pg_proc'::regclass AND d.deptype = 'e'"
                " JOIN pg_proc p ON p.oid = d.objid"
            ).fetchall()
        functions: dict[str, set[str]] = {}
        for extension, proname in rows:
            functions.setdefault(extension, set()).add(proname)
        yield functions
    finally:
        with psycopg.connect(postgres_server.url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.postgres
@pytest.mark.parametrize("family", sorted(PG_FAMILIES))
def test_postgres_family_is_denied(family: str, pg_conn: Any) -> None:
    """Every pg_proc function of a documented family is on the built-in deny list."""
    rows = pg_conn.execute(
        f"SELECT DISTINCT proname FROM pg_proc WHERE {_IN_PG_CATALOG} AND proname ~ %s",
        (PG_FAMILIES[family],),
    ).fetchall()
    members = {row[0] for row in rows}
    assert members, f"the {family} pattern matches no function of pg_proc: it is stale"
    assert _undenied(members, "postgres") == []


@pytest.mark.postgres
@pytest.mark.parametrize("extension", sorted(PG_EXTENSIONS))
def test_postgres_extension_functions_are_denied(
    extension: str, pg_extension_functions: dict[str, set[str]]
) -> None:
    """Every function of a listed contrib extension (or of its pattern) is denied."""
    if extension not in pg_extension_functions:
        pytest.skip(f"the server does not offer {extension}")
    pattern = PG_EXTENSIONS[extension]
    members = {n for n in pg_extension_functions[extension] if re.search(pattern, n)}
    assert members
    assert _undenied(members, "postgres") == []


@pytest.mark.postgres
def test_postgres_allowed_exist(pg_catalog_functions: set[str]) -> None:
    """The must-stay-allowed sample names real functions of pg_catalog (not typos)."""
    core = set(PG_ALLOWED) - set(PG_EXTENSION_ALLOWED) - {"coalesce"}  # coalesce is syntax
    assert sorted(core - pg_catalog_functions) == []


@pytest.mark.postgres
@pytest.mark.parametrize("extension", sorted(PG_HARMLESS))
def test_postgres_harmless_extensions_stay_allowed(
    extension: str, pg_extension_functions: dict[str, set[str]]
) -> None:
    """No function of an extension agents use for hashing, fuzzy text or types is denied."""
    if extension not in pg_extension_functions:
        pytest.skip(f"the server does not offer {extension}")
    functions = pg_extension_functions[extension]
    denied = builtin_denied("postgres")
    pattern = PG_EXTENSIONS.get(extension)
    allowed = {n for n in functions if pattern is None or not re.search(pattern, n)}
    assert allowed
    assert sorted(n for n in allowed if canonical(n) in denied) == []


def test_postgres_extension_names_are_denied() -> None:
    """Extension functions are denied even where the test server does not offer them."""
    assert _undenied(set(PG_EXTENSION_NAMES), "postgres") == []


@pytest.mark.parametrize("name", sorted(PG_ALLOWED))
def test_postgres_analytics_stay_allowed(name: str) -> None:
    """Read-only functions agents use stay allowed and outside every family."""
    assert [f for f, p in PG_FAMILIES.items() if re.search(p, name)] == []
    assert canonical(name) not in builtin_denied("postgres")
    decision = Guard({"read_only": True}, dialect="postgres").decide(PG_ALLOWED[name])
    assert decision.allowed, decision.explain()


@pytest.mark.postgres
def test_postgres_catalog_readers_are_catalog_functions(pg_catalog_functions: set[str]) -> None:
    """pg_proc's privilege and visibility probes are the system_catalog rule's functions."""
    pattern = r"^(has_\w+_privilege|pg_has_role|\w+_is_visible)$"
    probes = {n for n in pg_catalog_functions if re.search(pattern, n)}
    assert probes
    assert sorted(n for n in probes if not is_catalog_function("postgres", n)) == []


# SQLite -----------------------------------------------------------------------------------

# name -> whether it needs review: an extension's function (builtin = 0), or any module (a
# module called as a table-valued function is a function to the fence).
_SQLITE_QUERY = (
    "SELECT name, builtin = 0 FROM pragma_function_list"
    " UNION ALL SELECT name, 1 FROM pragma_module_list"
)


def _python_sqlite() -> dict[str, bool]:
    found: dict[str, bool] = {}
    conn = sqlite3.connect(":memory:")
    try:
        for name, review in conn.execute(_SQLITE_QUERY):
            found[name] = found.get(name, False) or bool(review)
    finally:
        conn.close()
    return found


def _shell_sqlite() -> dict[str, bool]:
    shell = shutil.which("sqlite3")
    if shell is None:
        pytest.skip("the sqlite3 shell is not installed (its extension names are fixed below)")
    out = subprocess.run(
        [shell, "-batch", "-noheader", "-list", ":memory:", _SQLITE_QUERY],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    found: dict[str, bool] = {}
    for line in out.splitlines():
        name, _, review = line.partition("|")
        found[name] = found.get(name, False) or review == "1"
    return found


@pytest.fixture(scope="module", params=["python", "shell"])
def sqlite_functions(request: pytest.FixtureRequest) -> dict[str, bool]:
    """Function and module names of an SQLite build: name -> whether it needs review."""
    return _python_sqlite() if request.param == "python" else _shell_sqlite()


@pytest.mark.parametrize("family", sorted(SQLITE_FAMILIES))
def test_sqlite_family_is_denied(family: str, sqlite_functions: dict[str, bool]) -> None:
    """Every function or module of a family that the SQLite build has is denied."""
    members = _matching(set(sqlite_functions), {family: SQLITE_FAMILIES[family]})[family]
    assert _undenied(members, "sqlite") == []


def test_sqlite_extensions_are_denied_or_reviewed(sqlite_functions: dict[str, bool]) -> None:
    """An extension function or module is denied, reviewed as harmless, or a catalog reader."""
    denied = builtin_denied("sqlite")
    unreviewed = sorted(
        name
        for name, review in sqlite_functions.items()
        if review
        and canonical(name) not in denied
        and name not in SQLITE_REVIEWED
        and name not in SQLITE_CATALOG_MODULES
        and not is_catalog_function("sqlite", name)
    )
    assert unreviewed == []


def test_sqlite_families_are_not_empty() -> None:
    """Each SQLite family matches a fixed extension name or a function of Python's SQLite."""
    names = set(SQLITE_EXTENSION_NAMES) | set(_python_sqlite())
    assert [f for f, members in _matching(names, SQLITE_FAMILIES).items() if not members] == []


def test_sqlite_extension_names_are_denied() -> None:
    """Extension functions are denied even where this SQLite build does not have them."""
    assert _undenied(set(SQLITE_EXTENSION_NAMES), "sqlite") == []


@pytest.mark.parametrize("name", sorted(SQLITE_ALLOWED))
def test_sqlite_analytics_stay_allowed(name: str) -> None:
    """Read-only functions agents use stay allowed and outside every family."""
    assert [f for f, p in SQLITE_FAMILIES.items() if re.search(p, name)] == []
    assert canonical(name) not in builtin_denied("sqlite")
    decision = Guard({"read_only": True}, dialect="sqlite").decide(SQLITE_ALLOWED[name])
    assert decision.allowed, decision.explain()


def test_sqlite_catalog_modules_are_catalog_functions() -> None:
    """dbstat and sqlite_stmt called as table-valued functions are catalog readers."""
    assert [n for n in SQLITE_CATALOG_MODULES if not is_catalog_function("sqlite", n)] == []


# Both -------------------------------------------------------------------------------------


@pytest.mark.parametrize("dialect", ["postgres", "sqlite"])
def test_every_listed_name_is_denied_when_called(dialect: str) -> None:
    """Each name on the built-in list is refused by the denied_functions rule when called."""
    guard = Guard({"read_only": True}, dialect=dialect)
    let_through = []
    for name in sorted(builtin_denied(dialect)):
        for sql in (f"SELECT {name}()", f"SELECT * FROM {name}('x')"):
            decision = guard.decide(sql)
            if "denied_functions" not in {reason.rule for reason in decision.reasons}:
                let_through.append(f"{sql}: {decision.explain()}")
    assert let_through == []

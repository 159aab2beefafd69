"""Function names: one canonical name per function, and the built-in deny list per dialect.

Typed sqlglot nodes have several names (``SUBSTR``/``SUBSTRING``); a policy may use any of
them, and facts use the canonical one, so both sides are mapped through ``canonical``.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlglot import exp
from sqlglot.dialects.dialect import Dialect

# Functions that reach outside SQL, change state behind a SELECT, or read what the fence cannot
# see: files, network, sleeping, sequences, configuration, dynamic SQL (which hides a statement
# from the fence), server control, other sessions. Each PostgreSQL group is a family of the
# documentation ("System Administration Functions" and its sections, the statistics functions,
# "Mapping Tables to XML") or of a contrib extension; tests/sql/test_function_families.py reads
# pg_proc and fails when a function of a family is missing here. Names a later server version
# adds are listed beside the PostgreSQL 15 ones.
_POSTGRES = frozenset(
    {
        # configuration settings and files (current_setting stays allowed: read-only, common)
        "set_config", "pg_show_all_settings", "pg_show_all_file_settings", "pg_hba_file_rules",
        "pg_ident_file_mappings", "pg_config",
        # server signalling
        "pg_cancel_backend", "pg_terminate_backend", "pg_reload_conf", "pg_rotate_logfile",
        "pg_rotate_logfile_old", "pg_log_backend_memory_contexts",
        # backup control, recovery control, snapshot synchronization
        "pg_backup_start", "pg_backup_stop", "pg_create_restore_point", "pg_switch_wal",
        "pg_promote", "pg_wal_replay_pause", "pg_wal_replay_resume", "pg_export_snapshot",
        # replication management: slots, logical decoding, replication origins
        "pg_create_logical_replication_slot", "pg_create_physical_replication_slot",
        "pg_copy_logical_replication_slot", "pg_copy_physical_replication_slot",
        "pg_drop_replication_slot", "pg_replication_slot_advance", "pg_logical_emit_message",
        "pg_logical_slot_get_changes", "pg_logical_slot_get_binary_changes",
        "pg_logical_slot_peek_changes", "pg_logical_slot_peek_binary_changes",
        "pg_replication_origin_advance", "pg_replication_origin_create",
        "pg_replication_origin_drop", "pg_replication_origin_oid",
        "pg_replication_origin_progress", "pg_replication_origin_session_is_setup",
        "pg_replication_origin_session_progress", "pg_replication_origin_session_reset",
        "pg_replication_origin_session_setup", "pg_replication_origin_xact_reset",
        "pg_replication_origin_xact_setup", "pg_show_replication_origin_status",
        "pg_log_standby_snapshot", "pg_sync_replication_slots",
        # database object management and index maintenance that write (sizes stay allowed)
        "pg_import_system_collations", "pg_nextoid", "pg_stop_making_pinned_objects",
        "pg_extension_config_dump", "brin_summarize_new_values", "brin_summarize_range",
        "brin_desummarize_range", "gin_clean_pending_list",
        "binary_upgrade_create_empty_extension", "binary_upgrade_set_missing_value",
        "binary_upgrade_set_next_array_pg_type_oid", "binary_upgrade_set_next_heap_pg_class_oid",
        "binary_upgrade_set_next_heap_relfilenode", "binary_upgrade_set_next_index_pg_class_oid",
        "binary_upgrade_set_next_index_relfilenode",
        "binary_upgrade_set_next_multirange_array_pg_type_oid",
        "binary_upgrade_set_next_multirange_pg_type_oid", "binary_upgrade_set_next_pg_authid_oid",
        "binary_upgrade_set_next_pg_enum_oid", "binary_upgrade_set_next_pg_tablespace_oid",
        "binary_upgrade_set_next_pg_type_oid", "binary_upgrade_set_next_toast_pg_class_oid",
        "binary_upgrade_set_next_toast_relfilenode", "binary_upgrade_set_record_init_privs",
        # generic file access, and the log file's name (adminpack's writers too)
        "pg_read_file", "pg_read_file_old", "pg_read_binary_file", "pg_stat_file", "pg_ls_dir",
        "pg_ls_logdir", "pg_ls_waldir", "pg_ls_tmpdir", "pg_ls_archive_statusdir",
        "pg_ls_logicalsnapdir", "pg_ls_logicalmapdir", "pg_ls_replslotdir", "pg_ls_summariesdir",
        "pg_current_logfile", "pg_file_write", "pg_file_rename", "pg_file_unlink",
        "pg_file_sync", "pg_logdir_ls",
        # server-side large objects
        "lo_import", "lo_export", "lo_unlink", "lo_put", "lo_get", "lo_from_bytea", "lo_create",
        "lo_creat", "lo_open", "lo_close", "lo_lseek", "lo_lseek64", "lo_tell", "lo_tell64",
        "lo_truncate", "lo_truncate64", "loread", "lowrite", "lo_manage", "lo_oid",
        # advisory locks, sleeping, notifications
        "pg_advisory_lock", "pg_advisory_lock_shared", "pg_advisory_unlock",
        "pg_advisory_unlock_all", "pg_advisory_unlock_shared", "pg_advisory_xact_lock",
        "pg_advisory_xact_lock_shared", "pg_try_advisory_lock", "pg_try_advisory_lock_shared",
        "pg_try_advisory_xact_lock", "pg_try_advisory_xact_lock_shared", "pg_sleep",
        "pg_sleep_for", "pg_sleep_until", "pg_notify",
        # other sessions and the server's state: locks, prepared transactions, control file
        "pg_lock_status", "pg_prepared_xact", "pg_blocking_pids",
        "pg_safe_snapshot_blocking_pids", "pg_control_checkpoint", "pg_control_init",
        "pg_control_recovery", "pg_control_system",
        # statistics: resets, and the pg_stat_get_* functions behind the pg_stat_* views (the
        # views are the catalog; these show other sessions' queries, client addresses, server
        # counters, and counters of every table and function, denied ones included)
        "pg_stat_reset", "pg_stat_reset_shared", "pg_stat_reset_single_table_counters",
        "pg_stat_reset_single_function_counters", "pg_stat_reset_slru",
        "pg_stat_reset_replication_slot", "pg_stat_reset_subscription_stats",
        "pg_stat_reset_backend_stats", "pg_stat_statements", "pg_stat_statements_info",
        "pg_stat_statements_reset",
        "pg_stat_get_activity", "pg_stat_get_progress_info", "pg_stat_get_backend_idset",
        "pg_stat_get_backend_activity", "pg_stat_get_backend_activity_start",
        "pg_stat_get_backend_client_addr", "pg_stat_get_backend_client_port",
        "pg_stat_get_backend_dbid", "pg_stat_get_backend_pid", "pg_stat_get_backend_start",
        "pg_stat_get_backend_userid", "pg_stat_get_backend_wait_event",
        "pg_stat_get_backend_wait_event_type", "pg_stat_get_backend_xact_start",
        "pg_stat_get_backend_subxact", "pg_stat_get_backend_io", "pg_stat_get_backend_wal",
        "pg_stat_get_wal_senders", "pg_stat_get_wal_receiver", "pg_stat_get_subscription",
        "pg_stat_get_subscription_stats", "pg_stat_get_replication_slot",
        "pg_stat_get_recovery_prefetch", "pg_stat_get_snapshot_timestamp", "pg_stat_get_archiver",
        "pg_stat_get_wal", "pg_stat_get_slru", "pg_stat_get_io",
        "pg_stat_get_bgwriter_buf_written_checkpoints", "pg_stat_get_bgwriter_buf_written_clean",
        "pg_stat_get_bgwriter_maxwritten_clean", "pg_stat_get_bgwriter_requested_checkpoints",
        "pg_stat_get_bgwriter_stat_reset_time", "pg_stat_get_bgwriter_timed_checkpoints",
        "pg_stat_get_buf_alloc", "pg_stat_get_buf_fsync_backend",
        "pg_stat_get_buf_written_backend", "pg_stat_get_checkpoint_sync_time",
        "pg_stat_get_checkpoint_write_time",
        "pg_stat_get_db_active_time", "pg_stat_get_db_blk_read_time",
        "pg_stat_get_db_blk_write_time", "pg_stat_get_db_blocks_fetched",
        "pg_stat_get_db_blocks_hit", "pg_stat_get_db_checksum_failures",
        "pg_stat_get_db_checksum_last_failure", "pg_stat_get_db_conflict_all",
        "pg_stat_get_db_conflict_bufferpin", "pg_stat_get_db_conflict_lock",
        "pg_stat_get_db_conflict_snapshot", "pg_stat_get_db_conflict_startup_deadlock",
        "pg_stat_get_db_conflict_tablespace", "pg_stat_get_db_deadlocks",
        "pg_stat_get_db_idle_in_transaction_time", "pg_stat_get_db_numbackends",
        "pg_stat_get_db_session_time", "pg_stat_get_db_sessions",
        "pg_stat_get_db_sessions_abandoned", "pg_stat_get_db_sessions_fatal",
        "pg_stat_get_db_sessions_killed", "pg_stat_get_db_stat_reset_time",
        "pg_stat_get_db_temp_bytes", "pg_stat_get_db_temp_files",
        "pg_stat_get_db_tuples_deleted", "pg_stat_get_db_tuples_fetched",
        "pg_stat_get_db_tuples_inserted", "pg_stat_get_db_tuples_returned",
        "pg_stat_get_db_tuples_updated", "pg_stat_get_db_xact_commit",
        "pg_stat_get_db_xact_rollback",
        "pg_stat_get_numscans", "pg_stat_get_tuples_returned", "pg_stat_get_tuples_fetched",
        "pg_stat_get_tuples_inserted", "pg_stat_get_tuples_updated",
        "pg_stat_get_tuples_deleted", "pg_stat_get_tuples_hot_updated",
        "pg_stat_get_live_tuples", "pg_stat_get_dead_tuples", "pg_stat_get_mod_since_analyze",
        "pg_stat_get_ins_since_vacuum", "pg_stat_get_blocks_fetched", "pg_stat_get_blocks_hit",
        "pg_stat_get_last_vacuum_time", "pg_stat_get_last_autovacuum_time",
        "pg_stat_get_last_analyze_time", "pg_stat_get_last_autoanalyze_time",
        "pg_stat_get_vacuum_count", "pg_stat_get_autovacuum_count", "pg_stat_get_analyze_count",
        "pg_stat_get_autoanalyze_count", "pg_stat_get_function_calls",
        "pg_stat_get_function_total_time", "pg_stat_get_function_self_time",
        "pg_stat_get_xact_numscans", "pg_stat_get_xact_tuples_returned",
        "pg_stat_get_xact_tuples_fetched", "pg_stat_get_xact_tuples_inserted",
        "pg_stat_get_xact_tuples_updated", "pg_stat_get_xact_tuples_deleted",
        "pg_stat_get_xact_tuples_hot_updated", "pg_stat_get_xact_blocks_fetched",
        "pg_stat_get_xact_blocks_hit", "pg_stat_get_xact_function_calls",
        "pg_stat_get_xact_function_total_time", "pg_stat_get_xact_function_self_time",
        # transaction ids that assign one, sequences that advance
        "txid_current", "pg_current_xact_id", "nextval", "setval",
        # dynamic SQL: the text of another query is executed server-side (Mapping Tables to
        # XML, text search's ts_stat and ts_rewrite, tablefunc, xml2)
        "query_to_xml", "query_to_xmlschema", "query_to_xml_and_xmlschema", "table_to_xml",
        "table_to_xmlschema", "table_to_xml_and_xmlschema", "cursor_to_xml",
        "cursor_to_xmlschema", "schema_to_xml", "schema_to_xmlschema",
        "schema_to_xml_and_xmlschema", "database_to_xml", "database_to_xmlschema",
        "database_to_xml_and_xmlschema", "ts_stat", "ts_rewrite", "crosstab", "crosstab2",
        "crosstab3", "crosstab4", "connectby", "xpath_table", "xslt_process",
        # network and other databases: dblink, postgres_fdw's connections, the fdw handlers
        "dblink", "dblink_build_sql_delete", "dblink_build_sql_insert",
        "dblink_build_sql_update", "dblink_cancel_query", "dblink_close", "dblink_connect",
        "dblink_connect_u", "dblink_current_query", "dblink_disconnect", "dblink_error_message",
        "dblink_exec", "dblink_fdw_validator", "dblink_fetch", "dblink_get_connections",
        "dblink_get_notify", "dblink_get_pkey", "dblink_get_result", "dblink_is_busy",
        "dblink_open", "dblink_send_query", "postgres_fdw_get_connections",
        "postgres_fdw_disconnect", "postgres_fdw_disconnect_all", "postgres_fdw_handler",
        "postgres_fdw_validator", "file_fdw_handler", "file_fdw_validator",
        # raw pages, WAL and buffers of any table, named in a string the fence does not see as
        # a table (pageinspect, pg_walinspect, pgstattuple, pgrowlocks, pg_visibility,
        # pg_freespacemap, pg_buffercache, amcheck, old_snapshot), and the writers among them
        # (pg_surgery, pg_prewarm, pg_truncate_visibility_map)
        "get_raw_page", "page_header", "page_checksum", "heap_page_items",
        "heap_page_item_attrs", "heap_tuple_infomask_flags", "tuple_data_split",
        "fsm_page_contents", "bt_metap", "bt_page_items", "bt_page_stats",
        "brin_metapage_info", "brin_page_items", "brin_page_type", "brin_revmap_data",
        "gin_leafpage_items", "gin_metapage_info", "gin_page_opaque_info", "gist_page_items",
        "gist_page_items_bytea", "gist_page_opaque_info", "hash_bitmap_info",
        "hash_metapage_info", "hash_page_items", "hash_page_stats", "hash_page_type",
        "pg_get_wal_record_info", "pg_get_wal_records_info",
        "pg_get_wal_records_info_till_end_of_wal", "pg_get_wal_stats",
        "pg_get_wal_stats_till_end_of_wal", "pg_get_wal_block_info", "pgstattuple",
        "pgstattuple_approx", "pgstatindex", "pgstatginindex", "pgstathashindex",
        "pg_relpages", "pgrowlocks", "pg_visibility", "pg_visibility_map",
        "pg_visibility_map_summary", "pg_check_frozen", "pg_check_visible",
        "pg_truncate_visibility_map", "pg_freespace", "pg_buffercache_pages",
        "pg_buffercache_summary", "pg_buffercache_usage_counts", "pg_buffercache_evict",
        "bt_index_check", "bt_index_parent_check", "verify_heapam",
        "pg_old_snapshot_time_mapping", "heap_force_kill", "heap_force_freeze", "pg_prewarm",
        "autoprewarm_start_worker", "autoprewarm_dump_now",
        # the session's own state behind a SELECT: the random seed, statistics snapshots
        "setseed", "pg_stat_force_next_flush", "pg_stat_clear_snapshot",
    }
)  # fmt: skip
# Catalog readers (pragma_*, and dbstat / sqlite_stmt written as table-valued functions) are the
# system_catalog rule's (sqlfence/policies/tables.py). This list is what loads code, reaches
# files or processes, runs another statement's text, writes behind a SELECT, or reads raw pages:
# SQLite's own functions and modules (pragma_function_list, pragma_module_list) and those of the
# extensions the sqlite3 shell builds in (fileio, zipfile, sqlar, sha3, dbdata, completion) or
# that applications commonly load (eval, sqlean's fileio and define).
_SQLITE = frozenset(
    {
        # loading code: extensions, and FTS3 tokenizers handed over as pointers
        "load_extension", "fts3_tokenizer",
        # files and processes (fileio, sqlean's fileio, zipfile, sqlar, the shell's edit())
        "readfile", "writefile", "lsdir", "fsdir", "lsmode", "mkdir", "symlink", "edit",
        "fileio_read", "fileio_write", "fileio_append", "fileio_mkdir", "fileio_symlink",
        "fileio_mode", "fileio_ls", "fileio_scan", "zipfile", "zipfile_cds", "sqlar_compress",
        "sqlar_uncompress",
        # dynamic SQL: the text of another statement runs inside this one, or becomes a function
        "eval", "sha3_query", "define", "undefine", "define_free", "define_cache",
        # raw pages of any table (sqlite_dbpage also writes them)
        "sqlite_dbpage", "sqlite_dbdata", "sqlite_dbptr",
        # writes behind a SELECT (FTS3/4 optimize merges the index), the host's log, sleeping
        "optimize", "sqlite_log", "usleep",
        # the shell's own helpers (shell_putsnl writes to its output; none is agent SQL)
        "shell_add_schema", "shell_escape_crnl", "shell_idquote", "shell_int32",
        "shell_module_schema", "shell_putsnl",
        # a string names the table read (R*Tree integrity check), or every name of the schema
        # is listed, denied tables and columns included (the shell's completion())
        "rtreecheck", "completion",
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

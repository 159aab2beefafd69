"""Table names in policies: patterns, exact-name sets, and what the system catalog is."""

from __future__ import annotations

from fnmatch import fnmatchcase


class TableSet:
    """Table name patterns: exact names in a set, wildcard patterns matched one by one."""

    def __init__(self, patterns: tuple[tuple[str, ...], ...]) -> None:
        self.patterns = patterns
        self._exact = frozenset(".".join(p) for p in patterns if not _has_wildcard(p))
        self._wild = tuple(p for p in patterns if _has_wildcard(p))
        self._depths = frozenset(len(p) for p in patterns if not _has_wildcard(p))

    def __bool__(self) -> bool:
        return bool(self.patterns)

    def names(self, table: str) -> bool:
        """True when ``table`` is named exactly (not through a wildcard)."""
        return table in self._exact

    def matches(self, table: str, loose: bool) -> bool:
        """Does a qualified table name match? ``loose`` (deny lists) ignores a catalog part."""
        if table in self._exact:
            return True
        parts = tuple(table.split("."))
        if loose and len(parts) > 2:
            for depth in self._depths:
                if ".".join(parts[-depth:]) in self._exact:
                    return True
        return any(table_matches(pattern, parts, loose) for pattern in self._wild)


def _has_wildcard(pattern: tuple[str, ...]) -> bool:
    return any(ch in part for part in pattern for ch in "*?[")


_CATALOG_TABLES = {
    "sqlite": frozenset(
        {
            "sqlite_master",
            "sqlite_schema",
            "sqlite_temp_master",
            "sqlite_temp_schema",
            "dbstat",
            "sqlite_stmt",
            "sqlite_dbpage",
        }
    )
}
_CATALOG_SCHEMAS = {
    "postgres": frozenset({"pg_catalog", "information_schema"}),
    "iris": frozenset({"information_schema"}),
}
_CATALOG_FUNCTIONS: dict[str, tuple[str, ...]] = {
    # pragma_* and the catalog's virtual tables called as table-valued functions
    "sqlite": ("pragma_", "dbstat", "sqlite_stmt", "sqlite_dbpage", "sqlite_schema"),
    # definitions, names and privileges of every object, denied ones included
    "postgres": (
        "pg_get_",
        "to_reg",
        "obj_description",
        "col_description",
        "shobj_description",
        "has_",  # has_table_privilege, has_any_column_privilege, ... every privilege check
        "pg_has_role",
        "pg_describe_object",
        "pg_identify_object",
        # take a table's name and tell whether it exists, its size or its file
        "pg_relation_",
        "pg_total_relation_size",
        "pg_table_size",
        "pg_indexes_size",
        "pg_filenode_relation",
        "pg_partition_",
        # functions that take an object's name or oid and tell about it: sequences, heap
        # tuples, indexes, updatability, row security, statistics, cursors, prepared
        # statements, extensions and tablespaces on the server, settings' flags, types
        "pg_sequence_",
        "currtid",
        "pg_index_",
        "pg_indexam_",
        "pg_column_is_updatable",
        "pg_relation_is_updatable",
        "row_security_active",
        "pg_stat_have_stats",
        "pg_cursor",
        "pg_prepared_statement",
        "pg_prepared_xact",
        "pg_available_extension",
        "pg_extension_update_paths",
        "pg_tablespace_",
        "pg_database_size",
        "pg_settings_get_flags",
        "ts_debug",
        "format_type",
        "pg_options_to_table",
        # casts that look a name up in the catalog ('secrets'::regclass)
        "regclass",
        "regproc",
        "regoper",
        "regtype",
        "regrole",
        "regnamespace",
        "regconfig",
        "regdictionary",
        "regcollation",
    ),
}
# pg_table_is_visible, pg_type_is_visible, ...: whether a named object exists on the path
_CATALOG_FUNCTION_SUFFIXES: dict[str, tuple[str, ...]] = {"postgres": ("_is_visible",)}


_CATALOG_MARKS = (
    "sqlite_",
    "pg_",
    "information_schema",
    "%",
    "INFORMATION_SCHEMA",
    "dbstat",
    "pragma_",
)


def is_catalog_table(dialect: str, table: str) -> bool:
    """True for the system catalog's tables and views in a dialect (qualified name)."""
    if not any(mark in table for mark in _CATALOG_MARKS):
        return False  # the common case, decided without splitting the name
    schema, _, name = table.rpartition(".")
    schema = schema.rpartition(".")[2].lower()
    name = name.lower()
    if name in _CATALOG_TABLES.get(dialect, ()) or schema in _CATALOG_SCHEMAS.get(dialect, ()):
        return True
    if dialect == "postgres":
        return name.startswith("pg_")  # pg_catalog is searched first: pg_shadow means it
    if dialect == "sqlite":
        return name.startswith("pragma_")  # pragma_table_info written without arguments
    if dialect == "iris":
        return schema.startswith("%")  # %Dictionary and the other system class packages
    return False


def is_catalog_function(dialect: str, name: str) -> bool:
    """True for functions that read the system catalog in a dialect (canonical name)."""
    return name.startswith(_CATALOG_FUNCTIONS.get(dialect, ())) or name.endswith(
        _CATALOG_FUNCTION_SUFFIXES.get(dialect, ())
    )


def table_matches(pattern: tuple[str, ...], parts: tuple[str, ...], loose: bool) -> bool:
    """Does a qualified table match a pattern? ``loose`` (deny lists) ignores a catalog part."""
    if pattern == ("*", "*"):
        return True
    if len(parts) > len(pattern) and loose:
        parts = parts[-len(pattern) :]
    if len(parts) != len(pattern):
        return False
    return all(fnmatchcase(part, pat) for part, pat in zip(parts, pattern, strict=True))

"""Table names in policies: patterns, exact-name sets, and what the system catalog is."""

from __future__ import annotations

from collections.abc import Collection
from fnmatch import fnmatchcase

from sqlfence import databases


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


# Any database's catalog names hold one of these: most tables are decided without a split.
_CATALOG_MARKS = tuple(
    dict.fromkeys(mark for each in databases.PROFILES for mark in each.system_catalog.marks)
)


def is_catalog_table(dialect: str, table: str) -> bool:
    """True for the system catalog's tables and views in a dialect (qualified name)."""
    if not any(mark in table for mark in _CATALOG_MARKS):
        return False  # the common case, decided without splitting the name
    database = databases.find(dialect)
    if database is None:
        return False
    catalog = database.system_catalog
    schema, _, name = table.rpartition(".")
    schema = schema.rpartition(".")[2].lower()
    name = name.lower()
    return (
        name in catalog.tables
        or schema in catalog.schemas
        or name.startswith(catalog.table_prefixes)
        or schema.startswith(catalog.schema_prefixes)
    )


def is_statistics_table(dialect: str, table: str) -> bool:
    """True for the catalog relations that hold values or counts of every row of a table."""
    database = databases.find(dialect)
    if database is None:
        return False
    name = table.rpartition(".")[2].lower()
    catalog = database.system_catalog
    return name in catalog.statistics or name.startswith(catalog.statistics_prefixes)


def statistics_functions(dialect: str) -> frozenset[str]:
    """The functions that measure every row of a table (its size), refused as statistics."""
    database = databases.find(dialect)
    return frozenset() if database is None else database.system_catalog.statistics_functions


def is_catalog_function(dialect: str, name: str) -> bool:
    """True for functions that read the system catalog in a dialect (canonical name)."""
    database = databases.find(dialect)
    if database is None:
        return False
    catalog = database.system_catalog
    return name.startswith(catalog.function_prefixes) or name.endswith(catalog.function_suffixes)


def table_matches(pattern: tuple[str, ...], parts: tuple[str, ...], loose: bool) -> bool:
    """Does a qualified table match a pattern? ``loose`` (deny lists) ignores a catalog part."""
    if pattern == ("*", "*"):
        return True
    if len(parts) > len(pattern) and loose:
        parts = parts[-len(pattern) :]
    if len(parts) != len(pattern):
        return False
    return all(fnmatchcase(part, pat) for part, pat in zip(parts, pattern, strict=True))


def case_mismatch(pattern: tuple[str, ...], known: Collection[str]) -> str | None:
    """A known table the pattern misses only by letter case (the pattern matches none), or
    None: a policy key that names ``mixcase`` where the table is ``"MixCase"`` would filter
    or mask nothing and leave the table open."""
    names = TableSet((pattern,))
    if any(names.matches(table, True) for table in known):
        return None
    folded = TableSet((tuple(part.lower() for part in pattern),))
    return next((t for t in sorted(known) if folded.matches(t.lower(), True)), None)

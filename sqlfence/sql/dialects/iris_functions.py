"""Routines callable from IRIS SQL that reach outside SQL; docs/iris-functions.md says why.

Names are compared lower case, as `procedure_name` returns them (schema-qualified when the
statement qualifies them). Besides the listed names, every routine in a `%` schema
(`%SYSTEM.*`, `%SYS.*`, `%Library.*`, ...: InterSystems system classes projected as stored
procedures), every `$SYSTEM.*` call and every `##class(...)` call is denied: they run
ObjectScript that no table privilege covers.
"""

from __future__ import annotations

IRIS_DENIED_FUNCTIONS: frozenset[str] = frozenset(
    {
        # ObjectScript reached from SQL
        "##class",
        "$system",
        "$xecute",
        "$zf",
        "$zu",
        "$zutil",
        # globals read or written directly, past table privileges
        "$data",
        "$get",
        "$increment",
        "$order",
        "$query",
        # files and the network
        "$zsearch",
        "%library.file_drivelist",
        "%library.file_fileset",
        "%system.inetinfo_localhostname",
        "%sys.globalquery_databyref",
        "embedding",
        # process and system settings
        "%system_sql.util_setoption",
    }
)
"""Denied routine names, lower case."""

IRIS_DENIED_PREFIXES: tuple[str, ...] = ("##class(", "$system.")
"""Lower-case prefixes of denied routine names: ObjectScript class calls."""


def is_denied_function(name: str) -> bool:
    """Whether a routine name (as `procedure_name` returns it) reaches outside SQL.

    True for the names in `IRIS_DENIED_FUNCTIONS`, names starting with one of
    `IRIS_DENIED_PREFIXES`, and schema-qualified names whose schema starts with `%`.
    Unqualified `%` functions (`%EXACT`, `%SQLUPPER`) are SQL built-ins and pass.
    """
    lowered = name.lower()
    if lowered in IRIS_DENIED_FUNCTIONS or lowered.startswith(IRIS_DENIED_PREFIXES):
        return True
    return lowered.startswith("%") and "." in lowered

"""Routines callable from IRIS SQL that reach outside SQL; documented in docs/iris-functions.md."""

from __future__ import annotations

IRIS_DENIED_FUNCTIONS: frozenset[str] = frozenset({"##class"})


def is_denied_function(name: str) -> bool:
    """Whether a routine name (as `procedure_name` returns it) is on the IRIS deny list."""
    return name.lower() in IRIS_DENIED_FUNCTIONS

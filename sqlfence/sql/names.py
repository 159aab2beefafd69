"""Identifiers as the database compares them: normalised per dialect, qualified by schema."""

from __future__ import annotations

import string

from sqlglot import exp
from sqlglot.dialects.dialect import Dialect, NormalizationStrategy

_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)
_ASCII_UPPER = str.maketrans(string.ascii_lowercase, string.ascii_uppercase)


class Namer:
    """Normalises identifiers the way the dialect does and qualifies names with a schema."""

    def __init__(self, dialect: Dialect, default_schema: str | None) -> None:
        strategy = dialect.normalization_strategy
        self._lower = strategy in (
            NormalizationStrategy.LOWERCASE,
            NormalizationStrategy.CASE_INSENSITIVE,
        )
        self._upper = strategy in (
            NormalizationStrategy.UPPERCASE,
            NormalizationStrategy.CASE_INSENSITIVE_UPPERCASE,
        )
        self._always = strategy in (
            NormalizationStrategy.CASE_INSENSITIVE,
            NormalizationStrategy.CASE_INSENSITIVE_UPPERCASE,
        )
        self.default_schema = self.normalize(default_schema) if default_schema else None
        self.dialect_name = type(dialect).__name__.lower()
        # PostgreSQL searches pg_catalog before the search path: pg_authid is pg_catalog's.
        self._catalog_first = self.dialect_name == "postgres"
        # PostgreSQL's catalog part can only be the current database (anything else is an
        # error), so `db.public.t` is `public.t`: the same name for views and policies.
        self._drop_catalog = self.dialect_name == "postgres"

    def normalize(self, name: str, quoted: bool = False) -> str:
        """The identifier as the database compares it.

        Databases fold ASCII letters only (PostgreSQL and SQLite in UTF-8): Python's own
        lower() would also fold the Kelvin sign to ``k`` and so read another table's name.
        """
        if quoted and not self._always:
            return name
        if self._lower:
            return name.lower() if name.isascii() else name.translate(_ASCII_LOWER)
        if self._upper:
            return name.upper() if name.isascii() else name.translate(_ASCII_UPPER)
        return name

    def identifier(self, node: exp.Expr | None) -> str | None:
        """The normalised text of an identifier node (None when absent)."""
        if node is None:
            return None
        if isinstance(node, exp.Identifier):
            return self.normalize(node.this, bool(node.args.get("quoted")))
        return self.normalize(node.name)

    def table(self, table: exp.Table) -> str:
        """``schema.name`` (or ``catalog.schema.name``), qualified with the default schema."""
        args = table.args
        name = self.identifier(args.get("this")) or ""
        db = args.get("db")
        if db is not None:
            schema = self.identifier(db)
        elif self._catalog_first and name.startswith("pg_"):
            schema = "pg_catalog"
        else:
            schema = self.default_schema
        catalog = args.get("catalog")
        if catalog is not None and not self._drop_catalog:
            return ".".join(p for p in (self.identifier(catalog), schema, name) if p)
        return f"{schema}.{name}" if schema else name

    def qualify(self, dotted: str) -> tuple[str, ...]:
        """A policy name such as ``Orders`` or ``sales.*`` -> normalised, qualified parts."""
        parts = [p.strip() for p in dotted.split(".")]
        # A quoted part compares as the database compares a quoted identifier: as written on
        # PostgreSQL, case-insensitively on SQLite (whose quotes do not make names exact).
        normal = tuple(
            self.normalize(p[1:-1], quoted=True) if len(p) > 1 and p[0] == p[-1] == '"'
            else self.normalize(p)
            for p in parts
        )  # fmt: skip
        if len(normal) == 1 and self.default_schema:
            return (self.default_schema, *normal)
        return normal

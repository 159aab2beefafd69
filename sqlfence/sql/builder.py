"""The facts of one tree while they are collected, and the hook dialects add to them with."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlglot import exp

from sqlfence.sql.names import Namer


@dataclass
class FactsBuilder:
    """Mutable sets the walk fills; ``analysis`` freezes them into ``StatementFacts``."""

    tables: set[str] = field(default_factory=set)
    written: set[str] = field(default_factory=set)
    columns: set[tuple[str | None, str]] = field(default_factory=set)
    star_tables: set[str] = field(default_factory=set)
    functions: set[str] = field(default_factory=set)
    bound_functions: set[str] = field(default_factory=set)
    unresolved: list[str] = field(default_factory=list)
    ctes: set[str] = field(default_factory=set)
    types: set[str] = field(default_factory=set)
    extra: dict[str, object] = field(default_factory=dict)
    tables_seen: set[int] = field(default_factory=set)
    writes: bool = False
    is_ddl: bool = False
    into: bool = False
    locks: bool = False
    unparsed: str | None = None


class FactHook:
    """Dialect-specific fact collection (IRIS arrows, procedure names); default: nothing."""

    def collect(self, tree: exp.Expr, namer: Namer, facts: FactsBuilder) -> None:
        """Add to ``facts`` what the generic walk cannot know."""

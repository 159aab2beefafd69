"""IRIS facts the generic walk cannot see: tables reached by ``->`` and procedures CALLed.

An arrow (``Company->Name``) reads another table without naming it in FROM. With a catalog
(``Schema.Table.Column -> Schema.Table``) the reached table joins the statement's tables and
the table rules judge it; without one the arrow is reported as unresolved, and a policy with
table rules denies the statement (fail closed).
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlglot import exp

from sqlfence.sql.builder import FactHook, FactsBuilder
from sqlfence.sql.dialects.iris import Call, implicit_join_targets, procedure_name
from sqlfence.sql.names import Namer


class ImplicitJoinFacts(FactHook):
    """Adds arrow targets to the tables, unknown arrows to ``unresolved``, CALLs to functions."""

    def __init__(self, catalog: Mapping[str, str], default_schema: str) -> None:
        self._catalog = dict(catalog)
        self._default_schema = default_schema

    def collect(self, tree: exp.Expr, namer: Namer, facts: FactsBuilder) -> None:
        targets, unknown = implicit_join_targets(tree, self._catalog, self._default_schema)
        for schema, table in targets:
            facts.tables.add(f"{namer.normalize(schema)}.{namer.normalize(table)}")
        facts.unresolved.extend(unknown)
        for call in tree.find_all(Call):
            name = procedure_name(call)
            if name:
                facts.functions.add(name.lower())

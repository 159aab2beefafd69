"""Column facts: the columns a statement names, and the tables whose every column it reads.

Runs after the tables are known (aliases resolve to them). Each distinct reference is
resolved once: a thousand ``u.id`` over a thousand arms aliased ``u``, or a thousand NATURAL
JOINs, cost a thousand set operations, not a million.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from sqlglot import exp

from sqlfence.sql.builder import FactsBuilder
from sqlfence.sql.names import Namer

# Functions and types that take a whole row, which PostgreSQL lets a query write as u.f
# (functional notation); "name" is left out (it is far more often a column).
ROW_FUNCTIONS = frozenset(
    {
        "row_to_json", "to_json", "to_jsonb", "json_build_array", "jsonb_build_array",
        "json_build_object", "jsonb_build_object", "concat", "concat_ws", "json_agg",
        "jsonb_agg", "array_agg", "string_agg", "quote_literal", "quote_nullable", "hstore",
        "format", "text", "varchar", "bpchar", "char", "json", "jsonb", "xml", "citext",
        "textanycat", "anytextcat", "to_tsvector", "row", "record_out", "record_send", "md5",
        "num_nulls", "num_nonnulls", "pg_column_size", "hashtext", "row_to_jsonb",
    }
)  # fmt: skip


def collect_columns(
    namer: Namer,
    aliases: Mapping[str, set[str]],
    owners: Mapping[int, set[str]],
    columns: Iterable[exp.Column],
    listed: Iterable[exp.Expr],
    stars: Iterable[exp.Expr],
    out: FactsBuilder,
) -> None:
    """Add to ``out`` the columns of Column nodes, of INSERT lists and JOIN ... USING
    (``listed``), and the tables read whole by ``*`` (``aliases``: alias -> tables; ``owners``:
    id of a SELECT -> the tables it reads directly)."""
    reads = _ColumnReads(namer, aliases, out)
    for column in columns:
        reads.column(column)
    for node in listed:
        reads.listed(node)
    for star in stars:
        reads.star(star, owners)
    if reads.every_table:
        out.star_tables |= out.tables


class _ColumnReads:
    def __init__(self, namer: Namer, aliases: Mapping[str, set[str]], out: FactsBuilder) -> None:
        self.namer = namer
        self.aliases = aliases
        self.out = out
        self.every_table = False  # something read every column of every table
        self._postgres = namer.dialect_name == "postgres"
        self._whole = set[object]()  # what was already added to star_tables
        self._pairs = set[tuple[str, str]]()  # (qualifier, column) already resolved

    def _read_whole(self, key: object, tables: set[str]) -> None:
        if key not in self._whole:
            self._whole.add(key)
            self.out.star_tables |= tables

    def column(self, column: exp.Column) -> None:
        namer, out = self.namer, self.out
        if isinstance(column.this, exp.Star):
            owner = namer.identifier(column.args.get("table"))
            tables = self.aliases.get(owner or "")
            if tables is None:
                self.every_table = True
            else:
                self._read_whole(("alias", owner), tables)
            return
        name = namer.identifier(column.this)
        if not name:
            return
        qualifier = column.args.get("table")
        if qualifier is None:
            whole_row = self.aliases.get(name)
            if whole_row:  # PostgreSQL: `SELECT u FROM users u`, row_to_json(u), (u).col
                self._read_whole(("alias", name), whole_row)
            out.columns.add((None, name))
            return
        key = namer.identifier(qualifier) or ""
        if (key, name) in self._pairs:
            return
        self._pairs.add((key, name))
        owners = self.aliases.get(key)
        if not owners:
            out.columns.add((None, name))
            return
        if name in ROW_FUNCTIONS and self._postgres:
            # PostgreSQL reads u.f as f(u) when u has no column f: row_to_json, a cast to text...
            self._read_whole(("alias", key), owners)
        for owner in owners:
            out.columns.add((owner, name))

    def listed(self, node: exp.Expr) -> None:
        """Columns named as identifiers, not Column nodes: INSERT lists and JOIN ... USING."""
        namer, out = self.namer, self.out
        if isinstance(node, exp.Join):
            if str(node.args.get("method") or "").upper() == "NATURAL":
                self.every_table = True  # joins on every same-named column, unnamed
            for identifier in node.args.get("using") or ():
                name = namer.identifier(identifier)
                if name:
                    out.columns.add((None, name))
            return
        target = node.this
        table = target.this if isinstance(target, exp.Schema) else target
        if not isinstance(table, exp.Table) or not isinstance(table.this, exp.Identifier):
            return
        name = namer.table(table)
        if isinstance(target, exp.Schema) and target.expressions:
            for column in target.expressions:
                column_name = namer.identifier(column)
                if column_name:
                    out.columns.add((name, column_name))
        else:
            out.star_tables.add(name)  # no column list: every column is written

    def star(self, star: exp.Expr, owners: Mapping[int, set[str]]) -> None:
        """``*`` reads every column of its own SELECT's sources (or of a DML target's row)."""
        parent = star.parent
        if isinstance(parent, exp.Select):
            tables = owners.get(id(parent))
            if tables:
                self._read_whole(("select", id(parent)), tables)
        elif isinstance(parent, exp.Returning):
            out = self.out
            self._read_whole("returning", out.written or out.tables)

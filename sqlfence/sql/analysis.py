"""What a statement is: sqlglot tokens and tree -> ``StatementFacts``. Pure functions, no policy.

Facts come from the whole tree, never from the first keyword: every table in CTE bodies,
subqueries, UNION arms, LATERAL and DML inside CTEs; every function; every write. One pass
over the tree collects them all.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import sqlglot
from sqlglot import exp
from sqlglot.dialects.dialect import Dialect, NormalizationStrategy
from sqlglot.errors import SqlglotError
from sqlglot.tokenizer_core import Token, TokenType

from sqlfence.sql.functions import function_name

# Statement kinds by root node class. Anything else is named by the node's key.
_OPERATIONS: dict[type[exp.Expr], str] = {
    exp.Select: "select",
    exp.Union: "select",
    exp.Intersect: "select",
    exp.Except: "select",
    exp.Values: "select",
    exp.Subquery: "select",
    exp.Insert: "insert",
    exp.Update: "update",
    exp.Delete: "delete",
    exp.Merge: "merge",
    exp.Create: "create",
    exp.Drop: "drop",
    exp.Alter: "alter",
    exp.TruncateTable: "truncate",
    exp.Transaction: "transaction",
    exp.Commit: "transaction",
    exp.Rollback: "transaction",
}

# Nodes that change data, schema, session or server state wherever they sit in the tree.
WRITE_NODES: tuple[type[exp.Expression], ...] = (
    exp.Insert,
    exp.Update,
    exp.Delete,
    exp.Merge,
    exp.Create,
    exp.Drop,
    exp.Alter,
    exp.TruncateTable,
    exp.Into,
    exp.Copy,
    exp.Grant,
    exp.Revoke,
    exp.Attach,
    exp.Detach,
    exp.Pragma,
    exp.Set,
    exp.Command,
    exp.Transaction,
    exp.Commit,
    exp.Rollback,
)
_DDL_NODES = (exp.Create, exp.Drop, exp.Alter, exp.TruncateTable)
_DML_TARGET_NODES = (exp.Insert, exp.Update, exp.Delete, exp.Merge, *_DDL_NODES, exp.Into)
_TARGET_ARGS = frozenset({"this", "expressions", "tables"})
_STATEMENT_NODES = (
    exp.Select,
    exp.Insert,
    exp.Update,
    exp.Delete,
    exp.Merge,
    *_DDL_NODES,
)
_LITERAL_TOKENS = frozenset(
    {
        TokenType.NUMBER,
        TokenType.STRING,
        TokenType.NATIONAL_STRING,
        TokenType.BIT_STRING,
        TokenType.HEX_STRING,
        TokenType.BYTE_STRING,
        TokenType.HEREDOC_STRING,
        TokenType.RAW_STRING,
        TokenType.PLACEHOLDER,
        TokenType.PARAMETER,
    }
)
_SUMMARY_MAX = 255
# Roots that are expressions, not statements: sqlglot accepts "x + 1" on its own, a database won't.
_NOT_STATEMENTS = (exp.Condition, exp.Identifier, exp.Table)


@dataclass(frozen=True)
class StatementFacts:
    """Everything the policy engine may judge a statement by. Table names are qualified."""

    operation: str
    operations: tuple[str, ...] = ()
    tables: frozenset[str] = frozenset()
    written: frozenset[str] = frozenset()
    columns: frozenset[tuple[str | None, str]] = frozenset()
    star_tables: frozenset[str] = frozenset()
    functions: frozenset[str] = frozenset()
    writes: bool = False
    is_ddl: bool = False
    into: bool = False
    locks: bool = False
    statement_count: int = 1
    summary: str = ""
    fingerprint: str = ""
    unparsed: str | None = None
    # Names that could not be resolved to a table without the catalog (IRIS ``->``).
    unresolved: tuple[str, ...] = ()
    extra: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class Analysis:
    """A parsed statement (or several) with its tokens and facts."""

    sql: str
    dialect: Dialect
    tokens: tuple[Token, ...]
    trees: tuple[exp.Expr, ...]
    facts: StatementFacts


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

    def normalize(self, name: str, quoted: bool = False) -> str:
        """The identifier as the database compares it."""
        if quoted and not self._always:
            return name
        if self._lower:
            return name.lower()
        if self._upper:
            return name.upper()
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
        name = self.identifier(table.this) or ""
        schema = self.identifier(table.args.get("db")) or self.default_schema
        catalog = self.identifier(table.args.get("catalog"))
        parts = [p for p in (catalog, schema, name) if p]
        return ".".join(parts)

    def qualify(self, dotted: str) -> tuple[str, ...]:
        """A policy name such as ``Orders`` or ``sales.*`` -> normalised, qualified parts."""
        parts = [p.strip() for p in dotted.split(".")]
        normal = tuple(
            p[1:-1] if len(p) > 1 and p[0] == p[-1] == '"' else self.normalize(p) for p in parts
        )
        if len(normal) == 1 and self.default_schema:
            return (self.default_schema, *normal)
        return normal


def parse(sql: str, dialect: Dialect) -> tuple[tuple[Token, ...], tuple[exp.Expr | None, ...]]:
    """Tokenize once and parse those tokens. Raises sqlglot's errors."""
    tokens = dialect.tokenize(sql)
    trees = dialect.parser().parse(tokens, sql)
    return tuple(tokens), tuple(trees)


def analyze(
    sql: str,
    dialect: Dialect,
    namer: Namer,
    hooks: tuple[FactHook, ...] = (),
) -> Analysis:
    """Parse ``sql`` and collect its facts; never raises for bad SQL (``facts.unparsed``)."""
    try:
        tokens, parsed = parse(sql, dialect)
    except SqlglotError as error:
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        facts = StatementFacts(operation="unparsed", unparsed=f"cannot parse: {message}")
        return Analysis(sql, dialect, (), (), facts)
    fingerprint = fingerprint_tokens(tokens)
    trees = tuple(tree for tree in parsed if tree is not None)
    if not trees:
        facts = StatementFacts(
            operation="empty", unparsed="no statement (empty or comments only)", statement_count=0
        )
        return Analysis(sql, dialect, tokens, (), facts)
    collected = [_collect(tree, namer, hooks) for tree in trees]
    facts = collected[0] if len(collected) == 1 else _merge(collected)
    facts = replace(facts, fingerprint=fingerprint, statement_count=len(trees))
    return Analysis(sql, dialect, tokens, trees, facts)


class FactHook:
    """Dialect-specific fact collection (IRIS arrows, procedure names); default: nothing."""

    def collect(self, tree: exp.Expr, namer: Namer, facts: _Builder) -> None:
        """Add to ``facts`` what the generic walk cannot know."""


@dataclass
class _Builder:
    tables: set[str] = field(default_factory=set)
    written: set[str] = field(default_factory=set)
    columns: set[tuple[str | None, str]] = field(default_factory=set)
    star_tables: set[str] = field(default_factory=set)
    functions: set[str] = field(default_factory=set)
    summary: list[str] = field(default_factory=list)
    unresolved: list[str] = field(default_factory=list)
    extra: dict[str, object] = field(default_factory=dict)
    writes: bool = False
    is_ddl: bool = False
    into: bool = False
    locks: bool = False
    unparsed: str | None = None


def _collect(tree: exp.Expr, namer: Namer, hooks: tuple[FactHook, ...]) -> StatementFacts:
    out = _Builder()
    aliases: dict[str, set[str]] = {}
    column_nodes: list[exp.Column] = []
    star_selects: list[exp.Select] = []
    last_keyword = ""
    for node in tree.walk(bfs=False):
        kind = type(node)
        if kind is exp.Table:
            assert isinstance(node, exp.Table)
            if not isinstance(node.this, exp.Identifier) or _is_cte_reference(node, namer):
                continue
            name = namer.table(node)
            out.tables.add(name)
            alias = node.alias
            key = namer.normalize(alias) if alias else namer.identifier(node.this)
            if key:
                aliases.setdefault(key, set()).add(name)
            if _is_write_target(node):
                out.written.add(name)
            if len(out.summary) < 32 and node.name not in out.summary[-1:]:
                out.summary.append(node.name)
        elif kind is exp.Column:
            column_nodes.append(node)  # type: ignore[arg-type]
        elif kind is exp.Star:
            parent = node.parent
            if isinstance(parent, exp.Select):
                star_selects.append(parent)
        elif isinstance(node, exp.Func):
            out.functions.add(function_name(node))
        elif kind is exp.Insert:
            _add_insert_columns(node, namer, out)
        if isinstance(node, WRITE_NODES):
            out.writes = True
            if isinstance(node, _DDL_NODES):
                out.is_ddl = True
            elif kind is exp.Into:
                out.into = True
            elif kind is exp.Command and out.unparsed is None:
                out.unparsed = _command_reason(node)
        if kind is exp.Lock:
            out.locks = True
        if isinstance(node, _STATEMENT_NODES):
            keyword = _OPERATIONS[type(node)].upper()
            if keyword != last_keyword:
                out.summary.append(keyword)
                last_keyword = keyword
    for column in column_nodes:
        _add_column(column, namer, aliases, out)
    if star_selects:
        out.star_tables |= out.tables
    for hook in hooks:
        hook.collect(tree, namer, out)
    operation = _operation(tree)
    if isinstance(tree, _NOT_STATEMENTS) and out.unparsed is None:
        out.unparsed = f"not a statement but a bare {tree.key} expression"
    summary = " ".join(out.summary)[:_SUMMARY_MAX] or operation.upper()
    return StatementFacts(
        operation=operation,
        operations=(operation,),
        tables=frozenset(out.tables),
        written=frozenset(out.written),
        columns=frozenset(out.columns),
        star_tables=frozenset(out.star_tables),
        functions=frozenset(out.functions),
        writes=out.writes,
        is_ddl=out.is_ddl,
        into=out.into,
        locks=out.locks,
        summary=summary,
        unparsed=out.unparsed,
        unresolved=tuple(out.unresolved),
        extra=out.extra,
    )


def _operation(tree: exp.Expr) -> str:
    operation = _OPERATIONS.get(type(tree))
    if operation is not None:
        return operation
    if isinstance(tree, exp.Command):
        return "command"
    return tree.key


def _command_reason(node: exp.Expr) -> str:
    head = str(node.this or "").strip().upper() or "statement"
    return f"{head} is not understood by the parser (raw command)"


def _add_column(
    column: exp.Column, namer: Namer, aliases: dict[str, set[str]], out: _Builder
) -> None:
    if isinstance(column.this, exp.Star):
        owner = namer.identifier(column.args.get("table"))
        out.star_tables |= aliases.get(owner or "", out.tables)
        return
    name = namer.identifier(column.this)
    if not name:
        return
    qualifier = column.args.get("table")
    if qualifier is None:
        out.columns.add((None, name))
        return
    owners = aliases.get(namer.identifier(qualifier) or "")
    if not owners:
        out.columns.add((None, name))
        return
    for owner in owners:
        out.columns.add((owner, name))


def _add_insert_columns(node: exp.Expr, namer: Namer, out: _Builder) -> None:
    """INSERT names its columns as identifiers, not Column nodes; no list means every column."""
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
        out.star_tables.add(name)


def _is_write_target(table: exp.Table) -> bool:
    child: exp.Expr = table
    node = table.parent
    while isinstance(node, exp.Schema):
        child, node = node, node.parent
    return isinstance(node, _DML_TARGET_NODES) and child.arg_key in _TARGET_ARGS


def _is_cte_reference(table: exp.Table, namer: Namer) -> bool:
    """True when an unqualified table name resolves to a CTE visible at that point."""
    if table.args.get("db") is not None or table.args.get("catalog") is not None:
        return False
    name = namer.identifier(table.this)
    child: exp.Expr = table
    node = table.parent
    while node is not None:
        if isinstance(node, exp.With):
            ctes = node.expressions
            position = next((i for i, cte in enumerate(ctes) if cte is child), len(ctes))
            visible = ctes[: position + 1] if node.args.get("recursive") else ctes[:position]
            if any(namer.normalize(cte.alias) == name for cte in visible):
                return True
        else:
            with_ = node.args.get("with_")
            if (
                isinstance(with_, exp.With)
                and with_ is not child
                and any(namer.normalize(cte.alias) == name for cte in with_.expressions)
            ):
                return True
        child, node = node, node.parent
    return False


def fingerprint_tokens(tokens: tuple[Token, ...] | list[Token]) -> str:
    """A short digest of the statement's shape: literals and parameters become ``?``.

    Lists of literals collapse (``IN (1, 2, 3)`` and ``IN (4)`` share a fingerprint), and the
    case of keywords and unquoted names does not matter.
    """
    parts: list[str] = []
    for token in tokens:
        if token.token_type in _LITERAL_TOKENS:
            if len(parts) >= 2 and parts[-1] == "," and parts[-2] == "?":
                parts.pop()
                continue
            parts.append("?")
        elif token.token_type is TokenType.SEMICOLON:
            continue
        elif token.token_type in (TokenType.VAR, TokenType.IDENTIFIER):
            parts.append(token.text)
        else:
            parts.append(token.text.upper())
    return hashlib.blake2b(" ".join(parts).encode(), digest_size=8).hexdigest()


def fingerprint(sql: str, dialect: str | Dialect) -> str:
    """The fingerprint of ``sql`` (see ``fingerprint_tokens``); raises on untokenizable text."""
    return fingerprint_tokens(Dialect.get_or_raise(dialect).tokenize(sql))


def _merge(parts: list[StatementFacts]) -> StatementFacts:
    return StatementFacts(
        operation=parts[0].operation,
        operations=tuple(op for p in parts for op in p.operations),
        tables=frozenset().union(*(p.tables for p in parts)),
        written=frozenset().union(*(p.written for p in parts)),
        columns=frozenset().union(*(p.columns for p in parts)),
        star_tables=frozenset().union(*(p.star_tables for p in parts)),
        functions=frozenset().union(*(p.functions for p in parts)),
        writes=any(p.writes for p in parts),
        is_ddl=any(p.is_ddl for p in parts),
        into=any(p.into for p in parts),
        locks=any(p.locks for p in parts),
        summary="; ".join(p.summary for p in parts)[:_SUMMARY_MAX],
        unparsed=next((p.unparsed for p in parts if p.unparsed), None),
        unresolved=tuple(u for p in parts for u in p.unresolved),
        extra={k: v for p in parts for k, v in p.extra.items()},
    )


def operations_of(sql: str, dialect: str) -> list[str]:
    """The statement kinds in ``sql``; a convenience for tests and the CLI."""
    return [_operation(tree) for tree in sqlglot.parse(sql, read=dialect) if tree is not None]

"""What a statement is: sqlglot tokens and tree -> ``StatementFacts``. Pure functions, no policy.

Facts come from the whole tree, never from the first keyword: every table in CTE bodies,
subqueries, UNION arms, LATERAL and DML inside CTEs; every function; every write. One pass
over the tree collects them all.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.tokenizer_core import Token

from sqlfence.sql import sqlite_lexing, sqlite_reading
from sqlfence.sql.builder import FactHook, FactsBuilder
from sqlfence.sql.columns import collect_columns
from sqlfence.sql.fingerprint import fingerprint_tokens
from sqlfence.sql.functions import function_name
from sqlfence.sql.names import Namer
from sqlfence.sql.parse_errors import describe
from sqlfence.sql.quiet import quiet_sqlglot
from sqlfence.sql.row_bounds import ROW_BOUND_FUNCTIONS, nearest, split_row_bound
from sqlfence.sql.scopes import CteScopes, cte_name

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
    exp.Execute: "call",  # CALL / EXECUTE of a stored procedure (IRIS parses CALL to it)
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
    exp.Execute,  # a procedure may do anything
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
_SUMMARY_MAX = 255
# Roots that are expressions, not statements: sqlglot accepts "x + 1" on its own, a database won't.
_NOT_STATEMENTS = (exp.Condition, exp.Identifier, exp.Table, exp.Alias, exp.Tuple, exp.Star)


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
    # Arithmetic functions used only to bound a row count (LIMIT/FETCH/TOP), as the fence's
    # own row limit does: deny lists see them, a function allow list does not.
    bound_functions: frozenset[str] = frozenset()
    writes: bool = False
    is_ddl: bool = False
    into: bool = False
    locks: bool = False
    statement_count: int = 1
    summary: str = ""
    unparsed: str | None = None
    # Names the statement defines as CTEs (normalised): the engine may report reads of them.
    ctes: frozenset[str] = frozenset()
    # User-defined types cast to (qualified): a table's row type names the table.
    types: frozenset[str] = frozenset()
    # Names that could not be resolved to a table without the catalog (IRIS ``->``).
    unresolved: tuple[str, ...] = ()
    extra: Mapping[str, object] = field(default_factory=dict)
    source_tokens: tuple[Token, ...] = field(default=(), repr=False, compare=False)
    # The text and dialect to tokenize when no tokens were kept (dialects that parse themselves).
    source: tuple[str, Dialect] | None = field(default=None, repr=False, compare=False)

    @property
    def fingerprint(self) -> str:
        """The statement's shape (literals normalised), computed on first use and kept."""
        cached: str | None = self.__dict__.get("_fingerprint")
        if cached is None:
            if self.source_tokens:
                cached = fingerprint_tokens(self.source_tokens)
            elif self.source is not None:
                cached = fingerprint_tokens(tokenize(*self.source))
            else:
                cached = ""
            object.__setattr__(self, "_fingerprint", cached)
            object.__setattr__(self, "source_tokens", ())
            object.__setattr__(self, "source", None)
        return cached

    def keep_text_only(self) -> None:
        """Let the tokens go (about 250 bytes each): a fingerprint asked for later tokenizes
        the text again. For facts that are kept, as the decision cache keeps them."""
        if self.source_tokens:
            object.__setattr__(self, "source_tokens", ())

    def __getstate__(self) -> dict[str, object]:
        state = dict(self.__dict__)
        state["_fingerprint"] = self.fingerprint  # tokens do not pickle; their digest does
        state["source_tokens"] = ()
        state["source"] = None
        return state


@dataclass(frozen=True)
class Analysis:
    """A parsed statement (or several) with its tokens and facts."""

    sql: str
    dialect: Dialect
    tokens: tuple[Token, ...]
    trees: tuple[exp.Expr, ...]
    facts: StatementFacts


_machinery = threading.local()
_MACHINERY_LIMIT = 16


def parse(sql: str, dialect: Dialect) -> tuple[tuple[Token, ...], tuple[exp.Expr | None, ...]]:
    """Tokenize once and parse those tokens. Raises sqlglot's errors.

    The tokenizer and parser are reused per thread (building them costs as much as a third of
    a parse). A dialect that post-processes its trees in ``Dialect.parse`` (IRIS) is asked to
    parse the text itself, and no tokens are returned.
    """
    if type(dialect).parse is not Dialect.parse:
        return (), tuple(dialect.parse(sql))
    _, tokenizer, parser = _machinery_of(dialect)
    tokens = tokenizer.tokenize(sql)
    return tuple(tokens), tuple(parser.parse(tokens, sql))


def tokenize(sql: str, dialect: Dialect) -> list[Token]:
    """``sql`` as the dialect's tokens (with this thread's tokenizer). Raises sqlglot's errors."""
    tokens: list[Token] = _machinery_of(dialect)[1].tokenize(sql)
    return tokens


def _machinery_of(dialect: Dialect) -> tuple[Dialect, Any, Any]:
    """This thread's (dialect, tokenizer, parser) for ``dialect``."""
    cache: dict[int, tuple[Dialect, Any, Any]] = _machinery.__dict__.setdefault("by_dialect", {})
    entry = cache.get(id(dialect))
    if entry is None or entry[0] is not dialect:
        if len(cache) >= _MACHINERY_LIMIT:
            cache.clear()  # dialects made on the fly: keep the cache from growing without end
        entry = (dialect, dialect.tokenizer(), dialect.parser())
        cache[id(dialect)] = entry
    return entry


def analyze(
    sql: str,
    dialect: Dialect,
    namer: Namer,
    hooks: tuple[FactHook, ...] = (),
    columns: bool = True,
) -> Analysis:
    """Parse ``sql`` and collect its facts; never raises for bad SQL (``facts.unparsed``).

    ``columns=False`` skips column facts (and ``*`` tables) when no rule needs them.
    """
    text = sqlite_lexing.parseable(sql) if namer.dialect_name == "sqlite" else sql
    try:
        with quiet_sqlglot():
            tokens, parsed = parse(text, dialect)
    except Exception as error:  # fail closed: sqlglot also raises TypeError, RecursionError
        return _not_understood(sql, dialect, "cannot parse", error)
    refused = sqlite_lexing.misreading(sql, tokens) if namer.dialect_name == "sqlite" else None
    if refused is not None:
        return Analysis(
            sql, dialect, (), (), StatementFacts(operation="unparsed", unparsed=refused)
        )
    # A comment after the last ";" comes back as an empty Semicolon tree: not a statement.
    trees = tuple(t for t in parsed if t is not None and not isinstance(t, exp.Semicolon))
    if namer.dialect_name == "sqlite":
        trees = tuple(sqlite_reading.with_sqlite_readings(tree) for tree in trees)
    if not trees:
        facts = StatementFacts(
            operation="empty",
            unparsed="no statement (empty or comments only)",
            statement_count=0,
            source_tokens=tokens,
            source=(text, dialect),
        )
        return Analysis(sql, dialect, tokens, (), facts)
    try:
        collected = [_collect(tree, namer, hooks, columns) for tree in trees]
    except Exception as error:  # a tree shape the walk did not expect: deny
        return _not_understood(sql, dialect, "cannot analyse", error)
    facts = collected[0] if len(collected) == 1 else _merge(collected)
    object.__setattr__(facts, "statement_count", len(trees))
    object.__setattr__(facts, "source_tokens", tokens)
    object.__setattr__(facts, "source", (text, dialect))  # what the tokens were read from
    return Analysis(sql, dialect, tokens, trees, facts)


def _not_understood(sql: str, dialect: Dialect, what: str, error: Exception) -> Analysis:
    facts = StatementFacts(operation="unparsed", unparsed=f"{what}: {describe(error)}")
    return Analysis(sql, dialect, (), (), facts)


_TABLE, _COLUMN, _STAR, _FUNC, _COLUMN_LIST, _WRITE, _DDL, _INTO, _COMMAND, _LOCK = (
    1 << bit for bit in range(10)
)
_STATEMENT, _WITH, _BOUND, _OID = 1 << 10, 1 << 11, 1 << 12, 1 << 13
# sqlglot models these as functions; to a policy they are syntax, not functions to allow.
# What a row bound may compute with (the fence's own bound of a LIMIT parameter uses them).
_SYNTAX_FUNCS = (exp.Connector, exp.Xor, exp.Case, exp.If, exp.Cast, exp.TryCast, exp.Exists)
_FLAGS: dict[type[exp.Expr], int] = {}
_LEAVES = frozenset({exp.Identifier, exp.Literal})  # nothing below them to collect


def _flags_of(cls: type[exp.Expr]) -> int:
    """What the walk must do with nodes of a class; computed once per class."""
    flags = 0
    if cls is exp.Table:
        flags |= _TABLE
    elif cls is exp.Column:
        flags |= _COLUMN
    elif cls is exp.Star:
        flags |= _STAR
    elif issubclass(cls, exp.Func) and not issubclass(cls, _SYNTAX_FUNCS):
        flags |= _FUNC
    if cls is exp.Insert or cls is exp.Join:
        flags |= _COLUMN_LIST
    if issubclass(cls, WRITE_NODES):
        flags |= _WRITE
        if issubclass(cls, _DDL_NODES):
            flags |= _DDL
        elif cls is exp.Into:
            flags |= _INTO
        elif cls is exp.Command:
            flags |= _COMMAND
    if cls is exp.Lock:
        flags |= _LOCK
    if cls is exp.ObjectIdentifier or cls is exp.DataType:
        flags |= _OID
    if cls is exp.Limit or cls is exp.Fetch:
        flags |= _BOUND
    if issubclass(cls, _STATEMENT_NODES):
        flags |= _STATEMENT
    if cls is exp.With:
        flags |= _WITH
    _FLAGS[cls] = flags
    return flags


def _collect(
    tree: exp.Expr, namer: Namer, hooks: tuple[FactHook, ...], columns: bool
) -> StatementFacts:
    out = FactsBuilder()
    flags_of = _FLAGS.get
    events: list[exp.Expr | str] = []  # tables and statement keywords in tree order
    operations: list[str] = [_operation(tree)]
    table_nodes: list[exp.Table] = []
    column_nodes: list[exp.Column] = []
    stars: list[exp.Expr] = []
    extra_nodes: list[exp.Expr] = []  # INSERT column lists, JOIN ... USING
    has_with = has_bound = False
    bound_candidates: list[tuple[str, exp.Expr]] = []  # row-bound function names, and where
    settings: list[str] = []  # the session settings SET changes
    stack = [tree]
    push = stack.append
    while stack:
        node = stack.pop()
        cls = node.__class__
        if cls is not exp.Column:  # a column's children are only names: not worth a visit
            for child in node.iter_expressions(reverse=True):  # depth first, left to right
                if child.__class__ not in _LEAVES:
                    push(child)
        flags = flags_of(cls)
        if flags is None:
            flags = _flags_of(cls)
        if not flags:
            continue
        if flags & _TABLE:
            if node.arg_key != "indexed":  # SQLite's INDEXED BY names an index, not a table
                table_nodes.append(node)  # type: ignore[arg-type]
                events.append(node)
        elif flags & _COLUMN:
            column_nodes.append(node)  # type: ignore[arg-type]
        elif flags & _STAR:
            stars.append(node)
        elif flags & _FUNC:
            name = function_name(node)  # type: ignore[arg-type]
            out.functions.add(name)
            if name in ROW_BOUND_FUNCTIONS:
                bound_candidates.append((name, node))
        if flags & _COLUMN_LIST:
            extra_nodes.append(node)
        if flags & _WRITE:
            out.writes = True
            if flags & _DDL:
                out.is_ddl = True
            elif flags & _INTO:
                out.into = True
                operations.append("create")  # SELECT ... INTO makes a table
            elif flags & _COMMAND and out.unparsed is None:
                out.unparsed = _command_reason(node)
            if cls is exp.Set:
                settings.extend(_settings(node))
        if flags & _LOCK:
            out.locks = True
        if flags & _STATEMENT:
            operation = _OPERATIONS[type(node)]
            events.append(operation.upper())
            if operation not in operations:
                operations.append(operation)  # DML inside a CTE is a statement of its own
            if type(node) is exp.Select and out.unparsed is None:
                out.unparsed = _malformed_select(node, namer.dialect_name)
        if flags & _WITH:
            has_with = True
            for cte in node.expressions:
                defined = cte_name(cte, namer)
                if defined:
                    out.ctes.add(defined)
        if flags & _BOUND:
            has_bound = True
        if flags & _OID:
            _add_type(node, namer, out)
    if has_bound and bound_candidates:
        split_row_bound(bound_candidates, out)
    if settings:
        out.extra["settings"] = tuple(settings)
    aliases, owners = _add_tables(table_nodes, namer, has_with, columns, out)
    if columns:
        collect_columns(namer, aliases, owners, column_nodes, extra_nodes, stars, out)
    for hook in hooks:
        hook.collect(tree, namer, out)
    if isinstance(tree, _NOT_STATEMENTS):
        out.unparsed = out.unparsed or f"not a statement but a bare {tree.key} expression"
        operations[0] = "unparsed"  # no statement kind to judge: the unparsed rule says why
    return StatementFacts(
        operation=operations[0],
        operations=tuple(operations),
        tables=frozenset(out.tables),
        written=frozenset(out.written),
        columns=frozenset(out.columns),
        star_tables=frozenset(out.star_tables),
        functions=frozenset(out.functions),
        bound_functions=frozenset(out.bound_functions),
        writes=out.writes,
        is_ddl=out.is_ddl,
        into=out.into,
        locks=out.locks,
        summary=_summary(events, out.tables_seen) or operations[0].upper(),
        unparsed=out.unparsed,
        unresolved=tuple(out.unresolved),
        ctes=frozenset(out.ctes),
        types=frozenset(out.types),
        extra=out.extra,
    )


# PostgreSQL's transaction and tuple ids: a cast to one is judged as a call of its own
# (``age('3'::xid)`` counts every session's transactions since xid 3)
TRANSACTION_TYPES = frozenset({"xid", "xid8", "cid", "tid"})


def _add_type(node: exp.Expr, namer: Namer, out: FactsBuilder) -> None:
    """Casts that name something: ``'secrets'::regclass`` looks a name up in the catalog (as
    to_regclass does: judged as a call of its own); ``NULL::secrets`` is a table's row type."""
    if isinstance(node, exp.ObjectIdentifier):
        if node.name.lower().startswith("reg"):
            out.functions.add(node.name.lower())
        return
    if node.this != exp.DataType.Type.USERDEFINED:
        return
    kind = node.args.get("kind")
    parts = kind.flatten() if isinstance(kind, exp.Dot) else [kind]
    names = [namer.identifier(part) or "" for part in parts if isinstance(part, exp.Expr)]
    if not names or not names[-1]:
        return
    last = names[-1].lower()
    if last.startswith("reg") or last in TRANSACTION_TYPES:
        out.functions.add(last)
    else:
        schema = names[-2] if len(names) > 1 else namer.default_schema
        out.types.add(f"{schema}.{names[-1]}" if schema else names[-1])


def _malformed_select(select: exp.Expr, dialect: str) -> str | None:
    """Text sqlglot completes but databases reject: no select list, a FROM-first query.

    PostgreSQL accepts an empty select list (``SELECT``, ``SELECT FROM t``); others do not.
    """
    if not select.expressions and dialect != "postgres":
        return "a SELECT without a select list"
    if isinstance(select.parent, (exp.From, exp.Join)):
        return "a query directly in FROM (FROM-first syntax)"
    return None


def _add_tables(
    nodes: list[exp.Table], namer: Namer, has_with: bool, columns: bool, out: FactsBuilder
) -> tuple[dict[str, set[str]], dict[int, set[str]]]:
    """Record real tables (not CTE references or table functions).

    Returns alias -> tables, and the id of each SELECT -> the tables it reads directly.
    """
    aliases: dict[str, set[str]] = {}
    owners: dict[int, set[str]] = {}
    scopes = CteScopes(namer) if has_with else None
    selects: dict[int, exp.Expr | None] = {}
    sqlite = namer.dialect_name == "sqlite"
    for node in nodes:
        if not isinstance(node.this, exp.Identifier):
            # a table-valued function (its name is among the functions), but in SQLite a
            # virtual table's name called with arguments reads that table (FTS5's docs('q'))
            called = sqlite_reading.called_table(node) if sqlite else None
            if called is not None:
                name = namer.table(called)
                out.tables.add(name)
                alias_node = node.args.get("alias")
                key = (
                    namer.identifier(alias_node.this)
                    if isinstance(alias_node, exp.TableAlias) and alias_node.this is not None
                    else namer.identifier(called.this)
                )
                aliases.setdefault(key or "", set()).add(name)
            continue
        target = out.writes and _is_write_target(node)
        # The target of a write is always a table, whatever CTE shares its name.
        if scopes is not None and not target and scopes.is_reference(node):
            continue
        name = namer.table(node)
        out.tables.add(name)
        out.tables_seen.add(id(node))
        alias_node = node.args.get("alias")
        # An alias compares as the database compares it: "U" keeps its case.
        key = (
            namer.identifier(alias_node.this)
            if isinstance(alias_node, exp.TableAlias) and alias_node.this is not None
            else namer.identifier(node.this)
        )
        if key:
            aliases.setdefault(key, set()).add(name)
        joined = _joined_alias(node, namer)
        if joined:  # (users u JOIN orders o ON ...) AS j: j is every table of the join
            aliases.setdefault(joined, set()).add(name)
        if target:
            out.written.add(name)
        if columns:
            alias_node = node.args.get("alias")
            if alias_node is not None and alias_node.args.get("columns"):
                out.star_tables.add(name)  # t(a, b, c) renames columns by position: all read
            select = nearest(node, exp.Select, selects)
            if select is not None:
                owners.setdefault(id(select), set()).add(name)
    return aliases, owners


def _joined_alias(table: exp.Table, namer: Namer) -> str | None:
    """The alias of a parenthesised join that ``table`` is part of, if any."""
    node: exp.Expr | None = table.parent
    while isinstance(node, (exp.Join, exp.Table)):
        node = node.parent
    if isinstance(node, exp.Subquery) and isinstance(node.this, exp.Table):
        alias = node.args.get("alias")
        if isinstance(alias, exp.TableAlias) and alias.this is not None:
            return namer.identifier(alias.this)
    return None


def _summary(events: list[exp.Expr | str], real: set[int]) -> str:
    """OpenTelemetry's db.query.summary: operations and collections in order."""
    words: list[str] = []
    for event in events:
        word = event if isinstance(event, str) else event.name if id(event) in real else ""
        if word and (not words or words[-1] != word):
            words.append(word)
        if len(words) >= 32:
            break
    return " ".join(words)[:_SUMMARY_MAX]


def statement_kind(tree: exp.Expr) -> str:
    """The kind of a parsed statement (``select``, ``delete``, ``command``...)."""
    return _operation(tree)


def _operation(tree: exp.Expr) -> str:
    operation = _OPERATIONS.get(type(tree))
    if operation is not None:
        return operation
    if isinstance(tree, exp.Command):
        return "command"
    return tree.key


def _settings(node: exp.Expr) -> tuple[str, ...]:
    """The session settings a SET changes, in lower case (``transaction`` for SET
    TRANSACTION; ``?`` for an item of another shape, which no allow list holds)."""
    names = []
    for item in node.expressions:
        assignment = item.this if isinstance(item, exp.SetItem) else None
        kind = str(item.args.get("kind") or "").lower() if isinstance(item, exp.SetItem) else ""
        if isinstance(assignment, exp.EQ) and isinstance(assignment.this, exp.Column):
            names.append(assignment.this.name.lower())
        elif kind == "transaction" and assignment is None:
            names.append("transaction")
        else:
            names.append("?")
    return tuple(names)


def _command_reason(node: exp.Expr) -> str:
    head = str(node.this or "").strip().upper() or "statement"
    return f"{head} is not understood by the parser (raw command)"


def _is_write_target(table: exp.Table) -> bool:
    child: exp.Expr = table
    node = table.parent
    while isinstance(node, exp.Schema):
        child, node = node, node.parent
    return isinstance(node, _DML_TARGET_NODES) and child.arg_key in _TARGET_ARGS


def _merge(parts: list[StatementFacts]) -> StatementFacts:
    return StatementFacts(
        operation=parts[0].operation,
        operations=tuple(op for p in parts for op in p.operations),
        tables=frozenset().union(*(p.tables for p in parts)),
        written=frozenset().union(*(p.written for p in parts)),
        columns=frozenset().union(*(p.columns for p in parts)),
        star_tables=frozenset().union(*(p.star_tables for p in parts)),
        functions=frozenset().union(*(p.functions for p in parts)),
        bound_functions=frozenset().union(*(p.bound_functions for p in parts)),
        writes=any(p.writes for p in parts),
        is_ddl=any(p.is_ddl for p in parts),
        into=any(p.into for p in parts),
        locks=any(p.locks for p in parts),
        summary="; ".join(p.summary for p in parts)[:_SUMMARY_MAX],
        unparsed=next((p.unparsed for p in parts if p.unparsed), None),
        unresolved=tuple(u for p in parts for u in p.unresolved),
        ctes=frozenset().union(*(p.ctes for p in parts)),
        types=frozenset().union(*(p.types for p in parts)),
        extra={k: v for p in parts for k, v in p.extra.items()},
    )

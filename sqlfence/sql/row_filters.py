"""Row filters: a predicate on every reference to a table, wherever it sits in the tree.

Each read of a filtered table ``t [AS a]`` becomes the derived table
``(SELECT * FROM t WHERE <filter>) AS a``: the same name, the same columns, only the rows the
filter keeps. Whatever the query does around it (joins of every kind, subqueries, CTEs,
UNION arms, LATERAL, aggregates, window functions) then sees exactly what it would see in a
database that held only those rows, and an outer join cannot resurrect a hidden row as NULLs
because the hidden rows are gone before the join. The targets of UPDATE and DELETE cannot be
derived tables: their WHERE gets the filter instead. INSERT and UPDATE are checked against
it (``with_check.py``). What cannot be rewritten that way is refused, never passed unfiltered.

**Identity values are literals, not parameters.** The filter's ``:tenant`` is replaced by a
string literal that sqlglot writes from the connection's trusted identity, never from the
agent's text. Binding it as a parameter would need the cursor to merge the fence's values
into the caller's: impossible in general, since the agent's own parameters are positional
(``?``, ``%s``) and a parameter added in the middle of the text shifts them, and psycopg
cannot mix ``%s`` with ``%(name)s``. A literal needs no driver change and keeps the caller's
parameters as they are. It is made safe by refusing values a database could read otherwise
(``bind_literal``): NUL and control characters; on PostgreSQL also ``\\`` (read as an escape
where ``standard_conforming_strings`` is off) and ``%`` (psycopg reads it in the text when
parameters are passed); and the literal must parse back to the same value.

Pure functions over sqlglot trees; which key matches which table is ``filters_for``'s.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field

import sqlglot
from sqlglot import exp
from sqlglot.dialects.dialect import Dialect

from sqlfence.sql.analysis import Analysis, parse
from sqlfence.sql.canonical_order import canonical_order, ordered_aggregates, refuse_reserved
from sqlfence.sql.filter_keys import FilterError
from sqlfence.sql.masks import (
    MaskLookup,
    MaskRefused,
    TableMasks,
    check_masked_writes,
    not_reading,
    projection,
)
from sqlfence.sql.names import Namer
from sqlfence.sql.positional import marked, positional, unmark
from sqlfence.sql.rewrite import regenerable
from sqlfence.sql.roles import role_of
from sqlfence.sql.scopes import CteScopes
from sqlfence.sql.sqlite_reading import called_table
from sqlfence.sql.system_columns import reference, refuse_system_columns
from sqlfence.sql.tie_breakers import GUARDED, catalog_width
from sqlfence.sql.with_check import Refused, check_insert, check_update

IDENTITY_PLACEHOLDERS = ("tenant", "agent_id")
CLAIMS = "claims"  # :claims.<name>, a claim of the caller's token (Guard(claims=...))

# What a filter may be made of: comparisons of the table's own columns with literals and
# identity placeholders. No subquery (it would read tables of its own), no function (a
# volatile one would make the filter differ between references).
_ALLOWED_NODES: tuple[type[exp.Expr], ...] = (
    exp.Column,
    exp.Identifier,
    exp.Literal,
    exp.Boolean,
    exp.Null,
    exp.Placeholder,
    exp.Dot,
    exp.Paren,
    exp.Tuple,
    exp.And,
    exp.Or,
    exp.Not,
    exp.EQ,
    exp.NEQ,
    exp.GT,
    exp.GTE,
    exp.LT,
    exp.LTE,
    exp.Is,
    exp.In,
    exp.Between,
    exp.Like,
    exp.Neg,
)
# Table arguments that stay with the table inside the derived table, and those that belong
# to the FROM item (a parenthesised join hangs its joins on its first table).
_INNER_ARGS = ("this", "db", "catalog", "only", "indexed", "hints", "sample", "partition")
_OUTER_ARGS = ("joins", "laterals", "pivots")


@dataclass(frozen=True)
class Identity:
    """Who the connection acts for: the values a filter's placeholders take."""

    agent_id: str | None = None
    tenant: str | None = None
    claims: Mapping[str, str | int] = field(default_factory=dict)

    def value(self, name: str) -> str | int | None:
        """The value of a placeholder (``tenant``, ``agent_id``, ``claims.x``), or None."""
        if name == "tenant":
            return self.tenant
        if name == "agent_id":
            return self.agent_id
        if name.startswith(CLAIMS + "."):
            return self.claims.get(name[len(CLAIMS) + 1 :])
        return None


@dataclass(frozen=True)
class RowFilter:
    """One policy key's filter, bound to one identity.

    ``condition`` has its placeholders replaced by literals, columns unqualified; ``pinned``
    maps each column the filter fixes by equality (``tenant_id = :tenant``) to its value,
    and is None when the filter is not only such equalities (writes cannot be checked then).
    ``unusable`` says why the filter cannot be applied (a placeholder without a value).
    ``through`` names the filtered relation (a parent, a view) that reads a table that has
    no filter of its own: reading the table is refused, reading that relation is not.
    """

    key: str
    condition: exp.Expr
    pinned: Mapping[str, exp.Literal] | None
    unusable: str | None = None
    through: str | None = None  # refused only because this filtered relation reads it


def parse_filter(text: str, dialect: str | Dialect | None = None) -> exp.Expr:
    """The condition a filter text holds; raises FilterError naming what is wrong."""
    if not isinstance(text, str) or not text.strip():
        raise FilterError("a row filter must be a non-empty SQL condition")
    try:
        parsed = sqlglot.parse(text, read=dialect)
    except Exception as error:  # sqlglot raises several kinds
        raise FilterError(f"cannot parse {text!r}: {str(error).splitlines()[0]}") from None
    if len(parsed) != 1 or parsed[0] is None:
        raise FilterError(f"{text!r} is not one condition")
    condition = parsed[0]
    for node in condition.walk():
        if not isinstance(node, _ALLOWED_NODES):
            raise FilterError(
                f"{text!r}: {node.key} is not allowed in a row filter (only the table's "
                "columns, literals, :tenant/:agent_id/:claims.<name>, comparisons, IN, "
                "BETWEEN, LIKE, IS, AND/OR/NOT)"
            )
        if isinstance(node, exp.Column) and (node.args.get("table") or node.args.get("db")):
            raise FilterError(f"{text!r}: write the column {node.sql()} without a table")
    if isinstance(condition, (exp.Column, exp.Literal, exp.Placeholder, exp.Dot, exp.Tuple)):
        raise FilterError(f"{text!r} is a value, not a condition")
    for name in placeholders(condition):
        known = name in IDENTITY_PLACEHOLDERS or (
            name.startswith(CLAIMS + ".") and len(name) > len(CLAIMS) + 1
        )
        if not known:
            raise FilterError(
                f"{text!r}: unknown placeholder :{name} (known: :tenant, :agent_id, :claims.<name>)"
            )
    return condition


def placeholders(condition: exp.Expr) -> list[str]:
    """The placeholder names a filter uses (``claims.region`` for ``:claims.region``)."""
    names = []
    for node in condition.walk():
        if isinstance(node, exp.Dot) and isinstance(node.this, exp.Placeholder):
            names.append(f"{node.this.name}.{node.expression.name}")
        elif isinstance(node, exp.Placeholder) and not isinstance(node.parent, exp.Dot):
            names.append(node.name or "?")
    return names


def bind(key: str, condition: exp.Expr, identity: Identity, dialect: Dialect) -> RowFilter:
    """The filter of ``key`` with the identity's values written in as safe literals."""
    bound = condition.copy()
    for node in list(bound.walk()):
        name: str | None = None
        if isinstance(node, exp.Dot) and isinstance(node.this, exp.Placeholder):
            name = f"{node.this.name}.{node.expression.name}"
        elif isinstance(node, exp.Placeholder) and not isinstance(node.parent, exp.Dot):
            name = node.name
        if name is None:
            continue
        value = identity.value(name)
        if value is None:
            return RowFilter(
                key, condition, None, f"it needs :{name}, which this connection has none of"
            )
        try:
            literal = bind_literal(value, dialect)
        except FilterError as error:
            return RowFilter(key, condition, None, f":{name} {error}")
        node.replace(literal)
    return RowFilter(key, bound, _pinned(bound))


def bind_literal(value: str | int, dialect: Dialect) -> exp.Literal:
    """A literal for a trusted identity value that every reader takes as that value.

    Raises FilterError for a value that could be read otherwise (see the module docstring).
    """
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise FilterError(f"has a value of type {type(value).__name__} (str or int only)")
    if isinstance(value, int):
        if value < 0:
            raise FilterError("is a negative number (a literal of its own is not)")
        return exp.Literal(this=str(value), is_string=False)
    if any(ord(ch) < 32 or ch == "\x7f" for ch in value):
        raise FilterError("holds a control character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise FilterError("cannot be encoded as UTF-8") from None
    if type(dialect).__name__.lower() == "postgres" and ("\\" in value or "%" in value):
        raise FilterError("holds \\ or %, which PostgreSQL or psycopg may read otherwise")
    literal = exp.Literal.string(value)
    again = sqlglot.parse_one(literal.sql(dialect=dialect), read=dialect)
    if not (isinstance(again, exp.Literal) and again.is_string and again.this == value):
        raise FilterError("does not read back as the same string")
    return literal


def _pinned(condition: exp.Expr) -> dict[str, exp.Literal] | None:
    """Column -> literal for a filter made only of ``column = literal`` conjuncts."""
    pinned: dict[str, exp.Literal] = {}
    for part in condition.flatten() if isinstance(condition, exp.And) else (condition,):
        inner = part.unnest()
        if not isinstance(inner, exp.EQ):
            return None
        column, value = inner.this, inner.expression
        if isinstance(column, exp.Literal):
            column, value = value, column
        if not isinstance(column, exp.Column) or not isinstance(value, exp.Literal):
            return None
        pinned[column.name.lower()] = value
    return pinned


FiltersFor = Callable[[str], tuple[RowFilter, ...]]
# table -> generated column -> the columns it is computed from (through other generated ones)
Generated = Mapping[str, Mapping[str, frozenset[str]]]


@dataclass
class Rewrite:
    """What ``apply`` did to one tree: the keys applied, the derived tables without alias."""

    applied: list[str] = field(default_factory=list)
    masked: list[str] = field(default_factory=list)  # the column masks' keys applied
    unaliased: set[tuple[str | None, str]] = field(default_factory=set)
    wrapped: set[str] = field(default_factory=set)  # the derived tables' names (aliases)
    targets: set[str] = field(default_factory=set)  # filtered tables written, as referenced


def apply(
    tree: exp.Expr,
    namer: Namer,
    filters_for: FiltersFor,
    views: Mapping[str, Iterable[str]] | None = None,
    masking: MaskLookup | None = None,
    generated: Generated | None = None,
) -> tuple[exp.Expr, Rewrite]:
    """``tree``, changed in place, with every filtered table filtered and every masked
    table's columns masked; what was applied.

    The caller's tree is not copied (a deep copy costs more than the rewrite): after a
    refusal it is left half-rewritten and must not be used.

    Raises Refused for a statement that cannot be filtered safely: a filtered table in DDL,
    MERGE or COPY, a view over a filtered table, an INSERT or UPDATE that may write a row
    the filter hides, a table reference of an unexpected shape.
    """
    done = Rewrite()
    scopes = CteScopes(namer)
    if masking is not None:
        check_masked_writes(tree, namer, masking, scopes)  # before the reads are wrapped
    for node in list(tree.find_all(exp.Table)):
        if isinstance(node.parent, exp.Lock):
            continue  # FOR UPDATE OF orders names the FROM item, whatever it has become
        if not isinstance(node.this, exp.Identifier) or node.arg_key == "indexed":
            _refuse_called(node, namer, filters_for, masking)
            continue  # a table-valued function, or SQLite's INDEXED BY naming an index
        statement, role = role_of(node)
        if role == "read" and scopes.is_reference(node):
            continue  # a CTE of the statement: its body's tables are filtered where they are
        name = namer.table(node)
        filters = filters_for(name)
        masks = masking.masks_for(name) if masking is not None else None
        _refuse_views(name, views, filters_for, masking)
        if not filters and (masks is None or not_reading(node, statement, role)):
            continue
        if made_new(node, statement, role, filters) and (masks is None or masks.unusable):
            continue  # a table the statement makes, unknown to the catalog: no rows yet
        _refuse_unusable(name, filters, masks)
        if role == "other":
            if not filters:
                raise MaskRefused(
                    f"table {name} has masked columns: a {statement.key} statement on it "
                    "would reach their values unmasked"
                )
            raise Refused(
                f"table {name} has a row filter ({_keys(filters)}): a {statement.key} "
                "statement on it would reach other rows"
            )
        if role == "read":
            _wrap(node, filters, masks, done, namer)
        elif not filters:
            pass  # a masked target: its writes were checked above
        elif isinstance(statement, exp.Insert):
            check_insert(statement, name, filters)
            done.targets.add(reference(node, namer))
        else:
            done.targets.add(reference(node, namer))
            if isinstance(statement, exp.Update):
                check_update(statement, name, filters, (generated or {}).get(name, {}))
            _restrict(statement, node, filters)
        done.applied.extend(f.key for f in filters if f.key not in done.applied)
        if masks is not None:
            done.masked.extend(k for k in masks.keys if k not in done.masked)
    if done.unaliased:
        _unqualify_columns(tree, namer, done.unaliased)
    if done.wrapped or done.targets:
        refuse_system_columns(tree, namer, done.wrapped, done.targets)
    return tree, done


def _refuse_called(
    node: exp.Table, namer: Namer, filters_for: FiltersFor, masking: MaskLookup | None
) -> None:
    """SQLite's ``docs('query')`` reads the virtual table docs, constrained by the call's
    arguments: a derived table cannot stand in for it, so a filtered or masked one is
    refused (``WHERE docs MATCH 'query'`` is the same read, and is rewritten)."""
    called = called_table(node) if namer.dialect_name == "sqlite" else None
    if called is None:
        return
    name = namer.table(called)
    if filters_for(name) or (masking is not None and masking.masks_for(name) is not None):
        raise Refused(
            f"{node.this.sql(dialect='sqlite')} reads {name}, which has a row filter or masks: "
            "a virtual table called with arguments (a full-text query) cannot be filtered or "
            "masked; read the table without them (a full-text MATCH needs the table itself, so "
            "it is not available under filters or masks either)"
        )


def made_new(
    node: exp.Table, statement: exp.Expr, role: str, filters: tuple[RowFilter, ...]
) -> bool:
    """Whether ``node`` is the table a CREATE (or SELECT ... INTO) makes, and only
    ``*.column`` keys, which cannot tell for a table the catalog does not hold, match it."""
    return (
        isinstance(statement, (exp.Create, exp.Into))
        and not_reading(node, statement, role)
        and all(f.unusable is not None and f.through is None for f in filters)
    )


def _refuse_unusable(name: str, filters: tuple[RowFilter, ...], masks: TableMasks | None) -> None:
    for each in filters:
        if each.unusable is not None:
            raise Refused(f"the row filter on {each.key} cannot be applied: {each.unusable}")
    if masks is not None and masks.unusable is not None:
        raise MaskRefused(f"the masked columns of {name} cannot be applied: {masks.unusable}")


def _keys(filters: tuple[RowFilter, ...]) -> str:
    return ", ".join(f.key for f in filters)


def _refuse_views(
    name: str,
    views: Mapping[str, Iterable[str]] | None,
    filters_for: FiltersFor,
    masking: MaskLookup | None = None,
) -> None:
    """A view (or rule, or parent table) over a filtered or masked table cannot be filtered
    or masked inside."""
    refused = masking.refusal(name) if masking is not None else None
    if refused is not None:
        raise MaskRefused(refused)
    if not views:
        return
    for base in sorted(views.get(name, ())):
        # A base refused only because a filtered relation reads it (a parent's partition)
        # is no reason to refuse that relation: its own filter covers what it reads.
        filters = tuple(f for f in filters_for(base) if f.through is None)
        if filters:
            raise Refused(
                f"{name} reads {base}, which has a row filter ({_keys(filters)}): the fence "
                f"cannot filter inside a view or rule (its body reads every tenant's rows, "
                f"whatever filter {name} has of its own); read {base} instead (a parent table "
                "with the same filter as its partitions is read)"
            )


def qualified(condition: exp.Expr, table: exp.Identifier) -> exp.Expr:
    """The condition with each column qualified by ``table`` (so no outer column can match)."""
    copy = condition.copy()
    for column in list(copy.find_all(exp.Column)):
        column.set("table", table.copy())
    return copy


def combined(filters: tuple[RowFilter, ...], table: exp.Identifier) -> exp.Expr:
    """All the filters of one table, each qualified by ``table``, joined by AND."""
    parts = [exp.paren(qualified(f.condition, table), copy=False) for f in filters]
    condition: exp.Expr = parts[0]
    for part in parts[1:]:
        condition = exp.And(this=condition, expression=part)
    return condition


# The filter runs before anything around it: a clause that stops the database's planner from
# merging the derived table into the query (SQLite neither flattens a subquery with a LIMIT
# into an outer query with a WHERE or a join, nor pushes terms into it; PostgreSQL does
# neither to one with an OFFSET). Otherwise a condition of the agent's could run on rows the
# filter hides (an index on its column lets the planner do so) and name their values in an
# error, or raise one for some values only.
FENCES: dict[str, tuple[str, Callable[[], exp.Expr]]] = {
    "sqlite": ("limit", lambda: exp.Limit(expression=exp.Neg(this=exp.Literal.number(1)))),
    "postgres": ("offset", lambda: exp.Offset(expression=exp.Literal.number(0))),
}


def _wrap(
    table: exp.Table,
    filters: tuple[RowFilter, ...],
    masks: TableMasks | None,
    done: Rewrite,
    namer: Namer,
) -> None:
    """Replace a read of ``table`` by ``(SELECT * FROM table WHERE filter) AS alias`` (with
    the masked columns' maskers in place of ``*``, the WHERE only for filters)."""
    for arg, value in table.args.items():
        if value and arg not in _INNER_ARGS and arg not in _OUTER_ARGS and arg != "alias":
            raise Refused(
                f"table {namer.table(table)} has a row filter or masked columns and a {arg} "
                "clause the fence does not rewrite"
            )
    if filters and table.args.get("sample"):
        raise Refused(
            f"TABLESAMPLE on {namer.table(table)}, which has a row filter: it picks rows by "
            "where they are stored, among every tenant's rows"
        )
    inner_table = exp.Table(**{a: table.args[a] for a in _INNER_ARGS if table.args.get(a)})
    if masks is not None and namer.dialect_name == "sqlite":
        # in rowid order: an index's order (INDEXED BY, or the planner's choice) would rank
        # rows by a masked column (PostgreSQL's sessions under masks scan no index)
        inner_table.set("indexed", False)
    name: exp.Identifier = table.this
    select = projection(masks, namer) if masks is not None else [exp.Star()]
    inner = exp.Select(expressions=select).from_(inner_table, copy=False)
    if filters:
        inner.set("where", exp.Where(this=combined(filters, name)))
    fence = FENCES.get(namer.dialect_name)
    if fence is not None:  # masks too: merged, the planner estimates the masked values
        inner.set(fence[0], fence[1]())  # from the raw column's statistics
    inner.meta[GUARDED] = True  # its LIMIT or OFFSET is the fence's, not a choice of rows
    alias = table.args.get("alias")
    if not isinstance(alias, exp.TableAlias) or alias.this is None:
        columns = alias.args.get("columns") if isinstance(alias, exp.TableAlias) else None
        alias = exp.TableAlias(this=name.copy(), columns=columns)
        db = table.args.get("db")
        done.unaliased.add(
            (namer.identifier(db) if db is not None else None, namer.identifier(name) or "")
        )
    done.wrapped.add(namer.identifier(alias.this) or "")
    derived = exp.Subquery(this=inner, alias=alias)
    for arg in _OUTER_ARGS:
        if table.args.get(arg):
            derived.set(arg, table.args[arg])
    table.replace(derived)


def _restrict(statement: exp.Expr, target: exp.Table, filters: tuple[RowFilter, ...]) -> None:
    """The filters first in an UPDATE's or DELETE's WHERE, qualified by its target's name."""
    alias = target.args.get("alias")
    name = (
        alias.this if isinstance(alias, exp.TableAlias) and alias.this is not None else target.this
    )
    condition = combined(filters, name)
    where = statement.args.get("where")
    if isinstance(where, exp.Where):
        # The agent's condition only where the filter holds (CASE is evaluated in order), so
        # it cannot run on hidden rows and name their values in an error.
        inner = exp.paren(where.this, copy=False)
        guarded = exp.Case(ifs=[exp.If(this=condition.copy(), true=inner)])
        condition = exp.And(this=condition, expression=guarded)
    statement.set("where", exp.Where(this=condition))


def _unqualify_columns(
    tree: exp.Expr, namer: Namer, unaliased: set[tuple[str | None, str]]
) -> None:
    """``main.orders.id`` -> ``orders.id``: a derived table has a name but no schema."""
    names = {name for _schema, name in unaliased}
    for column in tree.find_all(exp.Column):
        db = column.args.get("db")
        if db is None:
            continue
        table = namer.identifier(column.args.get("table"))
        if table in names:
            column.set("db", None)
            column.set("catalog", None)


_ROUTINES = frozenset({"FUNCTION", "PROCEDURE", "TRIGGER", "RULE", "AGGREGATE", "MACRO"})


def rewrite(
    analysis: Analysis,
    namer: Namer,
    filters_for: FiltersFor,
    views: Mapping[str, Iterable[str]] | None = None,
    masking: MaskLookup | None = None,
    generated: Generated | None = None,
    star_columns: Mapping[str, Collection[str]] | None = None,
) -> tuple[str | None, Rewrite]:
    """The text to run with every row filter and column mask applied, and what was applied;
    None: unchanged.

    ``star_columns`` are each relation's columns as ``*`` returns them (SQLite orders a
    filtered result by its column positions, so a ``*`` must be counted).

    Raises Refused when the statement cannot be filtered safely. The caller's positional
    parameters keep their order: when there are several, each is named with an unguessable
    marker first, and the rewritten text must hold the markers in the caller's order.
    """
    facts = analysis.facts
    if facts.unparsed or not analysis.trees:
        raise Refused(
            f"the fence cannot filter rows of a statement it does not read ({facts.unparsed})"
        )
    for tree in analysis.trees:
        for create in tree.find_all(exp.Create):
            kind = str(create.args.get("kind") or "").upper()
            if kind in _ROUTINES:
                raise Refused(
                    f"CREATE {kind}: the fence cannot see which rows a routine's body reads "
                    "or writes, so under row filters routines and triggers are not created"
                )
    if not _relevant(facts.tables, filters_for, views or {}, masking):
        return None, Rewrite()
    for tree in analysis.trees:
        refuse_reserved(tree)
    if not regenerable(analysis):
        raise Refused("SQLite's ?NNN parameters cannot be kept in a rewritten statement: use ?")
    trees, marks = analysis.trees, positional(analysis)
    if len(marks) > 1 and len(trees) > 1:
        raise Refused("several statements with positional parameters cannot be rewritten")
    if len(marks) > 1:
        nonce = secrets.token_hex(8)
        named = marked(analysis.sql, marks, nonce, namer.dialect_name)
        trees = tuple(t for t in parse(named, analysis.dialect)[1] if t is not None)
        trees = tuple(t for t in trees if not isinstance(t, exp.Semicolon))
    done = Rewrite()
    texts = []
    for tree in trees:
        new, one = apply(tree, namer, filters_for, views, masking, generated)
        if one.applied or one.masked:  # masks too: a table's size follows its masked values
            if namer.dialect_name == "postgres":
                ordered_aggregates(new)
            width = catalog_width(namer, star_columns) if star_columns else None
            new = canonical_order(new, namer.dialect_name, width)  # not the plan's order
        done.applied.extend(k for k in one.applied if k not in done.applied)
        done.masked.extend(k for k in one.masked if k not in done.masked)
        if len(marks) > 1:
            unmark(new, nonce, len(marks), analysis.dialect)
        texts.append(new.sql(dialect=analysis.dialect, copy=False))  # the tree is not used again
    return "; ".join(texts), done


def _relevant(
    tables: Iterable[str],
    filters_for: FiltersFor,
    views: Mapping[str, Iterable[str]],
    masking: MaskLookup | None,
) -> bool:
    """Does a filter or a mask apply to a table the statement names, or to one it reads, or
    does it reference a masked column (a write to it is refused)?"""
    for table in tables:
        for name in (table, *views.get(table, ())):
            if filters_for(name) or (masking is not None and masking.masks_for(name)):
                return True
        if masking is not None and (
            masking.refusal(table)
            or any(
                masking.references_masked(name) or masking.referenced_by_masked(name)
                for name in masking.written_through(table)
            )
        ):
            return True
    return False

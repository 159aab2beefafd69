"""Keys that make an order total: rows equal on the agent's keys come in the order of their
own values, not in the one the plan happened to read them in.

A level's rows are told apart by what the level shows: its select list (a ``*`` by the whole
rows of the sources it stands for). Two rows equal in all of that are the same row to the
agent, so their order cannot be seen. On PostgreSQL the key is one text,
``concat(ROW(<the select list>))``: ``concat`` writes any type (a json column has no order
of its own) by its output function and no cast the owner could have defined, and ``ROW``
keeps NULL apart from the empty text. SQLite orders every value, so its keys are the
columns themselves, or their positions. What is copied into a key never holds a parameter
(it would be bound twice).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping

from sqlglot import exp

from sqlfence.sql.names import Namer

# Window functions that read no frame, only the order of the partition's rows: a key
# appended to their ORDER BY changes nothing but the order of ties
_FRAMELESS = (exp.RowNumber, exp.Ntile, exp.Lag, exp.Lead)
_FRAMELESS_NAMES = frozenset({"row_number", "ntile", "lag", "lead"})
# What the rows' order never changes: the ranks (of the agent's keys, peers alike), and
# what a whole partition or a frame of peers gives whatever its order (a ROWS frame's count
# does follow it)
_RANKS = (exp.Rank, exp.DenseRank, exp.PercentRank, exp.CumeDist)
_RANK_NAMES = frozenset({"rank", "dense_rank", "percent_rank", "cume_dist"})
_UNORDERED = (exp.Count, exp.Min, exp.Max)
_UNORDERED_NAMES = frozenset({"count", "min", "max", "bool_and", "bool_or", "every"})
PARAMETERS = (exp.Placeholder, exp.Parameter)

# Aggregates whose result is in the order of their input rows: a list, a text, a document
# (an object's duplicate keys: the last one wins)
LISTING = (exp.GroupConcat, exp.ArrayAgg, exp.JSONArrayAgg, exp.JSONBObjectAgg, exp.JSONObjectAgg)
_LISTING_NAMES = frozenset(
    {
        "jsonb_agg",
        "int_array_aggregate",
        "xmlagg",
        "json_object_agg",
        "jsonb_object_agg",
        "string_agg",
        "array_agg",
        "json_agg",
        "group_concat",
        "json_group_array",
        "json_group_object",
    }
)  # (the names stand for the calls by their schema's name too: an Anonymous)


def listing(node: exp.Expr) -> bool:
    """Is ``node`` an aggregate whose result follows the order of its input rows?"""
    return _named(node, LISTING, _LISTING_NAMES)


GUARDED = "sqlfence_guarded"  # meta key of the fence's own derived tables, left as they are

# How many columns a table or view has (the catalog's), None when the fence does not know
TableWidth = Callable[[exp.Table], "int | None"]


def catalog_width(namer: Namer, columns: Mapping[str, Collection[str]]) -> TableWidth:
    """How many columns the catalog gives a table or view (what its ``*`` returns)."""

    def width(table: exp.Table) -> int | None:
        found = columns.get(namer.table(table))
        return len(found) if found else None

    return width


def width_of(tree: exp.Expr, table_width: TableWidth | None = None) -> int | None:
    """How many columns a query returns: its select list's items, each ``*`` counted from
    the columns of what it stands for (a CTE's or derived table's select list, a table's
    catalog); None when that cannot be told (a join by USING or NATURAL merges columns)."""
    while isinstance(tree, exp.SetOperation):
        tree = tree.this
    if isinstance(tree, exp.Subquery):
        return width_of(tree.this, table_width)
    if not isinstance(tree, exp.Select) or not tree.expressions:
        return None
    total = 0
    for item in tree.expressions:
        if not _is_star(item):
            total += 1
            continue
        if _merging(tree):
            return None  # USING and NATURAL show each merged column once
        sources = _sources(tree)
        bare = item.unalias()
        if isinstance(bare, exp.Column) and bare.table:
            sources = [node for node in sources if node.alias_or_name == bare.table]
        if not sources:
            return None
        for node in sources:
            counted = _source_width(node, tree, table_width)
            if counted is None:
                return None
            total += counted
    return total


def _sources(level: exp.Select) -> list[exp.Expr]:
    """What the level's FROM and JOINs read, in order."""
    from_ = level.args.get("from_")
    return ([from_.this] if from_ else []) + [j.this for j in level.args.get("joins") or []]


def _merging(level: exp.Select) -> bool:
    """Does a join of the level merge columns (USING, NATURAL)?"""
    joins = level.args.get("joins") or []
    return any(j.args.get("using") or str(j.args.get("method") or "").upper() for j in joins)


def _source_width(node: exp.Expr, level: exp.Select, table_width: TableWidth | None) -> int | None:
    if isinstance(node, exp.Subquery):
        return width_of(node.this, table_width)
    if not isinstance(node, exp.Table) or not isinstance(node.this, exp.Identifier):
        return None
    if node.args.get("alias") is not None and node.args["alias"].args.get("columns"):
        return None
    scope: exp.Expr | None = None if level.meta.get(GUARDED) else level
    while scope is not None:  # a CTE of this statement by that name, if there is one
        with_ = scope.args.get("with_")
        for cte in with_.expressions if with_ is not None else []:
            if cte.alias == node.name and not node.args.get("db"):
                return width_of(cte.this, table_width)
        scope = scope.parent
    return table_width(node) if table_width is not None else None


def level_key(
    level: exp.Select, dialect: str, table_width: TableWidth | None = None
) -> list[exp.Expr] | None:
    """Keys that order the rows of ``level`` totally, after its own ORDER BY; None when
    the fence cannot write them (a ``*`` it cannot count, under DISTINCT or GROUP BY)."""
    limit = level.args.get("limit")
    options = limit.args.get("limit_options") if isinstance(limit, exp.Fetch) else None
    if options is not None and options.args.get("with_ties"):
        return None  # FETCH ... WITH TIES returns every tie: a key would cut them
    distinct = level.args.get("distinct")
    if dialect == "postgres" and distinct is None:
        return _postgres_key(level)
    width = width_of(level, table_width)  # SQLite, or DISTINCT: counted columns only
    if width is None:
        return None
    if dialect == "postgres" and distinct is not None and distinct.args.get("on"):
        return _postgres_key(level)
    return [exp.Literal.number(n) for n in range(1, width + 1)]  # positions


def _postgres_key(level: exp.Select) -> list[exp.Expr] | None:
    grouped = bool(level.args.get("group")) or bool(level.args.get("having"))
    fields: list[exp.Expr] = []
    for item in level.expressions:
        if _is_star(item):
            rows = None if grouped else _whole_rows(level, item)
            if rows is None:
                return None
            fields.extend(rows)
        elif item.find(*PARAMETERS):
            if grouped:
                return None
            fields.extend(_own(item, exp.Column))
        else:
            fields.append(item.unalias().copy())
    return [text_of(fields)] if fields else None


def window_key(level: exp.Select, dialect: str) -> list[exp.Expr] | None:
    """Keys that order a window's rows totally: on a level without GROUP BY, every column
    the select list reads (two rows equal in all of them give the same results, whichever
    comes first); on a grouped one, the select list's own items without windows."""
    grouped = bool(level.args.get("group")) or bool(level.args.get("having"))
    fields: list[exp.Expr] = []
    for item in level.expressions:
        if _is_star(item):
            rows = None if grouped or dialect != "postgres" else _whole_rows(level, item)
            if rows is None:
                return None
            fields.extend(rows)
        elif grouped:
            if item.find(exp.Window) or item.find(*PARAMETERS):
                continue
            fields.append(item.unalias().copy())
        else:
            fields.extend(column.copy() for column in _own(item, exp.Column))
    if not grouped:  # what orders or picks the rows shows too: ORDER BY id, DISTINCT ON
        picking = level.args.get("distinct")
        for clause in (level.args.get("order"), picking.args.get("on") if picking else None):
            if clause is not None:
                fields.extend(c.copy() for c in _own(clause, exp.Column) if _reads_input(c, level))
    if not fields:
        return None
    return [text_of(fields)] if dialect == "postgres" else distinct(fields)


def order_windows(level: exp.Select, dialect: str) -> None:
    """Give each order-sensitive window of ``level`` a total order (in place): a ranking or
    offset function's, one framed by ROWS, and any window without ORDER BY or frame (``OVER
    ()``: the whole partition, fed in the plan's order to ``nth_value`` or a float ``sum``),
    which keeps the whole partition as its frame. A named window (``OVER w``) is left as it
    is, and so is a RANGE or GROUPS frame, whose peers the agent's keys define."""
    windows = [w for w in _own(level, exp.Window) if isinstance(w, exp.Window) and _sensitive(w)]
    if not windows:
        return
    keys = window_key(level, dialect)
    if keys is None:
        return
    for window in windows:
        order = window.args.get("order")
        extra = [exp.Ordered(this=key.copy(), nulls_first=dialect == "sqlite") for key in keys]
        if order is None:
            window.set("order", exp.Order(expressions=extra))
            if window.args.get("spec") is None:
                window.set("spec", _whole_partition())  # an ORDER BY alone would end the
                # frame at the current row: the function still sees the whole partition
        else:
            order.set("expressions", [*order.expressions, *extra])


def _whole_partition() -> exp.WindowSpec:
    return exp.WindowSpec(
        kind="ROWS",
        start="UNBOUNDED",
        start_side="PRECEDING",
        end="UNBOUNDED",
        end_side="FOLLOWING",
    )


def function_of(node: exp.Expr) -> exp.Expr:
    """The function a call names, without its schema (``pg_catalog.row_number()``)."""
    return node.expression if isinstance(node, exp.Dot) else node


def _named(node: exp.Expr, kinds: tuple[type[exp.Expr], ...], names: frozenset[str]) -> bool:
    if isinstance(node, exp.Anonymous):  # quoted too: pg_catalog."string_agg"
        return node.name.lower() in names
    return isinstance(node, kinds)


def _sensitive(window: exp.Window) -> bool:
    """Does the window's result follow the order of rows its own keys leave tied, and can
    keys be appended without changing what it means?"""
    if isinstance(window.this, exp.Identifier) or window.args.get("alias") is not None:
        return False  # a named window, shared with others
    function = function_of(window.this)
    if _named(function, _RANKS, _RANK_NAMES):
        return False  # the same for every order: its peers are the agent's keys
    if _named(function, _FRAMELESS, _FRAMELESS_NAMES):
        return True  # row_number, ntile, lag, lead: no frame, only the order of the rows
    spec = window.args.get("spec")
    unordered = _named(function, _UNORDERED, _UNORDERED_NAMES)
    if spec is None:  # the default frame: the whole partition without ORDER BY, else peers
        if unordered:
            return False
        return window.args.get("order") is None or _named(
            function, (exp.FirstValue,), frozenset({"first_value"})
        )
    if spec.args.get("exclude") is not None:
        return False  # EXCLUDE TIES or GROUP: its peers are the agent's keys
    kind = str(spec.args.get("kind") or "").upper()
    whole = (
        str(spec.args.get("start") or "").upper() == "UNBOUNDED"
        and str(spec.args.get("end") or "").upper() == "UNBOUNDED"
    )
    if unordered:  # count(*) OVER (ROWS 1 PRECEDING) counts the rows the plan put first
        return kind == "ROWS" and not whole
    return kind == "ROWS" or whole


def text_of(fields: list[exp.Expr]) -> exp.Expr:
    """``concat(ROW(<fields>))``, each field once."""
    return exp.Anonymous(
        this="concat", expressions=[exp.Anonymous(this="ROW", expressions=distinct(fields))]
    )


def distinct(fields: list[exp.Expr]) -> list[exp.Expr]:
    """``fields`` without repeats (by their text)."""
    seen: dict[str, exp.Expr] = {}
    for field_ in fields:
        seen.setdefault(field_.sql(), field_)
    return list(seen.values())


def _is_star(item: exp.Expr) -> bool:
    bare = item.unalias()
    return isinstance(bare, exp.Star) or (
        isinstance(bare, exp.Column) and isinstance(bare.this, exp.Star)
    )


def _whole_rows(level: exp.Select, item: exp.Expr) -> list[exp.Expr] | None:
    """The whole rows a ``*`` (of every source) or ``t.*`` stands for, as columns."""
    bare = item.unalias()
    if isinstance(bare, exp.Column) and bare.table:
        return [exp.column(bare.table)]
    sources = _sources(level)
    if not sources or any(not s.alias_or_name or isinstance(s, exp.Lateral) for s in sources):
        return None
    return [exp.column(source.alias_or_name) for source in sources]


def _reads_input(column: exp.Expr, level: exp.Select) -> bool:
    """Is an ORDER BY's column one of the level's input, not an output alias of its own?"""
    if column.args.get("table"):
        return True
    aliases = {item.alias.lower() for item in level.expressions if item.alias}
    return column.name.lower() not in aliases


def _own(node: exp.Expr, kind: type[exp.Expr]) -> list[exp.Expr]:
    """The ``kind`` nodes under ``node`` that belong to its level, not to a subquery's."""
    level = node if isinstance(node, exp.Select) else node.parent_select
    return [found for found in node.find_all(kind) if found.parent_select is level]

"""Column masks: a masked column's value is replaced where the table is read, not where used.

Each read of a table with masked columns becomes the derived table
``(SELECT id, name, <mask of email> AS email, ... FROM t) AS t``: the same name, the same
columns in the same order, only the masked ones computed by the database from the real value.
However the query selects the column afterwards (``*``, an alias, an expression, a
subquery, a CTE, a UNION arm, a function's argument), and wherever it uses it (WHERE, JOIN
ON, ORDER BY, GROUP BY, HAVING, a window), it only ever sees the masked value: a comparison
is a comparison of the masked value, which tells the agent nothing its result would not.
This is the same rewrite as a row filter's (``row_filters.py``), with a column list in place
of ``*``; the two combine in one derived table.

The targets of UPDATE and DELETE cannot be derived tables, so there the fence checks the
text instead (``check_write``): the statement may not read a masked column of its target
(in WHERE, SET, RETURNING, ON CONFLICT: a row count or a returned row would tell the value),
and may not write one (a write that succeeds or fails on a unique key tells whether a value
exists). What cannot be told apart is refused.

Pure functions over sqlglot trees; which key matches which table is ``policies/masks.py``'s.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Protocol

import sqlglot
from sqlglot import exp

from sqlfence.sql.names import Namer
from sqlfence.sql.roles import role_of
from sqlfence.sql.scopes import CteScopes
from sqlfence.sql.with_check import Refused

# The built-in maskers: SQL the database evaluates, per dialect, with {c} for the column.
# ``redact``, ``email`` and ``partial`` keep NULL as NULL (that a value exists is not hidden:
# use ``null`` for that); ``partial(a, b)`` keeps the first a and last b characters and masks
# a value too short to keep them whole; ``email`` keeps the first character and the domain.
# ``hash`` is an unkeyed SHA-256 of the text: equal values hash equally (joins and counts
# still work), but a guessable value can be confirmed by hashing the guess.
_TEXT = {
    "sqlite": "CAST({c} AS TEXT)",
    "postgres": "CAST({c} AS TEXT)",
    "iris": "CAST({c} AS VARCHAR(32767))",
}
_HIDDEN = "'****'"
_TEMPLATES: dict[str, str] = {
    "null": "NULL",
    "redact": f"CASE WHEN {{c}} IS NOT NULL THEN {_HIDDEN} END",
    "email": (
        "CASE WHEN INSTR({t}, '@') > 1 THEN SUBSTRING({t}, 1, 1) || '***@' || "
        f"SUBSTRING({{t}}, INSTR({{t}}, '@') + 1) WHEN {{c}} IS NOT NULL THEN {_HIDDEN} END"
    ),
    "partial": (
        "CASE WHEN LENGTH({t}) > {keep} THEN SUBSTRING({t}, 1, {a}) || '****' || "
        f"SUBSTRING({{t}}, LENGTH({{t}}) - {{b}} + 1) WHEN {{c}} IS NOT NULL THEN {_HIDDEN} END"
    ),
}
_HASH = {
    "sqlite": "sqlfence_sha256({t})",  # registered on each SQLite connection the fence opens
    "postgres": "ENCODE(SHA256(CONVERT_TO({t}, 'UTF8')), 'hex')",
}
MASKERS = ("null", "redact", "email", "hash", "partial(a, b)")
SQLITE_HASH_FUNCTION = "sqlfence_sha256"
_PARTIAL = re.compile(r"partial\(\s*(\d{1,3})\s*,\s*(\d{1,3})\s*\)")
_COLUMN = "sqlfence_masked_column"


def not_reading(table: exp.Table, statement: exp.Expr, role: str) -> bool:
    """Whether a statement names a masked table without reading its values: DROP, TRUNCATE,
    or the table a CREATE makes (its values, if any, come from reads that are masked)."""
    if role != "other":
        return False
    if isinstance(statement, (exp.Drop, exp.TruncateTable)):
        return True
    made = statement.this if isinstance(statement, exp.Create) else None
    return made is table or (isinstance(made, exp.Schema) and made.this is table)


def sha256_text(value: object) -> str | None:
    """The hash masker on SQLite (``sqlfence_sha256``): the SHA-256 of the text in hex, as
    PostgreSQL's ``encode(sha256(convert_to(text, 'UTF8')), 'hex')`` gives it."""
    if value is None:
        return None
    return hashlib.sha256(str(value).encode("utf-8", "surrogatepass")).hexdigest()


class MaskRefused(Refused):
    """A statement refused for its masked columns (the rule ``masked_columns``)."""


class MaskError(ValueError):
    """A masker that is not one of the built-in ones (the message says which there are)."""


@dataclass(frozen=True)
class Mask:
    """One policy key's mask on one column: ``kind`` and its arguments (``partial``)."""

    key: str
    kind: str
    args: tuple[int, ...] = ()

    @property
    def spelled(self) -> str:
        return f"{self.kind}({', '.join(map(str, self.args))})" if self.args else self.kind


def parse_masker(key: str, text: object) -> Mask:
    """The mask a policy value names; raises MaskError naming the built-in maskers."""
    spelled = text.strip().lower() if isinstance(text, str) else None
    if spelled in ("null", "redact", "email", "hash"):
        return Mask(key, spelled)
    found = _PARTIAL.fullmatch(spelled or "")
    if found is not None:
        return Mask(key, "partial", (int(found[1]), int(found[2])))
    raise MaskError(f"unknown masker {text!r} (known: {', '.join(MASKERS)})")


def check_key(key: object) -> None:
    """Raise MaskError unless ``key`` is ``table.column``, ``schema.table.column`` or
    ``*.column``."""
    if not isinstance(key, str) or not key.strip():
        raise MaskError("a masked column's key must name a column")
    parts = key.split(".")
    if not 2 <= len(parts) <= 3 or any(not part.strip() for part in parts):
        raise MaskError(f"{key!r} is not table.column, schema.table.column or *.column")
    if parts[-1].strip() == "*":
        raise MaskError(f"{key!r}: name the column to mask")
    if "*" in parts[:-1] and parts[:-1] != ["*"]:
        raise MaskError(f"{key!r}: '*' stands for every table only as *.column")


def masked_value(column: str, mask: Mask, dialect: str) -> exp.Expr:
    """The SQL expression of ``mask`` over the (quoted) column, for ``dialect``."""
    return _template(mask.kind, mask.args, dialect).transform(
        lambda node: _quoted(column) if _is_placeholder(node) else node
    )


def _is_placeholder(node: exp.Expr) -> bool:
    return isinstance(node, exp.Column) and node.name == _COLUMN and not node.table


def _quoted(name: str) -> exp.Column:
    return exp.Column(this=exp.Identifier(this=name, quoted=True))


@cache
def _template(kind: str, args: tuple[int, ...], dialect: str) -> exp.Expr:
    text = _HASH.get(dialect) if kind == "hash" else _TEMPLATES[kind]
    if text is None:
        raise MaskRefused(f"the hash masker is not available on {dialect}")
    a, b = args or (0, 0)
    cast = _TEXT.get(dialect, _TEXT["sqlite"]).format(c=_COLUMN)
    sql = text.format(c=_COLUMN, t=cast, a=a, b=b, keep=a + b)
    return sqlglot.parse_one(sql, read=_read_dialect(dialect))


def _read_dialect(dialect: str) -> str | type:
    if dialect == "iris":
        from sqlfence.sql.dialects.iris import IRIS

        return IRIS
    return dialect


@dataclass(frozen=True)
class TableMasks:
    """The masks on one table: its columns as ``SELECT *`` returns them, and the masked ones
    (by name as the database compares them). ``unusable`` says why reads of the table are
    refused (its columns are not known, a part whose parent masks columns it lacks)."""

    table: str
    columns: tuple[str, ...]
    masked: Mapping[str, Mask]
    unusable: str | None = None
    through: str | None = None  # the masks are the parent's, for a partition or child

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(mask.key for mask in self.masked.values()))


class MaskLookup(Protocol):
    """Which masks a table has, and what columns a table has (both by qualified name)."""

    def masks_for(self, table: str) -> TableMasks | None: ...

    def columns_of(self, table: str) -> frozenset[str] | None: ...


ColumnsOf = Callable[[exp.Expr], "frozenset[str] | None"]


def projection(masks: TableMasks, namer: Namer) -> list[exp.Expr]:
    """The select list of a masked table's derived table: every column, in order, the
    masked ones computed by their masker and named as the column."""
    select: list[exp.Expr] = []
    dialect = namer.dialect_name
    for name in masks.columns:
        mask = masks.masked.get(namer.normalize(name, quoted=True))
        if mask is None:
            select.append(_quoted(name))
        else:
            alias = exp.Identifier(this=name, quoted=True)
            select.append(exp.Alias(this=masked_value(name, mask, dialect), alias=alias))
    return select


def check_write(
    statement: exp.Expr,
    target: exp.Table,
    masks: TableMasks,
    namer: Namer,
    columns_of: ColumnsOf,
) -> None:
    """Refuse an INSERT, UPDATE or DELETE that writes a masked column of its target, or reads
    one (its WHERE, SET, RETURNING or ON CONFLICT would tell the value).

    ``columns_of`` gives the columns of a FROM item as the database compares them (None when
    not known), to tell a subquery's own column from the target's outer one.
    """
    masked = masks.masked
    name = masks.table
    written = _written(statement, namer)
    if written is None:
        raise MaskRefused(
            f"an INSERT into {name} must name its columns: {name} has masked columns "
            f"({', '.join(sorted(masked))}), which are not written"
        )
    hit = sorted(written & masked.keys())
    if hit:
        raise MaskRefused(
            f"{name}.{hit[0]} is masked ({masked[hit[0]].spelled}): it is not written, since "
            "a write that succeeds or fails on a unique key would tell whether a value exists"
        )
    labels = {namer.identifier(target.this) or ""}
    alias = target.args.get("alias")
    if isinstance(alias, exp.TableAlias) and alias.this is not None:
        labels.add(namer.identifier(alias.this) or "")
    returning = statement.args.get("returning")
    if returning is not None and any(isinstance(n, exp.Star) for n in returning.walk()):
        raise MaskRefused(
            f"RETURNING * on {name} would return its masked columns: name the columns"
        )
    for column in _readers(statement):
        if _is_set(column):
            continue  # the SET target itself (checked above)
        key = namer.identifier(column.this) or ""
        whole_row = column.args.get("table") is None and key in labels
        if (key not in masked and not whole_row) or not _reads_target(
            column, statement, labels, namer, columns_of
        ):
            continue
        what = (
            f"the whole row of {name} (masked: {', '.join(sorted(masked))})"
            if whole_row
            else f"{name}.{column.name} (masked: {masked[key].spelled})"
        )
        raise MaskRefused(
            f"{statement.key.upper()} may not read {what}: the rows it changes or returns "
            "would tell the values"
        )


def _readers(statement: exp.Expr) -> list[exp.Column]:
    """The column references that could read the target: in an INSERT only its RETURNING
    and ON CONFLICT (its rows come from elsewhere); in UPDATE and DELETE, anywhere."""
    if isinstance(statement, exp.Insert):
        parts = [statement.args.get("returning"), statement.args.get("conflict")]
        return [
            column for part in parts if part is not None for column in part.find_all(exp.Column)
        ]
    return list(statement.find_all(exp.Column))


def _written(statement: exp.Expr, namer: Namer) -> set[str] | None:
    """The columns a statement writes (None: an INSERT without a column list writes all)."""
    if isinstance(statement, exp.Insert):
        schema = statement.this
        if not isinstance(schema, exp.Schema) or not schema.expressions:
            return None
        written = {_name(part, namer) for part in schema.expressions}
        conflict = statement.args.get("conflict")
        for assignment in conflict.args.get("expressions") or () if conflict is not None else ():
            if isinstance(assignment, exp.EQ):
                written.add(_name(assignment.this, namer))
        return written
    if isinstance(statement, exp.Update):
        return {
            _name(assignment.this, namer)
            for assignment in statement.expressions
            if isinstance(assignment, exp.EQ)
        }
    return set()


def _is_set(column: exp.Column) -> bool:
    """Whether the column is the left side of an UPDATE's or upsert's SET."""
    if column.arg_key != "this" or not isinstance(column.parent, exp.EQ):
        return False
    assignment = column.parent
    return (
        assignment is not None
        and assignment.arg_key == "expressions"
        and isinstance(assignment.parent, (exp.Update, exp.OnConflict))
    )


def _reads_target(
    column: exp.Column,
    statement: exp.Expr,
    labels: set[str],
    namer: Namer,
    columns_of: ColumnsOf,
) -> bool:
    """Could this column reference resolve to the statement's target?"""
    qualifier = column.args.get("table")
    if qualifier is not None and namer.identifier(qualifier) not in labels:
        return False  # another table's or alias's column (else the target's, unless shadowed)
    key = namer.identifier(column.this)
    node = column.parent
    while node is not None and node is not statement:
        if isinstance(node, exp.Select):
            sources = _sources(node)
            if qualifier is not None:
                if any(_label(source, namer) in labels for source in sources):
                    return False
            else:
                known = [columns_of(source) for source in sources]
                if any(columns is not None and key in columns for columns in known):
                    return False  # a column of this subquery's own FROM item
                if any(columns is None for columns in known):
                    return True  # cannot tell: it may be the target's
        node = node.parent
    return True


def _sources(select: exp.Select) -> list[exp.Expr]:
    """The FROM items of one SELECT (its FROM and its joins)."""
    sources = []
    from_ = select.args.get("from_")
    if from_ is not None:
        sources.append(from_.this)
    for join in select.args.get("joins") or ():
        sources.append(join.this)
    return sources


def _name(node: exp.Expr, namer: Namer) -> str:
    """A written column's name as the database compares it."""
    if isinstance(node, exp.Column):
        node = node.this
    return namer.identifier(node) or ""


def _label(source: exp.Expr, namer: Namer) -> str | None:
    """The name a FROM item is referred to by: its alias, else a table's name."""
    alias = source.args.get("alias")
    if isinstance(alias, exp.TableAlias) and alias.this is not None:
        return namer.identifier(alias.this)
    if isinstance(source, exp.Table):
        return namer.identifier(source.this)
    return None


def source_columns(
    namer: Namer, scopes: CteScopes, known: Callable[[str], frozenset[str] | None]
) -> ColumnsOf:
    """``columns_of`` for ``check_write``: a table's columns from the catalog (``known``), a
    subquery's from its select list; None where the text does not tell (a CTE, ``*``)."""

    def columns_of(source: exp.Expr) -> frozenset[str] | None:
        alias = source.args.get("alias")
        listed = alias.args.get("columns") if isinstance(alias, exp.TableAlias) else None
        if listed:
            return frozenset(namer.identifier(c) or "" for c in listed)
        if isinstance(source, exp.Table):
            if not isinstance(source.this, exp.Identifier) or scopes.is_reference(source):
                return None
            return known(namer.table(source))
        query = source.this if isinstance(source, exp.Subquery) else None
        if not isinstance(query, exp.Select):
            return None
        names = set()
        for item in query.expressions:
            if isinstance(item, exp.Star) or (
                isinstance(item, exp.Column) and isinstance(item.this, exp.Star)
            ):
                return None
            names.add(namer.normalize(item.alias_or_name, quoted=_quoted_name(item)))
        return frozenset(names)

    return columns_of


def _quoted_name(item: exp.Expr) -> bool:
    alias = item.args.get("alias") if isinstance(item, exp.Alias) else None
    node = alias if alias is not None else item.this if isinstance(item, exp.Column) else None
    return bool(isinstance(node, exp.Identifier) and node.args.get("quoted"))


def check_masked_writes(
    tree: exp.Expr, namer: Namer, masking: MaskLookup, scopes: CteScopes | None = None
) -> None:
    """Refuse each INSERT, UPDATE or DELETE of ``tree`` that writes or reads a masked column
    of its target (``masks.check_write``)."""
    columns_of = source_columns(namer, scopes or CteScopes(namer), masking.columns_of)
    for node in tree.find_all(exp.Table):
        if not isinstance(node.this, exp.Identifier):
            continue
        statement, role = role_of(node)
        if role != "target":
            continue
        masks = masking.masks_for(namer.table(node))
        if masks is not None:
            if masks.unusable is not None:
                raise MaskRefused(
                    f"the masked columns of {masks.table} cannot be applied: {masks.unusable}"
                )
            check_write(statement, node, masks, namer, columns_of)

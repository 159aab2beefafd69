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

A write's target cannot be a derived table, and a write runs on the real values whatever
the text says: its CHECK constraints, unique and foreign keys and triggers see them, and
whether it succeeds (or what a trigger copies where) tells the agent about them; so does
``(t.*)::text`` in its SET or WHERE. So a table with masked columns is not written at all
(INSERT, UPDATE, DELETE, upserts), and neither is a table whose foreign key references a
masked column (an INSERT that succeeds says the value exists); a table a masked table
references is not updated or deleted from (a key that refuses to let a row go says a
masked row holds it) (``check_masked_writes``).

Pure functions over sqlglot trees; which key matches which table is ``policies/masks.py``'s.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
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
# a value whole unless at least 4 characters stay hidden; ``email`` keeps the first character
# and the domain.
# ``hash`` is an unkeyed SHA-256 of the text: equal values hash equally (joins and counts
# still work), but a guessable value can be confirmed by hashing the guess.
# The column as text: ``c || ''`` (SQLite and IRIS make text of it, and NULL stays NULL); a
# CAST would do too, but sqlglot writes each CAST out by parsing SQL again. On PostgreSQL
# ``||`` is also jsonb's and an array's own operator (``'' `` read as jsonb, as an array), so
# ``concat(c)``: any type's text by its output function (NULL becomes '', so every masker
# tests IS NULL first).
_TEXT = "({c} || '')"
_TEXTS = {"postgres": "CONCAT({c})"}
_HIDDEN = "'****'"
# A value is tested by IS NULL alone: PostgreSQL's IS NOT NULL is false for a row value with
# one NULL field, and would so show that field is NULL (a composite shown as NULL).
_TEMPLATES: dict[str, str] = {
    "null": "CASE WHEN 1 = 0 THEN {c} END",  # NULL of the column's own type (salary + 1 works)
    "redact": f"CASE WHEN {{c}} IS NULL THEN NULL ELSE {_HIDDEN} END",
    "email": (
        "CASE WHEN {c} IS NULL THEN NULL WHEN INSTR({t}, '@') > 1 THEN SUBSTRING({t}, 1, 1) "
        f"|| '***@' || SUBSTRING({{t}}, INSTR({{t}}, '@') + 1) ELSE {_HIDDEN} END"
    ),
    "partial": (
        "CASE WHEN {c} IS NULL THEN NULL WHEN LENGTH({t}) > {keep} THEN SUBSTRING({t}, 1, {a})"
        f" || '****' || SUBSTRING({{t}}, LENGTH({{t}}) - {{b}} + 1) ELSE {_HIDDEN} END"
    ),
}
_HASH = {
    "sqlite": "sqlfence_sha256({t})",  # registered on each SQLite connection the fence opens
    "postgres": (
        "CASE WHEN {c} IS NULL THEN NULL ELSE ENCODE(SHA256(CONVERT_TO({t}, 'UTF8')), 'hex') END"
    ),
}
_POSITION = {"sqlite": "INSTR", "postgres": "STRPOS", "iris": "INSTR"}
# The functions the maskers call, each on text (or bytea) it made itself: a built-in of
# that exact type, which PostgreSQL takes before any overload of the same name.
MASKER_FUNCTIONS = frozenset(
    {"substring", "length", "strpos", "instr", "encode", "sha256", "convert_to"}
)
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
    made = statement.this if isinstance(statement, (exp.Create, exp.Into)) else None
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
    cast = _TEXTS.get(dialect, _TEXT).format(c=_COLUMN)
    sql = text.format(c=_COLUMN, t=cast, a=a, b=b, keep=a + b + 3)  # 4 characters hidden, always
    tree = sqlglot.parse_one(sql, read=_read_dialect(dialect))
    # The position of '@' as the database's own function: sqlglot writes its portable form
    # by parsing SQL again each time (about 10 parses per email mask written out)
    native = _POSITION.get(dialect, "INSTR")
    return tree.transform(
        lambda node: (
            exp.Anonymous(this=native, expressions=[node.this, node.args["substr"]])
            if isinstance(node, exp.StrPosition)
            else node
        )
    )


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
    # the select list, built once per dialect: (as built, as its text reads back)
    _lists: dict[str, tuple[list[exp.Expr], list[exp.Expr]]] = field(
        default_factory=dict, compare=False, repr=False
    )

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(mask.key for mask in self.masked.values()))


class MaskLookup(Protocol):
    """Which masks a table has, and what columns a table has (both by qualified name)."""

    def masks_for(self, table: str) -> TableMasks | None: ...

    def columns_of(self, table: str) -> frozenset[str] | None: ...

    def references_masked(self, table: str) -> str | None: ...

    def referenced_by_masked(self, table: str) -> str | None: ...

    def written_through(self, table: str) -> list[str]: ...

    def refusal(self, relation: str) -> str | None: ...


def projection(masks: TableMasks, namer: Namer) -> list[exp.Expr]:
    """The select list of a masked table's derived table: every column, in order, the
    masked ones computed by their masker and named as the column (a new copy each call)."""
    return [item.copy() for item in _lists(masks, namer)[0]]


def read_back(masks: TableMasks, namer: Namer) -> list[exp.Expr]:
    """The select list as the fence's parser reads its text back: what a verified rewrite
    holds (compared as trees, which costs less than writing each out again)."""
    return _lists(masks, namer)[1]


def _lists(masks: TableMasks, namer: Namer) -> tuple[list[exp.Expr], list[exp.Expr]]:
    dialect = namer.dialect_name
    known = masks._lists.get(dialect)
    if known is None:
        built: list[exp.Expr] = []
        for name in masks.columns:
            mask = masks.masked.get(namer.normalize(name, quoted=True))
            if mask is None:
                built.append(_quoted(name))
            else:
                alias = exp.Identifier(this=name, quoted=True)
                built.append(exp.Alias(this=masked_value(name, mask, dialect), alias=alias))
        read = _read_dialect(dialect)
        text = "SELECT " + ", ".join(item.sql(dialect=read) for item in built) + " FROM t"
        parsed = sqlglot.parse_one(text, read=read)
        known = (built, list(parsed.expressions))
        masks._lists[dialect] = known
    return known


def check_masked_writes(
    tree: exp.Expr, namer: Namer, masking: MaskLookup, scopes: CteScopes | None = None
) -> None:
    """Refuse each INSERT, UPDATE, DELETE or MERGE of ``tree`` whose target has masked
    columns or references one by a foreign key (see the module docstring)."""
    for node in tree.find_all(exp.Table):
        if not isinstance(node.this, exp.Identifier):
            continue
        statement, role = role_of(node)
        if role != "target" and not isinstance(statement, exp.Merge):
            continue
        if isinstance(statement, exp.Merge) and statement.this is not node:
            continue
        target = namer.table(node)
        masks = masking.masks_for(target)
        if masks is not None:
            listed = ", ".join(sorted(masks.masked))
            raise MaskRefused(
                f"{target} has masked columns ({listed}): it is not written, since a write "
                "runs its constraints, keys and triggers on the real values and whether it "
                "succeeds would tell them"
            )
        # an upsert, or SQLite's REPLACE, may update or delete a row too
        conflict = statement.args.get("conflict") if isinstance(statement, exp.Insert) else None
        changes = not isinstance(statement, exp.Insert) or bool(
            statement.args.get("alternative")
            or (conflict is not None and "UPDATE" in str(conflict.args.get("action")).upper())
        )
        adds = not isinstance(statement, exp.Delete)
        for name in masking.written_through(target):  # itself, and views', rules' bases ...
            # what a rule's action does there is not the statement's kind: either, then
            reached = name != target
            _check_keys(name, masking, adds=adds or reached, changes=changes or reached)


def _check_keys(name: str, masking: MaskLookup, adds: bool, changes: bool) -> None:
    """Refuse a write to ``name`` whose foreign keys would answer for a masked value."""
    referenced = masking.references_masked(name)
    if referenced is not None and adds:
        raise MaskRefused(
            f"{name} references the masked column {referenced} by a foreign key: it is "
            "not written, since a row that is accepted says the value exists"
        )
    referencing = masking.referenced_by_masked(name)
    if referencing is not None and changes:
        raise MaskRefused(
            f"{referencing}, which has masked columns, references {name} by a foreign key: "
            "its rows are not updated or deleted, since whether the key lets one go says "
            "which values the masked rows hold"
        )

"""PostgreSQL's own reading of a statement, from its grammar as a library (pglast).

The fence judges sqlglot's reading of a text; the server runs its own. Wherever the two could
differ (dollar-quote tags, Unicode in identifiers, comments), this module gives the server's
reading so the Guard can deny a text the two read differently. pglast wraps libpg_query, the
server's lexer and grammar; its JSON output is walked here (cheaper than its Python AST).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from sqlfence import databases
from sqlfence.errors import ConfigurationError

# Statement node -> the fence's operation name (the kinds whose tables the fence must agree on).
_KINDS = {
    "SelectStmt": "select",
    "InsertStmt": "insert",
    "UpdateStmt": "update",
    "DeleteStmt": "delete",
    "MergeStmt": "merge",
}
_WRITE_STATEMENTS = frozenset({"InsertStmt", "UpdateStmt", "DeleteStmt", "MergeStmt"})
# A dollar-quote tag holding a character sqlglot and PostgreSQL classify differently: the
# server takes every non-ASCII character as part of a tag, sqlglot asks Python's isspace()
# and isdigit(). Such a tag is refused outright: no agent writes one.
_ODD_DOLLAR_TAG = re.compile(r"\$[A-Za-z0-9_]*[^\x00-\x7f]")
# Patterns over pglast's JSON text, cheaper than decoding it. They cannot match inside a
# JSON string value: there every '"' is escaped, and each pattern starts with '{"' or '"x":{'.
_S = r'((?:[^"\\]|\\.)*)'
_STATEMENT = re.compile(r'\{"stmt":\{"(\w+)"')  # RawStmt is the only node with a "stmt" field
# A RangeVar's fields come in order (catalogname, schemaname, relname): a relname right after
# "{" is unqualified; a qualified one follows its schemaname.
_RELNAME = re.compile(r'"relname":"' + _S + '"')
_QUALIFIED = re.compile(r'"schemaname":"' + _S + r'","relname":"' + _S + '"')
_NAME_LIST = r'((?:\{"String":\{"sval":"(?:[^"\\]|\\.)*"\}\},?)+)'
_FUNC_CALL = re.compile(r'"FuncCall":\{"funcname":\[' + _NAME_LIST + r"\]")
_COLUMN_REF = re.compile(r'"ColumnRef":\{"fields":\[' + _NAME_LIST + r"\]")
_SVAL = re.compile(r'"sval":"' + _S + '"')
# Operator names: an expression's (A_Expr: IN, LIKE, BETWEEN and NULLIF say theirs too), a
# subquery comparison's, an ORDER BY ... USING's. Type names: a cast's, a column's.
_OPERATOR = re.compile(r'"(?:name|operName|useOp)":\[' + _NAME_LIST + r"\]")
_TYPE_NAME = re.compile(r'"names":\[' + _NAME_LIST + r"\]")
# An identifier anywhere (a column, a field, a function): constants are not String nodes.
_IDENTIFIER = re.compile(r'\{"String":\{"sval":"' + _S + r'"\}\}')
# Where PostgreSQL compares with "=" by name though the text writes no operator: a CASE on a
# value, JOIN ... USING, NATURAL JOIN, IN (subquery).
_IMPLIED_EQUALS = ('"CaseExpr":{"arg":', '"usingClause":', '"isNatural":true', '"ANY_SUBLINK"')
# BETWEEN (and NOT BETWEEN, SYMMETRIC) compares with these.
_BETWEEN = frozenset({">=", "<=", "<", ">"})
# psycopg's placeholders, found as psycopg finds them: anywhere in the text, quotes or not.
_PLACEHOLDER = re.compile(r"%(?:\(([^)]+)\))?(.)", re.DOTALL)


@dataclass(frozen=True)
class EngineReading:
    """What PostgreSQL's grammar reads in a text: statements, relations, functions, columns."""

    kinds: tuple[str, ...] = ()
    tables: frozenset[str] = frozenset()
    functions: frozenset[str] = frozenset()
    columns: frozenset[str] = frozenset()
    error: str | None = None
    # the grammar's tree as JSON text, for the names asked for only now and then (below)
    tree: str = field(default="", compare=False, repr=False)

    @property
    def statement_count(self) -> int:
        """How many statements the server would run."""
        return len(self.kinds)

    def operators(self) -> frozenset[str]:
        """The operators the server looks up by name: those written, and the ``=`` and
        ``<=`` ... it compares with for CASE, USING, NATURAL, IN and BETWEEN."""
        found = set(_last_names(_OPERATOR, self.tree))
        if any("BETWEEN" in name for name in found):
            found |= _BETWEEN
        if any(marker in self.tree for marker in _IMPLIED_EQUALS):
            found.add("=")
        return frozenset(found)

    def type_names(self) -> frozenset[str]:
        """The last name of every type the text names (casts, column definitions)."""
        return frozenset(_last_names(_TYPE_NAME, self.tree))

    def identifiers(self) -> frozenset[str]:
        """Every identifier in the text (a ``t.f`` may call ``f(t)``): no constant."""
        return frozenset(_unescape(name) for name in _IDENTIFIER.findall(self.tree))


def _parser() -> Any:
    try:
        from pglast import parser
    except ImportError as error:
        raise ConfigurationError(
            "PostgreSQL statements are checked against PostgreSQL's own grammar (pglast): "
            "pip install 'sqlfence[postgres]'"
        ) from error
    return parser


def require() -> None:
    """Raise ConfigurationError (naming the extra) when pglast is not installed."""
    _parser()


def _convert(sql: str) -> tuple[str, list[tuple[int, int]], bool] | None:
    """The text psycopg sends for ``sql`` with parameters (``%s`` -> ``$1``, ``%%`` -> ``%``),
    where each ``$n`` stands in it, and whether every placeholder name is a plain word.

    None when ``sql`` has no placeholder, or one psycopg would refuse: then the text is sent
    as it is (without parameters) or not at all.
    """
    if "%" not in sql:
        return None
    numbers: dict[str, int] = {}
    count = 0
    invalid = False
    plain = True
    spans: list[tuple[int, int]] = []
    parts: list[str] = []
    written = 0
    last = 0
    for match in _PLACEHOLDER.finditer(sql):
        name, kind = match.group(1), match.group(2)
        if kind == "%" and name is None:
            replacement = "%"
        elif kind not in "sbt":
            invalid = True
            replacement = match.group(0)
        else:
            if name is None:
                count += 1
                number = count
            else:
                plain = plain and bool(_WORD.fullmatch(name))
                number = numbers.setdefault(name, len(numbers) + 1)
            replacement = f"${number}"
        before = sql[last : match.start()]
        parts.append(before)
        written += len(before)
        if replacement.startswith("$"):
            spans.append((written, written + len(replacement) - 1))
        parts.append(replacement)
        written += len(replacement)
        last = match.end()
    parts.append(sql[last:])
    if invalid or (count and numbers) or not (count or numbers):
        return None
    return "".join(parts), spans, plain


_WORD = re.compile(r"\w+")


def _placeholders_stand_alone(parser: Any, converted: str, spans: list[tuple[int, int]]) -> bool:
    """Whether PostgreSQL's lexer reads every ``$n`` psycopg writes as a parameter of its own,
    or inside a quoted string ('... %s ...' in a LIKE pattern: the string keeps its extent),
    never as part of a comment, a name or a dollar-quote tag."""
    try:
        tokens = parser.scan(converted)
    except Exception:
        return False
    for start, end in spans:
        token = next((t for t in tokens if t.start <= start and end <= t.end), None)
        if token is None:
            return False  # in a comment or between tokens: the text around it changed
        if token.name == "PARAM" and (token.start, token.end) == (start, end):
            continue
        if token.name == "SCONST" and converted[token.start] != "$" and token.start < start:
            continue
        return False
    return True


def read(sql: str, default_schema: str | None, columns: bool = True) -> EngineReading:
    """PostgreSQL's reading of ``sql``; ``error`` says why when its grammar rejects the text.

    psycopg sends the text as it is without parameters, and with ``%s`` made ``$1`` (and
    ``%%`` made ``%``) with them. A text that holds placeholders is read both ways: each
    form the grammar accepts must read the same (the other one the server would refuse).
    """
    conversion = _convert(sql)
    if conversion is None:
        return _read(sql, default_schema, columns)
    converted, spans, plain = conversion
    if not plain or not _placeholders_stand_alone(_parser(), converted, spans):
        return EngineReading(
            error="psycopg would put a parameter inside a string, comment or name here "
            "(or its name is not a plain word): the text PostgreSQL reads is not the one judged"
        )
    raw, sent = _read(sql, default_schema, columns), _read(converted, default_schema, columns)
    if sent.error is not None:
        return raw
    if raw.error is not None or _same(raw, sent):
        return sent
    return EngineReading(
        error="PostgreSQL reads it differently with parameters than without (its % signs)"
    )


def read_body(sql: str, default_schema: str | None) -> EngineReading:
    """PostgreSQL's reading of a SQL function's body (no driver placeholders in it)."""
    return _read(sql, default_schema, False)


def _same(one: EngineReading, other: EngineReading) -> bool:
    return (one.kinds, one.tables, one.functions, one.columns) == (
        other.kinds,
        other.tables,
        other.functions,
        other.columns,
    )


def _read(sent: str, default_schema: str | None, columns: bool) -> EngineReading:
    parser = _parser()
    if not sent.isascii() and _ODD_DOLLAR_TAG.search(sent) and _odd_dollar_quote(parser, sent):
        return EngineReading(
            error="a $tag$ with a non-ASCII character (the fence and PostgreSQL read such "
            "dollar quotes differently)"
        )
    try:
        text = parser.parse_sql_json(sent)
    except parser.ParseError as error:
        message, *where = error.args
        at = f" at character {where[0] + 1}" if where and isinstance(where[0], int) else ""
        return EngineReading(error=f"{message}{at}")
    except Exception as error:  # fail closed: whatever else the library raises
        return EngineReading(error=f"{type(error).__name__}: {error}")
    schema = default_schema or databases.POSTGRES.default_schema
    if '"ctename"' in text:  # CTE names need scopes: walk the decoded tree
        walk = _Walk(schema)
        walk.run(json.loads(text))
        tables = frozenset(walk.tables)
    else:  # no CTE: every relation named is a table
        tables = frozenset(_relations(text, schema))
    return EngineReading(
        kinds=tuple(_KINDS.get(kind, kind) for kind in _STATEMENT.findall(text)),
        tables=tables,
        functions=frozenset(_last_names(_FUNC_CALL, text)),
        columns=frozenset(_last_names(_COLUMN_REF, text)) if columns else frozenset(),
        tree=text,
    )


def _relations(text: str, default_schema: str) -> set[str]:
    """Every RangeVar of pglast's JSON text, qualified."""
    found = {
        _qualified(_unescape(name), None, default_schema)
        for match in _RELNAME.finditer(text)
        if text[match.start() - 1] == "{"
        for name in (match.group(1),)
    }
    if '"schemaname"' in text:
        found.update(
            _qualified(_unescape(name), _unescape(schema), default_schema)
            for schema, name in _QUALIFIED.findall(text)
        )
    return found


def _odd_dollar_quote(parser: Any, sql: str) -> bool:
    """Whether PostgreSQL's own lexer reads a dollar quote whose tag is not plain ASCII."""
    try:
        tokens = parser.scan(sql)
    except Exception:
        return True  # the lexer refuses the text: let that count as odd (the parse says why)
    for token in tokens:
        if token.name == "SCONST" and sql.startswith("$", token.start):
            tag_end = sql.find("$", token.start + 1)
            if tag_end < 0 or not sql[token.start : tag_end].isascii():
                return True
    return False


def _last_names(pattern: re.Pattern[str], text: str) -> list[str]:
    """The last name of each dotted name list the pattern finds (``pg_catalog.lower``)."""
    return [_unescape(_SVAL.findall(names)[-1]) for names in pattern.findall(text)]


def _unescape(value: str) -> str:
    return value if "\\" not in value else str(json.loads(f'"{value}"'))


def _qualified(name: str, schema: str | None, default_schema: str) -> str:
    """``schema.name`` as the fence names tables (``pg_*`` is pg_catalog's unless qualified)."""
    if schema is None:
        schema = "pg_catalog" if name.startswith("pg_") else default_schema
    return f"{schema}.{name}"


# The CTE names a node sees: (name -> first position in its WITH, how many of them it sees,
# the scope enclosing this one), innermost first; None for none. Shared, never copied, so a
# WITH of n CTEs costs n, not n x n.
_Scope = tuple[dict[str, int], float, "_Scope | None"]


class _Walk:
    """One pass over pglast's decoded tree: its tables, CTE names resolved as the server does."""

    def __init__(self, default_schema: str) -> None:
        self.default_schema = default_schema
        self.tables: set[str] = set()

    def run(self, root: Any) -> None:
        stack: list[tuple[Any, _Scope | None]] = [(root, None)]
        push = stack.append
        while stack:
            value, scope = stack.pop()
            if isinstance(value, list):
                for item in value:
                    if isinstance(item, (dict, list)):
                        push((item, scope))
                continue
            if not isinstance(value, dict):
                continue
            if "relname" in value and "relpersistence" in value:  # a RangeVar
                self._relation(value, scope)
                continue
            if len(value) == 1:
                kind, body = next(iter(value.items()))
                if kind in _WRITE_STATEMENTS and isinstance(body, dict):
                    # The target of a write is always a table, whatever CTE shares its name.
                    target = body.get("relation")
                    if isinstance(target, dict):
                        self._relation(target, None)
                    rest = {k: v for k, v in body.items() if k != "relation"}
                    push((rest, scope))
                    continue
            with_ = value.get("withClause")
            if isinstance(with_, dict):
                scope = self._with(with_, scope, push)
            for key, child in value.items():
                if key != "withClause" and isinstance(child, (dict, list)):
                    push((child, scope))

    def _with(self, clause: dict[str, Any], scope: _Scope | None, push: Any) -> _Scope | None:
        """Push each CTE body with the names it sees; return the scope of the statement."""
        ctes = [item.get("CommonTableExpr", {}) for item in clause.get("ctes", ())]
        names: dict[str, int] = {}
        for position, cte in enumerate(ctes):
            names.setdefault(cte.get("ctename", ""), position)
        inner: _Scope | None = (names, float("inf"), scope) if names else scope
        recursive = bool(clause.get("recursive"))
        for position, cte in enumerate(ctes):
            # Without RECURSIVE a CTE sees only the ones before it; with it, all of them.
            if recursive or not position:  # (the first sees none of its own WITH's)
                push((cte.get("ctequery"), inner if recursive else scope))
            else:
                push((cte.get("ctequery"), (names, position, scope)))
        return inner

    def _relation(self, node: dict[str, Any], scope: _Scope | None) -> None:
        name = node.get("relname", "")
        schema = node.get("schemaname")
        if schema is None:
            while scope is not None:
                names, visible, scope = scope
                position = names.get(name)
                if position is not None and position < visible:
                    return  # a CTE reference
        self.tables.add(_qualified(name, schema, self.default_schema))

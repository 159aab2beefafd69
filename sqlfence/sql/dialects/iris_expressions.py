"""How IRIS constructs appear in sqlglot trees, and helpers to read them.

With `sqlglotc` installed, sqlglot's node classes are compiled and refuse Python subclasses
(mypyc raises "interpreted classes cannot inherit from compiled" on instantiation), so the
IRIS dialect maps its constructs onto existing node classes that IRIS text never produces
otherwise, and names them here. Use these names, not the sqlglot classes they alias.
"""

from __future__ import annotations

from sqlglot import exp

ImplicitJoin = exp.ScopeResolution
"""IRIS arrow syntax `ref->field` (`Company->Name`).

`this` is the reference column (an `exp.Column`, or another `ImplicitJoin` in a chain
`a->b->c`, nesting to the left); `expression` is the `exp.Identifier` of the field read in
the referenced table, which never appears in FROM: resolve it with `implicit_join_targets`.
(The class is sqlglot's `ScopeResolution`, which no other IRIS syntax produces.)
"""

Call = exp.Execute
"""`CALL proc(args)` / `?=CALL proc(args)`: `this` is the call, an `exp.Anonymous` (or another
function node) whose name keeps the schema; `return_status` is the `exp.Placeholder` of
`?=CALL`. Read the name with `procedure_name`."""

CLASS_METHOD_PREFIX = "##class("
"""ObjectScript's `##class(Pkg.Cls).Method(args)` parses to an `exp.Anonymous` named
`##class(Pkg.Cls).Method`: arbitrary ObjectScript, always denied."""

PERCENT_PREDICATE_CLASSES: dict[type[exp.Expr], str] = {
    exp.Glob: "%MATCHES",
    exp.SimilarTo: "%PATTERN",
    exp.ArrayContainedBy: "%INLIST",
    exp.ArrayContainsAll: "%INSET",
    exp.Overlaps: "%FIND",
}
PERCENT_PREDICATES = frozenset(PERCENT_PREDICATE_CLASSES.values())
"""`x %MATCHES y` and its kin parse to `exp.Anonymous(this="%MATCHES", expressions=[x, y])`
and print back infix; `x %STARTSWITH y` parses to `exp.StartsWith`."""

LIMIT_KEYWORD_META = "iris_limit_keyword"
"""Meta key set on an `exp.Limit` parsed from `LIMIT n`; absent for `TOP n` and new nodes."""
ODBC_FN_META = "iris_odbc_fn"
"""Meta key set on a function written as an ODBC escape `{fn f(x)}`; printed back so."""
TOP_PARENS_META = "iris_top_parens"
"""Meta key: how many parentheses wrapped a TOP count (`TOP ((5))` keeps its literal out of
IRIS's query cache); generation writes them back."""


def procedure_name(node: exp.Expr) -> str:
    """Return the name of the routine a node runs, schema-qualified when written so.

    Accepts a `Call`, a function node (schema-qualified calls such as `Sample.Proc(1)` and
    `##class(Pkg.Cls).Method()` parse to an `exp.Anonymous` whose name is the whole
    qualified name) or a table-valued function in FROM (`exp.Table` whose `this` is a
    function). Quotes are dropped; compare names case-insensitively, as IRIS does.

    Raises:
        TypeError: the node runs no routine.
    """
    if isinstance(node, exp.Execute):
        return procedure_name(node.this)
    if isinstance(node, exp.Anonymous):
        return str(node.this)
    if isinstance(node, exp.Func):
        return node.sql_name()
    if isinstance(node, exp.Table) and isinstance(node.this, exp.Func):
        qualifier = [part.name for part in node.parts[:-1]]
        return ".".join([*qualifier, procedure_name(node.this)])
    raise TypeError(f"{type(node).__name__} does not run a routine")

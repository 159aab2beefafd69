"""Syntax-tree nodes for InterSystems IRIS SQL constructs that sqlglot has no class for.

The IRIS dialect (`sqlfence.sql.dialects.iris`) parses into these nodes and generates them
back; analysis code finds them with `tree.find_all(...)` like any sqlglot node.
"""

from __future__ import annotations

from sqlglot import exp


class ImplicitJoin(exp.Expression):
    """IRIS arrow syntax `ref->field`: follow the reference column `this` to its table.

    `this` is the reference column (an `exp.Column`, or another `ImplicitJoin` in a chain
    `a->b->c`, which nests to the left); `expression` is the `exp.Identifier` of the field
    read in the referenced table. The referenced table never appears in FROM, so table
    analysis must resolve it with `implicit_join_targets`.
    """

    arg_types = {"this": True, "expression": True}

    @property
    def field(self) -> str:
        """The name of the field reached in the referenced table."""
        return self.expression.name


class Call(exp.Expression):
    """`CALL proc(args)` or `?=CALL proc(args)`: runs a stored procedure.

    `this` is the call itself, an `exp.Anonymous` whose name keeps the schema
    (`Sample.Stored_Proc`), so a policy that denies functions by name also denies the same
    routine run by CALL. `returns` is the `exp.Placeholder` of a `?=CALL`. Use
    `procedure_name` to read the name.
    """

    arg_types = {"this": True, "returns": False}


class ClassMethodCall(exp.Func):
    """ObjectScript's `##class(Package.Class).Method(args)` written inside an SQL statement.

    `this` is the class name (an `exp.Var`), `method` the method `exp.Identifier` and
    `expressions` the arguments. Its function name is `##class`, which is on the deny list:
    it runs arbitrary ObjectScript.
    """

    arg_types = {"this": True, "method": True, "expressions": False}
    _sql_names = ["##class"]


class PercentPredicate(exp.Expression, exp.Predicate):
    """An IRIS `%` predicate operator other than %STARTSWITH: `x %MATCHES 'pattern'`.

    `op` holds the operator (`%MATCHES`, `%PATTERN`, `%INLIST`, `%INSET`, `%FIND`), upper case.
    `x %STARTSWITH y` parses to sqlglot's own `exp.StartsWith` instead.
    """

    arg_types = {"this": True, "expression": True, "op": True}


class PercentOption(exp.Expression):
    """A `%` keyword that tunes a statement: `SELECT %NOLOCK`, `FROM %FIRSTTABLE t`.

    `this` is the keyword, upper case (`%NOLOCK`); `expressions` holds the names some FROM
    hints take (`%FIRSTTABLE Sample.Person`, `%IGNOREINDEX Sample.Person.NameIdx`), as
    `exp.Var` nodes so that they are never mistaken for table references.
    """

    arg_types = {"this": True, "expressions": False}


class NoIndex(exp.Expression, exp.Predicate):
    """`%NOINDEX condition`: tells the optimizer not to use an index for one condition."""

    arg_types = {"this": True}


def procedure_name(node: exp.Expr) -> str:
    """Return the name of the routine a node runs, schema-qualified when written so.

    Accepts a `Call`, a function node (a schema-qualified call such as `Sample.Proc(1)`
    parses to an `exp.Anonymous` whose name keeps the schema), a `ClassMethodCall`
    (`##class(Pkg.Cls).Method`) or a table-valued function in FROM (`exp.Table` whose
    `this` is a function). The name is returned as written, without quotes; compare
    names case-insensitively, as IRIS does.

    Raises:
        TypeError: the node runs no routine.
    """
    if isinstance(node, Call):
        return procedure_name(node.this)
    if isinstance(node, ClassMethodCall):
        return f"##class({node.this.name}).{node.args['method'].name}"
    if isinstance(node, exp.Anonymous):
        return str(node.this)
    if isinstance(node, exp.Func):
        return node.sql_name()
    if isinstance(node, exp.Table) and isinstance(node.this, exp.Func):
        parts = [part.name for part in node.parts[:-1]]
        return ".".join([*parts, procedure_name(node.this)])
    raise TypeError(f"{type(node).__name__} does not run a routine")

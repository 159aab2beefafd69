"""Tests for the sqlglot dialect of InterSystems IRIS (sqlfence/sql/dialects/iris.py)."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import pytest
import sqlglot
import yaml
from sqlglot import exp
from sqlglot.dialects.dialect import NormalizationStrategy
from sqlglot.errors import ParseError
from sqlglot.optimizer.normalize_identifiers import normalize_identifiers
from sqlglot.tokenizer_core import TokenType

from sqlfence.sql.dialects.iris import (
    CLASS_METHOD_PREFIX,
    DEFAULT_SCHEMA,
    IRIS,
    IRIS_DENIED_FUNCTIONS,
    Call,
    ImplicitJoin,
    implicit_join_targets,
    is_denied_function,
    procedure_name,
    strip_terminator,
)
from sqlfence.sql.dialects.iris_rewrite import Fix
from sqlfence.sql.dialects.iris_tokenizer import IRISTokenizer

DATA = Path(__file__).parent / "data" / "iris_corpus.yaml"
CORPUS: dict[str, Any] = yaml.safe_load(DATA.read_text())
CATALOG: dict[str, str] = CORPUS["catalog"]
STATEMENTS: list[dict[str, Any]] = CORPUS["statements"]
DOCS = Path(__file__).parents[3] / "docs" / "iris-functions.md"


@pytest.fixture(autouse=True)
def _quiet_command_fallback() -> None:
    # sqlglot logs a warning for every statement it keeps as exp.Command
    logging.getLogger("sqlglot").setLevel(logging.ERROR)


def parse(sql: str) -> exp.Expr:
    trees = [tree for tree in sqlglot.parse(sql, read="iris") if tree is not None]
    assert len(trees) == 1, sql
    return trees[0]


def tables(tree: exp.Expr) -> set[str]:
    """Schema-qualified tables named in `tree` plus those its arrows reach, lower case."""
    ctes = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
    found = set()
    for table in tree.find_all(exp.Table):
        if not table.name or isinstance(table.this, exp.Func):
            continue  # a table-valued function
        if isinstance(table.parent, exp.Use):
            continue  # USE DATABASE names a namespace
        if not table.db and table.name.lower() in ctes:
            continue
        parts = [part.name for part in table.parts]
        found.add(".".join(parts) if len(parts) > 1 else f"{DEFAULT_SCHEMA}.{parts[0]}")
    targets, unknown = implicit_join_targets(tree, CATALOG)
    assert not unknown
    return {name.lower() for name in found | {f"{s}.{t}" for s, t in targets}}


def generate(tree: exp.Expr) -> str:
    return tree.sql(dialect="iris")


def top_and_limit_in_one_select(sql: str) -> bool:
    """Whether some SELECT of `sql` carries both TOP and LIMIT (IRIS SQLCODE -386)."""
    # per parenthesis depth: the keywords seen since that depth's last SELECT
    seen: dict[int, set[TokenType]] = {}
    depth = 0
    for token in IRISTokenizer(dialect=IRIS).tokenize(sql):
        kind = token.token_type
        if kind == TokenType.L_PAREN:
            depth += 1
        elif kind == TokenType.R_PAREN:
            seen.pop(depth, None)
            depth -= 1
        elif kind == TokenType.SELECT:
            seen[depth] = set()
        elif kind in (TokenType.TOP, TokenType.LIMIT) and depth in seen:
            seen[depth].add(kind)
            if len(seen[depth]) == 2:
                return True
    return False


def ids(statements: list[dict[str, Any]]) -> list[str]:
    return [statement["sql"][:60] for statement in statements]


def _unlimited(statement: dict[str, Any]) -> bool:
    tree = sqlglot.parse_one(statement["sql"], read="iris")
    if not isinstance(tree, exp.Select) or tree.args.get("offset"):
        return False
    limit = tree.args.get("limit")
    return limit is None or (isinstance(limit, exp.Limit) and limit.is_limit_all)


SELECTS = [statement for statement in STATEMENTS if _unlimited(statement)]


# corpus ------------------------------------------------------------------------------------


def test_corpus_has_at_least_150_statements() -> None:
    """The corpus covers the dialect with at least 150 IRIS statements."""
    assert len(STATEMENTS) >= 150


@pytest.mark.parametrize("statement", STATEMENTS, ids=ids(STATEMENTS))
def test_statement_parses_to_its_kind_and_tables(statement: dict[str, Any]) -> None:
    """Each corpus statement parses with read="iris" into its kind and tables."""
    tree = parse(statement["sql"])
    assert tree.key == statement["kind"]
    assert tables(tree) == {name.lower() for name in statement["tables"]}


@pytest.mark.parametrize("statement", STATEMENTS, ids=ids(STATEMENTS))
def test_only_statements_marked_unparsed_become_commands(statement: dict[str, Any]) -> None:
    """exp.Command appears exactly for the statements the corpus marks unparsed."""
    tree = parse(statement["sql"])
    assert bool(list(tree.find_all(exp.Command))) == bool(statement.get("unparsed"))


@pytest.mark.parametrize("statement", STATEMENTS, ids=ids(STATEMENTS))
def test_round_trip_keeps_kind_and_tables(statement: dict[str, Any]) -> None:
    """Generating IRIS SQL and parsing it again gives the same kind and tables."""
    tree = parse(statement["sql"])
    again = parse(generate(tree))
    assert again.key == tree.key
    assert tables(again) == tables(tree)


@pytest.mark.parametrize("statement", STATEMENTS, ids=ids(STATEMENTS))
def test_generated_sql_never_puts_top_and_limit_in_one_select(
    statement: dict[str, Any],
) -> None:
    """No generated SELECT carries both TOP and LIMIT."""
    assert not top_and_limit_in_one_select(generate(parse(statement["sql"])))


@pytest.mark.parametrize("statement", SELECTS, ids=ids(SELECTS))
def test_new_limit_on_a_select_is_written_as_top(statement: dict[str, Any]) -> None:
    """A limit the rewriter adds to an unlimited SELECT comes out as TOP n."""
    tree = parse(statement["sql"])
    tree.set("limit", exp.Limit(expression=exp.Literal.number(100)))
    sql = generate(tree)
    assert "TOP 100 " in sql
    assert not top_and_limit_in_one_select(sql)
    limit = parse(sql).args["limit"]
    assert limit.meta["top"]
    assert limit.expression == exp.Literal.number(100)


# row limits --------------------------------------------------------------------------------


def test_top_all_is_a_limit_of_var_all() -> None:
    """TOP ALL parses to an exp.Limit on exp.Var("ALL") (no limit) and prints back."""
    tree = parse("SELECT TOP ALL Name FROM Sample.Person")
    limit = tree.args["limit"]
    assert isinstance(limit, exp.Limit)
    assert limit.expression == exp.Var(this="ALL")
    assert limit.is_limit_all
    assert generate(tree) == "SELECT TOP ALL Name FROM Sample.Person"


@pytest.mark.parametrize(
    ("sql", "count"),
    [
        ("SELECT TOP 5 a FROM t", exp.Literal.number(5)),
        ("SELECT TOP (5) a FROM t", exp.Literal.number(5)),
        ("SELECT TOP ((5)) a FROM t", exp.Literal.number(5)),
        ("SELECT TOP ? a FROM t", exp.Placeholder()),
    ],
)
def test_top_count_is_the_bare_count(sql: str, count: exp.Expr) -> None:
    """The TOP count sits unwrapped in limit.expression, and the text prints back as read."""
    tree = parse(sql)
    assert tree.args["limit"].expression == count
    assert generate(tree) == sql


def test_replacing_the_top_count_keeps_top() -> None:
    """Replacing the count of TOP ALL gives TOP n."""
    tree = parse("SELECT TOP ALL a FROM t")
    tree.args["limit"].set("expression", exp.Literal.number(100))
    assert generate(tree) == "SELECT TOP 100 a FROM t"


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT a FROM t LIMIT 5", "SELECT a FROM t LIMIT 100"),
        ("SELECT a FROM t LIMIT 5 OFFSET 20", "SELECT a FROM t LIMIT 100 OFFSET 20"),
        (
            "SELECT a FROM t ORDER BY a OFFSET 20 ROWS FETCH FIRST 5 ROWS ONLY",
            "SELECT a FROM t ORDER BY a OFFSET 20 FETCH FIRST 100 ROWS ONLY",
        ),
    ],
)
def test_replacing_the_count_keeps_the_statement_style(sql: str, expected: str) -> None:
    """LIMIT and FETCH statements keep their style when the rewriter replaces the count."""
    tree = parse(sql)
    limit = tree.args["limit"]
    limit.set("count" if isinstance(limit, exp.Fetch) else "expression", exp.Literal.number(100))
    assert generate(tree) == expected


def test_new_limit_next_to_an_offset_is_written_as_limit() -> None:
    """TOP takes no OFFSET, so a new limit on a SELECT with OFFSET is written as LIMIT."""
    tree = parse("SELECT a FROM t LIMIT 5 OFFSET 20")
    tree.set("limit", exp.Limit(expression=exp.Literal.number(100)))
    assert generate(tree) == "SELECT a FROM t LIMIT 100 OFFSET 20"


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT TOP 5 a FROM t LIMIT 5",
        "SELECT TOP 5 a FROM t OFFSET 5",
        "SELECT a FROM t LIMIT 5 FETCH FIRST 5 ROWS ONLY",
        "SELECT a FROM t1 UNION SELECT TOP 5 a FROM t2 LIMIT 3",
    ],
)
def test_two_row_limit_styles_do_not_parse(sql: str) -> None:
    """Mixing TOP, LIMIT and FETCH on one SELECT is rejected, as IRIS does (-386)."""
    with pytest.raises(ParseError):
        sqlglot.parse_one(sql, read="iris")


def test_limit_after_a_union_belongs_to_its_last_select() -> None:
    """Without ORDER BY, a trailing LIMIT applies to the last SELECT of a UNION, as in IRIS."""
    tree = parse("SELECT a FROM t1 UNION SELECT a FROM t2 LIMIT 3")
    assert tree.args.get("limit") is None
    assert tree.expression.args["limit"].expression.this == "3"


def test_limit_after_order_by_belongs_to_the_union() -> None:
    """After ORDER BY, the LIMIT applies to the whole UNION."""
    tree = parse("SELECT a FROM t1 UNION SELECT a FROM t2 ORDER BY a LIMIT 3")
    assert tree.args["limit"].expression.this == "3"


def test_limit_set_on_a_union_covers_the_whole_union() -> None:
    """A limit set on a UNION node is written so that IRIS applies it to the whole UNION."""
    tree = parse("SELECT a FROM t1 UNION SELECT a FROM t2")
    tree.set("limit", exp.Limit(expression=exp.Literal.number(100)))
    sql = generate(tree)
    assert sql == "SELECT a FROM t1 UNION (SELECT a FROM t2) LIMIT 100"
    assert parse(sql).args["limit"].expression.this == "100"


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        (
            "SELECT * FROM (SELECT a FROM t ORDER BY a) AS s",
            "SELECT * FROM (SELECT TOP ALL a FROM t ORDER BY a) AS s",
        ),
        (
            "SELECT * FROM (SELECT a FROM t ORDER BY a LIMIT 5) AS s",
            "SELECT * FROM (SELECT TOP 5 a FROM t ORDER BY a) AS s",
        ),
        (
            "CREATE VIEW v AS SELECT a FROM t ORDER BY a",
            "CREATE VIEW v AS SELECT TOP ALL a FROM t ORDER BY a",
        ),
        (
            "(SELECT a FROM t1 ORDER BY a) UNION (SELECT a FROM t2)",
            "(SELECT TOP ALL a FROM t1 ORDER BY a) UNION (SELECT a FROM t2)",
        ),
    ],
)
def test_order_by_in_a_subquery_is_paired_with_top(sql: str, expected: str) -> None:
    """IRIS needs TOP beside ORDER BY in subqueries, views and UNION legs."""
    assert generate(parse(sql)) == expected


def test_leading_union_leg_limit_is_written_as_top() -> None:
    """Only the last SELECT of a UNION can end in LIMIT, so other legs get TOP."""
    tree = parse("SELECT a FROM t1 UNION SELECT a FROM t2")
    tree.this.set("limit", exp.Limit(expression=exp.Literal.number(7)))
    assert generate(tree) == "SELECT TOP 7 a FROM t1 UNION SELECT a FROM t2"


# % names ---------------------------------------------------------------------------------


def test_percent_functions_keep_their_percent_name() -> None:
    """%EXACT(x) is a function node named %EXACT, so a policy can deny it by name."""
    tree = parse("SELECT %EXACT(Name), %SQLUPPER Home_City FROM Sample.Person")
    names = {func.name for func in tree.find_all(exp.Anonymous)}
    assert names == {"%EXACT", "%SQLUPPER"}


def test_percent_id_is_a_column() -> None:
    """%ID is a column reference."""
    tree = parse("SELECT p.%ID FROM Sample.Person p WHERE %ID = 3")
    assert {column.name for column in tree.find_all(exp.Column)} == {"%ID"}


def test_startswith_is_a_predicate() -> None:
    """x %STARTSWITH 'A' is sqlglot's StartsWith and prints back as the IRIS operator."""
    tree = parse("SELECT a FROM t WHERE Name %STARTSWITH 'A'")
    assert isinstance(tree.args["where"].this, exp.StartsWith)
    assert generate(tree) == "SELECT a FROM t WHERE Name %STARTSWITH 'A'"


def test_percent_predicates_are_named_after_the_operator() -> None:
    """%MATCHES and its kin are function nodes named after the operator, printed infix."""
    sql = "SELECT a FROM t WHERE a %MATCHES 'x*' AND b %PATTERN '1N' AND c %INLIST $LISTBUILD(1)"
    tree = parse(sql)
    names = {func.name for func in tree.find_all(exp.Anonymous)}
    assert {"%MATCHES", "%PATTERN", "%INLIST"} <= names
    assert generate(tree) == sql


def test_statement_options_and_from_hints_print_back_in_place() -> None:
    """SELECT options stay after SELECT, FROM hints after FROM, both as exp.Var hints."""
    sql = "SELECT %NOLOCK DISTINCT TOP 5 a FROM %INORDER %FIRSTTABLE t2 t1, t2"
    tree = parse(sql)
    hints = [option.name for option in tree.args["hint"].expressions]
    assert hints == ["%NOLOCK", "%INORDER", "%FIRSTTABLE t2"]
    assert generate(tree) == sql


def test_ignoreindex_star_names_every_index_and_nothing_else_takes_a_bare_star() -> None:
    """`%IGNOREINDEX *` (all indexes of the FROM table) is IRIS; `%FIRSTTABLE *` is not."""
    sql = "SELECT Name FROM %IGNOREINDEX * Sample.Person"
    tree = parse(sql)
    assert [option.name for option in tree.args["hint"].expressions] == ["%IGNOREINDEX *"]
    assert generate(tree) == sql
    with pytest.raises(ParseError):
        sqlglot.parse_one("SELECT Name FROM %FIRSTTABLE * Sample.Person", read="iris")


def test_a_percent_without_a_name_does_not_parse() -> None:
    """% is no operator in IRIS, so `a % b` is rejected."""
    with pytest.raises(ParseError):
        sqlglot.parse_one("SELECT a % b FROM t", read="iris")


def test_hash_is_modulo_between_spaces_and_part_of_a_name_inside_one() -> None:
    """`a # 2` is modulo; `a#b` is one identifier, as IRIS reads it."""
    tree = parse("SELECT a # 2, a#b FROM t")
    first, second = tree.expressions
    assert isinstance(first, exp.Mod)
    assert isinstance(second, exp.Column)
    assert second.name == "a#b"


def test_odbc_escapes_are_typed_casts() -> None:
    """{d '...'} parses as a cast of the string to DATE."""
    tree = parse("SELECT a FROM t WHERE d > {d '2025-01-01'}")
    cast = next(tree.find_all(exp.Cast))
    assert cast.to.this == exp.DType.DATE
    assert cast.this == exp.Literal.string("2025-01-01")


def test_odbc_function_escape_prints_back() -> None:
    """{fn CONVERT(x, SQL_VARCHAR)} keeps its escape, whose argument order differs."""
    sql = "SELECT {fn CONVERT(Age, SQL_VARCHAR)}, CONVERT(VARCHAR(10), Age) FROM t"
    assert generate(parse(sql)) == sql


@pytest.mark.parametrize(
    "expression",
    [
        "POSITION(',' IN Name)",
        "INSTR(Name, ',')",
        "TO_CHAR(DOB, 'YYYY')",
        "DATEDIFF('dd', a, b)",
        "NVL(a, b)",
        "STRING(a, b)",
        "CHAR(65)",
        "DAYOFWEEK(d)",
        "TRIM(BOTH 'x' FROM y)",
        "CURRENT_TIMESTAMP",
        "$PIECE(Name, ',', 2)",
    ],
)
def test_functions_print_back_as_written(expression: str) -> None:
    """IRIS functions print back verbatim instead of in another dialect's spelling."""
    sql = f"SELECT {expression} FROM t"
    assert generate(parse(sql)) == sql


def test_plain_statement_skips_the_rewrite() -> None:
    """A statement without IRIS-only syntax is handed to the parser as scanned."""
    tokens, fixes = IRISTokenizer(dialect=IRIS).tokenize_with_fixes("SELECT a FROM t WHERE b = 1")
    assert fixes == Fix.NONE
    assert [token.text for token in tokens] == ["SELECT", "a", "FROM", "t", "WHERE", "b", "=", "1"]


# implicit joins ----------------------------------------------------------------------------


def test_arrow_chain_nests_to_the_left() -> None:
    """a->b->c is ImplicitJoin(ImplicitJoin(a, b), c) with the reached field on the right."""
    tree = parse("SELECT e.Company->CEO->Name FROM Sample.Employee e")
    outer = tree.expressions[0]
    assert isinstance(outer, ImplicitJoin)
    assert outer.expression == exp.to_identifier("Name")
    inner = outer.this
    assert isinstance(inner, ImplicitJoin)
    assert inner.this == exp.column("Company", table="e")
    assert inner.expression == exp.to_identifier("CEO")
    assert len(list(tree.find_all(ImplicitJoin))) == 2


def test_arrow_inside_an_aggregate_is_not_a_lambda() -> None:
    """COUNT(Company->Name) holds an implicit join."""
    tree = parse("SELECT COUNT(Company->Name) FROM Sample.Employee")
    assert isinstance(next(tree.find_all(exp.Count)).this, ImplicitJoin)


def test_targets_follow_aliases_and_chains() -> None:
    """Arrow targets resolve through table aliases and step by step along chains."""
    tree = parse("SELECT e.Company->CEO->Name FROM Sample.Employee e JOIN Sample.X x ON 1 = 1")
    targets, unknown = implicit_join_targets(tree, CATALOG)
    assert targets == {("Sample", "Company"), ("Sample", "Person")}
    assert unknown == []


def test_targets_use_the_default_schema_and_ignore_case() -> None:
    """Unqualified tables take the default schema; catalog keys match in any case."""
    tree = parse("SELECT customer->Name FROM orders")
    targets, unknown = implicit_join_targets(tree, {"sqluser.ORDERS.Customer": "SQLUser.Customer"})
    assert targets == {("SQLUser", "Customer")}
    assert unknown == []


def test_unknown_arrow_targets_are_described() -> None:
    """An arrow with no catalog entry is reported, and so is one whose table is ambiguous."""
    tree = parse("SELECT Boss->Name, Company->Name FROM Sample.Employee e, Sample.Other o")
    targets, unknown = implicit_join_targets(tree, {})
    assert targets == set()
    assert len(unknown) == 2
    assert "Boss->Name" in unknown[0]


def test_targets_without_a_catalog_are_all_unknown() -> None:
    """With no catalog every arrow is unknown, each reported once."""
    tree = parse("SELECT Company->CEO->Name FROM Sample.Employee")
    targets, unknown = implicit_join_targets(tree, None)
    assert targets == set()
    assert unknown == ["Company->CEO: no catalog entry for Sample.Employee.Company"]


# routines ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "name"),
    [
        ("CALL Sample.PersonSets('A', 'MA')", "Sample.PersonSets"),
        ("?=CALL Sample.Stored_Proc(?)", "Sample.Stored_Proc"),
        ("CALL UpdateTotals()", "UpdateTotals"),
        ("CALL %SYSTEM.SQL_TableExists('x')", "%SYSTEM.SQL_TableExists"),
    ],
)
def test_call_is_a_node_carrying_the_procedure_name(sql: str, name: str) -> None:
    """CALL parses to a Call node (not exp.Command) whose procedure name keeps the schema."""
    tree = parse(sql)
    assert isinstance(tree, Call)
    assert procedure_name(tree) == name
    assert procedure_name(tree.this) == name


def test_returning_call_keeps_its_placeholder() -> None:
    """?=CALL keeps the return placeholder and prints back."""
    tree = parse("?=CALL Sample.Stored_Proc(?, 2)")
    assert isinstance(tree.args["return_status"], exp.Placeholder)
    assert generate(tree) == "?=CALL Sample.Stored_Proc(?, 2)"


@pytest.mark.parametrize(
    ("sql", "name"),
    [
        ("SELECT Sample.Age_Group(Age) FROM t", "Sample.Age_Group"),
        ("SELECT %SYSTEM.Util_Foo() FROM t", "%SYSTEM.Util_Foo"),
        ("SELECT ##class(Utils.Py).Execute('x') FROM t", "##class(Utils.Py).Execute"),
    ],
)
def test_qualified_calls_are_functions_named_with_their_schema(sql: str, name: str) -> None:
    """Schema-qualified and ##class calls are function nodes named in full."""
    tree = parse(sql)
    func = next(tree.find_all(exp.Anonymous))
    assert procedure_name(func) == name
    assert generate(tree) == sql


def test_table_valued_function_is_named_with_its_schema() -> None:
    """A table-valued function in FROM carries its schema in the function name."""
    tree = parse("SELECT * FROM %Library.File_FileSet('/tmp')")
    table = next(tree.find_all(exp.Table))
    assert procedure_name(table) == "%Library.File_FileSet"
    assert generate(tree) == "SELECT * FROM %Library.File_FileSet('/tmp')"


def test_procedure_name_rejects_nodes_that_run_nothing() -> None:
    """procedure_name raises TypeError for a node that runs no routine."""
    with pytest.raises(TypeError):
        procedure_name(exp.column("a"))


# deny list ---------------------------------------------------------------------------------


def test_denied_function_names_are_lower_case() -> None:
    """IRIS_DENIED_FUNCTIONS holds lower-case names."""
    assert all(name == name.lower() for name in IRIS_DENIED_FUNCTIONS)


def test_every_denied_name_is_documented() -> None:
    """docs/iris-functions.md gives a reason for every denied name."""
    documented = set(re.findall(r"^\| `([^`]+)` \|", DOCS.read_text(), flags=re.MULTILINE))
    assert documented >= IRIS_DENIED_FUNCTIONS


@pytest.mark.parametrize(
    ("name", "denied"),
    [
        ("EMBEDDING", True),
        ("%Library.File_FileSet", True),
        ("%SYSTEM.INetInfo_LocalHostName", True),
        ("%SYS.Anything_Else", True),
        ("##class(Utils.Py).Execute", True),
        ("$SYSTEM.SQL.Functions.ABS", True),
        ("$ZF", True),
        ("%EXACT", False),
        ("%SQLUPPER", False),
        ("$PIECE", False),
        ("UPPER", False),
        ("Sample.Age_Group", False),
    ],
)
def test_is_denied_function(name: str, denied: bool) -> None:
    """is_denied_function applies the names, the prefixes and the % schema rule."""
    assert is_denied_function(name) is denied


def test_class_method_calls_are_denied_through_procedure_name() -> None:
    """A ##class call read with procedure_name is denied."""
    tree = parse("SELECT ##class(Utils.Py).Execute('x') FROM t")
    name = procedure_name(next(tree.find_all(exp.Anonymous)))
    assert name.startswith(CLASS_METHOD_PREFIX)
    assert is_denied_function(name)


# identifiers and terminators ---------------------------------------------------------------


def test_identifiers_are_case_insensitive_quoted_or_not() -> None:
    """IRIS identifiers are case-insensitive, delimited ones included."""
    assert IRIS.NORMALIZATION_STRATEGY is NormalizationStrategy.CASE_INSENSITIVE
    tree = normalize_identifiers(parse('SELECT "Name", Age FROM "Sample".Person'), dialect="iris")
    assert {column.name for column in tree.find_all(exp.Column)} == {"name", "age"}
    assert next(tree.find_all(exp.Table)).db == "sample"


def test_default_schema_is_sqluser() -> None:
    """Unqualified names belong to SQLUser."""
    assert DEFAULT_SCHEMA == "SQLUser"


def test_trailing_semicolon_parses() -> None:
    """A statement ending in ; parses to one statement."""
    assert parse("SELECT a FROM t;").key == "select"


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT a FROM t;", "SELECT a FROM t"),
        ("SELECT a FROM t ;  \n", "SELECT a FROM t"),
        ("SELECT a FROM t; -- done\n", "SELECT a FROM t"),
        ("SELECT a FROM t; /* done */", "SELECT a FROM t"),
        ("SELECT a FROM t;;", "SELECT a FROM t"),
        ("SELECT ';' FROM t", "SELECT ';' FROM t"),
        ("SELECT a FROM t -- ends with ;", "SELECT a FROM t -- ends with ;"),
        ("SELECT 1; SELECT 2;", "SELECT 1; SELECT 2"),
        ("SELECT a FROM t", "SELECT a FROM t"),
    ],
)
def test_strip_terminator(sql: str, expected: str) -> None:
    """strip_terminator removes only a trailing ; and what follows it."""
    assert strip_terminator(sql) == expected


@pytest.mark.parametrize(
    "sql", ['GRANT "", $JOB DATA INT DESC SELECT', "SELECT " + "(" * 3000 + "1" + ")" * 3000]
)
def test_sqlglot_failures_surface_as_parse_errors(sql: str) -> None:
    """Inputs on which sqlglot fails with other exceptions raise ParseError."""
    with pytest.raises(ParseError):
        sqlglot.parse(sql, read="iris")

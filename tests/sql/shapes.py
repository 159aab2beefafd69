"""Statements that grow in one direction, for the growth test (tests/sql/test_growth.py)
and the scale benchmark (benchmarks/scale.py): each builder takes the size and gives SQL."""

from __future__ import annotations


def cte_chain(n: int) -> str:
    """WITH c0 AS (...), c1 AS (SELECT ... FROM c0), ...: each CTE reads the one before."""
    ctes = ["c0 AS (SELECT a FROM t)"] + [f"c{i} AS (SELECT a FROM c{i - 1})" for i in range(1, n)]
    return "WITH " + ", ".join(ctes) + f" SELECT a FROM c{n - 1}"


def nested_from(n: int) -> str:
    """SELECT a FROM (SELECT a FROM (... t ...)): derived tables n deep."""
    sql = "SELECT a FROM t"
    for i in range(n):
        sql = f"SELECT a FROM ({sql}) AS s{i}"
    return sql


def nested_in_under_with(n: int) -> str:
    """A WITH over IN subqueries n deep, a table at every level (CTE scopes at every depth)."""
    sql = "SELECT a FROM x"
    for i in range(n):
        sql = f"SELECT a FROM t{i % 5} WHERE a IN ({sql})"
    return "WITH x AS (SELECT 1 AS a) " + sql


def union_arms(n: int) -> str:
    """n SELECTs joined by UNION ALL."""
    return " UNION ALL ".join(f"SELECT a, b FROM t{i % 7} WHERE a = {i}" for i in range(n))


def aliased_arms(n: int) -> str:
    """UNION ALL arms that all alias their table u and name u.a, u.b."""
    return " UNION ALL ".join(f"SELECT u.a, u.b FROM t{i} AS u WHERE u.a = {i}" for i in range(n))


def joins(n: int) -> str:
    """n tables joined in a chain."""
    on = " ".join(f"JOIN t{i} ON t{i}.a = t{i - 1}.a" for i in range(1, n))
    return f"SELECT t0.a FROM t0 {on}"


def parenthesised_joins(n: int) -> str:
    """((t0 JOIN t1 ...) JOIN t2 ...): joins nested n deep."""
    source = "t0"
    for i in range(1, n):
        source = f"({source} JOIN t{i} ON t{i}.a = t0.a)"
    return f"SELECT * FROM {source}"


def natural_joins(n: int) -> str:
    """n tables joined by NATURAL JOIN (each reads every column)."""
    return "SELECT * FROM t0 " + " ".join(f"NATURAL JOIN t{i}" for i in range(1, n))


def in_list(n: int) -> str:
    """An IN list of n literals."""
    return "SELECT a FROM t WHERE a IN (" + ", ".join(str(i) for i in range(n)) + ")"


def scalar_subqueries(n: int) -> str:
    """n scalar subqueries in the select list."""
    items = ", ".join(f"(SELECT max(a) FROM t{i % 5} WHERE b = {i}) AS m{i}" for i in range(n))
    return f"SELECT {items} FROM t"


def wide(n: int) -> str:
    """n unqualified columns over n tables (any column may be any table's)."""
    columns = ", ".join(f"c{i}" for i in range(n))
    return f"SELECT {columns} FROM " + ", ".join(f"t{i}" for i in range(n))


def long_case(n: int) -> str:
    """A CASE with n WHEN arms."""
    return "SELECT CASE " + " ".join(f"WHEN a = {i} THEN 'v{i}'" for i in range(n)) + " END FROM t"


def bounded_nesting(n: int) -> str:
    """coalesce() at every level of n nested derived tables, a LIMIT at the bottom."""
    sql = "SELECT coalesce(a, 0) AS a FROM t LIMIT 5"
    for i in range(n):
        sql = f"SELECT coalesce(a, {i}) AS a FROM ({sql}) AS s{i}"
    return sql


# shape -> its size at 1x (the 10x statement has ten times as many of the repeated part)

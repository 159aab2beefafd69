"""Row filters: the policy key's validation, the identity's literals, the guard's cache per
tenant, the rewrite's refusals, and the filters through ``sqlfence.connect`` and the CLI."""

from __future__ import annotations

import json
import sqlite3
import warnings
from pathlib import Path
from typing import Any

import pytest
from sqlglot.dialects.dialect import Dialect

import sqlfence
from sqlfence.cli import main
from sqlfence.errors import PolicyError
from sqlfence.policies.engine import Guard
from sqlfence.policies.loader import load_policy
from sqlfence.sql.filter_keys import FilterError
from sqlfence.sql.row_filters import bind_literal, parse_filter

README = Path(__file__).parent.parent.parent / "README.md"
FILTERS = {"orders": "tenant_id = :tenant"}


def guard(tenant: str | None = "A", dialect: str = "sqlite", **policy: Any) -> Guard:
    """A read-write guard of ``tenant`` with the orders filter (and ``policy`` on top)."""
    rules = {"read_only": False, "max_rows": None, "row_filters": FILTERS, **policy}
    return Guard(rules, dialect=dialect, tenant=tenant, agent_id="bot")


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        ({"orders": "tenant_id = :tenantt"}, "unknown placeholder :tenantt"),
        ({"orders": "tenant_id = (SELECT 1)"}, "is not allowed in a row filter"),
        ({"orders": "lower(tenant_id) = :tenant"}, "is not allowed in a row filter"),
        ({"orders": "tenant_id ="}, "cannot parse"),
        ({"orders": ""}, "non-empty SQL condition"),
        ({"orders": "tenant_id"}, "a value, not a condition"),
        ({"orders": "orders.tenant_id = :tenant"}, "without a table"),
        ({"orders": "a = 1; DROP TABLE x"}, "is not one condition"),
        ({"*": "tenant_id = :tenant"}, "would filter every table"),
        ({"a.b.c.d": "x = 1"}, "is not table, schema.table"),
        ({"orders": 7}, "valid string"),
    ],
)
def test_bad_filters_are_policy_errors_naming_the_key(filters: Any, message: str) -> None:
    """A bad filter expression or placeholder is a PolicyError naming the key and the line."""
    text = "row_filters:\n" + "".join(
        f"  {json.dumps(k)}: {json.dumps(v)}\n" for k, v in filters.items()
    )
    with pytest.raises(PolicyError) as raised:
        load_policy(text).resolve()
    assert message in str(raised.value)
    assert "row_filters" in str(raised.value)


def test_good_filters_load() -> None:
    """Tables, schemas, *.column keys and every placeholder are accepted."""
    policy = load_policy(
        {
            "row_filters": {
                "orders": "tenant_id = :tenant AND deleted IS NULL",
                "sales.*": "region = :claims.region OR region IN ('all', 'shared')",
                "*.tenant_id": "tenant_id = :tenant",
                "audit.log": "agent = :agent_id",
            }
        }
    ).resolve()
    assert set(policy.row_filters) == {"orders", "sales.*", "*.tenant_id", "audit.log"}


def test_the_readme_example_loads_and_filters() -> None:
    """The README's Row filters example is a valid policy that filters orders."""
    text = README.read_text()
    section = text[text.index("### Row filters") : text.index("### Column masks")]
    block = "\n".join(line[4:] for line in section.splitlines() if line.startswith("    "))
    guarded = Guard(
        load_policy(block).resolve(),
        tenant="acme",
        claims={"region": "eu"},
        table_columns={"main.orders": ["id", "tenant_id"], "main.products": ["id"]},
    )
    decision = guarded.decide("SELECT * FROM orders JOIN products ON products.id = orders.id")
    assert decision.row_filters == ("orders", "*.tenant_id")
    assert "orders.tenant_id = 'acme'" in decision.sql


@pytest.mark.parametrize(
    ("dialect", "value"),
    [
        ("sqlite", "a\x00b"),
        ("sqlite", "a\nb"),
        ("postgres", "a\\b"),
        ("postgres", "a%sb"),
        ("sqlite", True),
    ],
)
def test_unsafe_identity_values_are_refused(dialect: str, value: Any) -> None:
    """Values a database or driver could read otherwise never become literals."""
    with pytest.raises(FilterError):
        bind_literal(value, Dialect.get_or_raise(dialect))


@pytest.mark.parametrize("value", ["o'brien", "x' OR '1'='1", "acme corp", "ünï", "--", "a;b"])
def test_quotes_in_identity_values_stay_inside_the_literal(value: str) -> None:
    """A tenant with quotes is one string literal: the filter compares with that value only."""
    connection = sqlite3.connect(":memory:")
    connection.execute("CREATE TABLE orders (id INTEGER, tenant_id TEXT)")
    connection.executemany("INSERT INTO orders VALUES (?, ?)", [(1, value), (2, "other")])
    decision = guard(value).decide("SELECT id FROM orders")
    assert decision.allowed, decision.explain()
    assert connection.execute(decision.sql).fetchall() == [(1,)]


def test_a_connection_without_the_tenant_is_denied() -> None:
    """A filter needing :tenant on a connection with none denies every statement on the table."""
    decision = guard(None).decide("SELECT * FROM orders")
    assert not decision.allowed
    assert "needs :tenant" in decision.explain()
    assert guard(None).decide("SELECT * FROM products").allowed


def test_claims_are_a_hook() -> None:
    """:claims.<name> takes the guard's claims."""
    rules = {"row_filters": {"orders": "region = :claims.region"}}
    decision = Guard(rules, claims={"region": "eu"}).decide("SELECT * FROM orders")
    assert "orders.region = 'eu'" in decision.sql
    assert not Guard(rules).decide("SELECT * FROM orders").allowed


def test_each_tenants_guard_writes_its_own_literal_and_caches_its_own() -> None:
    """The same text gives each tenant's guard its own rewrite; a cached one is never another's."""
    first, second = guard("A"), guard("B")
    for _ in range(2):  # the second round is served from the caches
        assert "'A'" in first.decide("SELECT * FROM orders").sql
        assert "'B'" in second.decide("SELECT * FROM orders").sql
        assert "'A'" not in second.decide("SELECT * FROM orders").sql


def test_with_catalog_keeps_the_identity() -> None:
    """A guard that learns the catalog still acts for the same tenant."""
    learned = guard("A").with_catalog(views={"main.v": ["main.orders"]})
    assert learned.identity.tenant == "A"
    assert "'A'" in learned.decide("SELECT * FROM orders").sql
    assert "cannot filter inside a view" in learned.decide("SELECT * FROM v").explain()


def test_the_decision_names_the_filters() -> None:
    """Decision.row_filters lists the keys applied; explain says so."""
    decision = guard().decide("SELECT * FROM orders o JOIN products p ON p.id = o.product_id")
    assert decision.row_filters == ("orders",)
    assert decision.explain() == "allowed (row filters applied: orders)"
    untouched = guard().decide("SELECT * FROM products")
    assert untouched.row_filters == ()
    assert untouched.sql == "SELECT * FROM products"


def test_the_rewritten_text_stands_when_sent_again() -> None:
    """The guard's own rewrite, judged again, stands as it is (it is already filtered)."""
    guarded = guard()
    first = guarded.decide("SELECT * FROM orders")
    again = guarded.decide(first.sql)
    assert again.allowed
    assert again.sql == first.sql


def test_detect_mode_still_denies_what_cannot_be_filtered() -> None:
    """Detect mode never lets a statement that cannot be filtered run unfiltered."""
    decision = guard(mode="detect").decide("INSERT INTO orders (id, tenant_id) VALUES (1, 'B')")
    assert not decision.allowed


def test_unparsed_statements_are_denied_when_filters_are_set() -> None:
    """A statement the parser keeps as a raw command may touch any table: denied."""
    decision = guard(allow_unparsed=True, statements=["*"]).decide("VACUUM")
    assert not decision.allowed
    assert "does not read" in decision.explain()


def test_parameters_keep_their_order_or_the_statement_is_denied() -> None:
    """Positional parameters come out in the caller's order; where sqlglot would move them
    (OFFSET before LIMIT), the statement is denied instead of binding them elsewhere."""
    kept = guard().decide("SELECT * FROM orders WHERE id = ? AND total > ? LIMIT ?")
    assert kept.allowed
    assert kept.sql.count("?") == 3
    moved = guard(dialect="postgres").decide("SELECT * FROM orders OFFSET %s LIMIT %s")
    assert not moved.allowed
    assert "another order" in moved.explain()


def test_a_policy_without_filters_is_unchanged() -> None:
    """No row_filters: the text, the verdict and the cost path are as before."""
    plain = Guard({"max_rows": None}).decide("SELECT * FROM orders")
    assert plain.sql == "SELECT * FROM orders"
    assert plain.row_filters == ()
    assert Guard({"max_rows": None})._row_filters is None


def test_through_connect_a_view_over_the_table_is_denied(tmp_path: Path) -> None:
    """sqlfence.connect loads the views (row filters count as table rules), so a view over
    a filtered table is denied; the table itself is filtered for the connection's tenant."""
    path = tmp_path / "shop.db"
    raw = sqlite3.connect(path)
    raw.executescript(
        "CREATE TABLE orders (id INTEGER, tenant_id TEXT);"
        "INSERT INTO orders VALUES (1, 'A'), (2, 'B');"
        "CREATE VIEW all_orders AS SELECT * FROM orders;"
    )
    raw.commit()
    raw.close()
    policy = {"row_filters": FILTERS}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        first = sqlfence.connect(f"sqlite:///{path}", policy=policy, tenant="A")
        second = sqlfence.connect(f"sqlite:///{path}", policy=policy, tenant="B")
    assert first.execute("SELECT id FROM orders").fetchall() == [(1,)]
    assert second.execute("SELECT id FROM orders").fetchall() == [(2,)]
    with pytest.raises(sqlfence.PolicyViolation, match="cannot filter inside a view"):
        first.execute("SELECT * FROM all_orders")
    first.close()
    second.close()


def test_through_connect_a_column_key_filters_every_table_with_the_column(
    tmp_path: Path,
) -> None:
    """``*.tenant_id`` needs each table's columns: sqlfence.connect loads them from the
    catalog, so both tables are filtered and a table without the column is left alone."""
    path = tmp_path / "shop.db"
    raw = sqlite3.connect(path)
    raw.executescript(
        "CREATE TABLE orders (id INTEGER, tenant_id TEXT);"
        "CREATE TABLE refunds (id INTEGER, tenant_id TEXT);"
        "CREATE TABLE currencies (code TEXT);"
        "INSERT INTO orders VALUES (1, 'A'), (2, 'B');"
        "INSERT INTO refunds VALUES (10, 'A'), (20, 'B');"
        "INSERT INTO currencies VALUES ('EUR');"
    )
    raw.commit()
    raw.close()
    policy = {"row_filters": {"*.tenant_id": "tenant_id = :tenant"}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        conn = sqlfence.connect(f"sqlite:///{path}", policy=policy, tenant="B")
    try:
        joined = "SELECT o.id, r.id FROM orders o JOIN refunds r ON r.id = o.id * 10"
        assert conn.execute(joined).fetchall() == [(2, 20)]
        assert conn.execute("SELECT code FROM currencies").fetchall() == [("EUR",)]
    finally:
        conn.close()


def test_check_shows_the_rewritten_statement(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`sqlfence check --tenant` prints the filters applied and the statement as it would run."""
    policy = tmp_path / "p.yaml"
    policy.write_text("row_filters:\n  orders: tenant_id = :tenant\n")
    code = main(["check", "SELECT count(*) FROM orders", "-p", str(policy), "--tenant", "acme"])
    out = capsys.readouterr().out
    assert code == 0
    assert "allowed (row filters applied: orders)" in out
    assert "FROM (SELECT * FROM orders WHERE (orders.tenant_id = 'acme') LIMIT -1) AS orders" in out
    code = main(["--json", "check", "SELECT * FROM orders", "-p", str(policy), "--tenant", "a"])
    assert json.loads(capsys.readouterr().out)["row_filters"] == ["orders"]


def test_parse_filter_reads_a_dialect() -> None:
    """A filter is read in the guard's dialect too."""
    assert parse_filter("tenant_id = :tenant", "postgres").sql() == "tenant_id = :tenant"


def test_the_audit_event_names_the_filters_applied(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A statement rewritten with row filters says which in its audit event; others do not."""
    from sqlfence.observe.query import query_events

    monkeypatch.setenv("SQLFENCE_AUDIT_KEY", "row-filter-audit-key-of-the-chain")
    path = tmp_path / "shop.db"
    raw = sqlite3.connect(path)
    raw.executescript("CREATE TABLE orders (id INTEGER, tenant_id TEXT); CREATE TABLE t (x);")
    raw.close()
    audit = tmp_path / "audit"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        conn = sqlfence.connect(
            f"sqlite:///{path}",
            policy={"row_filters": FILTERS},
            tenant="A",
            audit={"directory": str(audit), "durability": "sync"},
        )
    conn.execute("SELECT id FROM orders").fetchall()
    conn.execute("SELECT x FROM t").fetchall()
    conn.close()
    queries = [e for e in query_events(audit) if e.event_type == "query"]
    assert [e.row_filters for e in queries] == [("orders",), None]

"""Which tables a policy's masks reach, from what the guard knows of the catalog
(``sqlfence/policies/masks.py``): named and ``*.column`` keys, partitions and children,
views, generated columns, and tables whose columns are not known."""

from __future__ import annotations

from typing import Any

from sqlfence.policies.engine import Guard

COLUMNS = {
    "main.customers": ["id", "tenant_id", "email", "domain"],
    "main.customers_2024": ["id", "tenant_id", "email", "domain"],
    "main.docs_content": ["id", "c0"],
    "main.v_customers": ["id", "email"],
    "main.staff": ["id", "Email"],
    "main.plain": ["id", "note"],
}


def _guard(masks: dict[str, str], **catalog: Any) -> Guard:
    policy = {"read_only": False, "statements": ["*"], "max_rows": None, "masked_columns": masks}
    known = {"star_columns": COLUMNS, "table_columns": COLUMNS, **catalog}
    return Guard(policy, dialect="sqlite", **known)


def test_a_masked_read_lists_every_column_in_order() -> None:
    decision = _guard({"customers.email": "redact"}).decide("SELECT * FROM customers")
    assert decision.allowed
    assert decision.masks == ("customers.email",)
    inner = decision.sql[decision.sql.index("(SELECT") :]
    assert inner.index('"id"') < inner.index('"tenant_id"') < inner.index('AS "email"')
    assert inner.index('AS "email"') < inner.index('"domain"')
    assert decision.explain() == "allowed (masks applied: customers.email)"


def test_a_key_naming_no_column_refuses_the_table_naming_its_columns() -> None:
    decision = _guard({"customers.emial": "redact"}).decide("SELECT id FROM customers")
    assert not decision.allowed
    assert decision.rule == "masked_columns"
    assert "customers.emial names no column of main.customers" in decision.explain()
    assert "id, tenant_id, email, domain" in decision.explain()


def test_a_table_of_unknown_columns_is_refused_under_a_column_key() -> None:
    decision = _guard({"*.email": "redact"}).decide("SELECT * FROM made_later")
    assert not decision.allowed
    assert "does not know the columns of main.made_later" in decision.explain()
    assert _guard({"*.email": "redact"}).decide("SELECT * FROM plain").masks == ()


def test_column_keys_compare_as_the_database_does() -> None:
    """SQLite folds names: staff."Email" is masked by *.email, and by staff.EMAIL."""
    for key in ("*.email", "staff.EMAIL", 'staff."Email"'):
        decision = _guard({key: "null"}).decide("SELECT email FROM staff")
        assert decision.allowed, key
        assert 'THEN "Email" END AS "Email"' in decision.sql, key


def test_a_partition_carries_its_parents_masks() -> None:
    parts = {"main.customers_2024": "main.customers"}
    views = {"main.customers": ["main.customers_2024"]}
    guard = _guard({"customers.email": "email"}, parts=parts, views=views)
    for table in ("customers", "customers_2024"):
        decision = guard.decide(f"SELECT email FROM {table}")
        assert decision.allowed, decision.explain()
        assert "'***@'" in decision.sql, table


def test_a_part_without_the_masked_columns_is_refused() -> None:
    """A virtual table's shadow table holds its values under other names."""
    parts = {"main.docs_content": "main.customers"}
    views = {"main.customers": ["main.docs_content"]}
    guard = _guard({"customers.email": "email"}, parts=parts, views=views)
    decision = guard.decide("SELECT c0 FROM docs_content")
    assert not decision.allowed
    assert "holds values of main.customers" in decision.explain()


def test_a_view_over_a_masked_table_is_refused_and_a_masked_view_is_not() -> None:
    views = {"main.v_customers": ["main.customers"]}
    decision = _guard({"customers.email": "email"}, views=views).decide("SELECT * FROM v_customers")
    assert not decision.allowed
    assert "cannot mask inside a view" in decision.explain()
    masked_view = _guard({"v_customers.email": "email"}, views=views)
    assert masked_view.decide("SELECT email FROM v_customers").allowed
    # the view's table holds the values the view masks: read directly, it is refused
    direct = masked_view.decide("SELECT email FROM customers")
    assert not direct.allowed
    assert "read main.v_customers" in direct.explain()


def test_a_generated_column_of_a_masked_column_is_masked_alike() -> None:
    generated = {"main.customers": {"domain": ["email"]}}
    decision = _guard({"customers.email": "redact"}, generated_columns=generated).decide(
        "SELECT domain FROM customers"
    )
    assert decision.allowed
    assert "'****' END AS \"domain\"" in decision.sql


def test_masks_and_row_filters_share_one_derived_table() -> None:
    policy = {
        "read_only": False,
        "statements": ["*"],
        "max_rows": None,
        "masked_columns": {"customers.email": "redact"},
        "row_filters": {"customers": "tenant_id = :tenant"},
    }
    guard = Guard(policy, dialect="sqlite", tenant="A", star_columns=COLUMNS, table_columns=COLUMNS)
    decision = guard.decide("SELECT email FROM customers c")
    assert decision.allowed, decision.explain()
    assert decision.sql.count(" FROM customers") == 1  # one derived table for both
    assert "WHERE (customers.tenant_id = 'A') LIMIT -1" in decision.sql
    assert decision.row_filters == ("customers",)
    assert decision.masks == ("customers.email",)
    assert "row filters applied: customers; masks applied" in decision.explain()
    refused = guard.decide("DELETE FROM customers WHERE email = 'x'")
    assert refused.rule == "masked_columns"


def test_dropping_or_making_a_table_is_not_reading_it() -> None:
    guard = _guard({"*.email": "redact"})
    assert guard.decide("DROP TABLE customers").allowed
    assert guard.decide("CREATE TABLE fresh (id INTEGER, email TEXT)").allowed
    assert not guard.decide("CREATE INDEX e ON customers (email)").allowed


def test_a_partition_with_a_key_of_its_own_keeps_its_parents_masks() -> None:
    parts = {"main.customers_2024": "main.customers"}
    views = {"main.customers": ["main.customers_2024"]}
    masks = {"customers.email": "email", "customers_2024.tenant_id": "redact"}
    guard = _guard(masks, parts=parts, views=views)
    child = guard.decide("SELECT email, tenant_id FROM customers_2024")
    assert child.allowed, child.explain()
    assert "'***@'" in child.sql
    assert "'****' END AS \"tenant_id\"" in child.sql
    # the parent reads the partition's rows, whose tenant_id it does not mask: refused
    parent = guard.decide("SELECT * FROM customers")
    assert not parent.allowed
    assert "holds the rows of main.customers_2024" in parent.explain()


def test_a_generated_column_of_several_masked_columns_is_redacted() -> None:
    """A masker of its own would show them in part: email || name masked as an email shows
    the name; substr(email, 2) masked as an email shows a second letter."""
    generated = {"main.customers": {"domain": ["email", "tenant_id"]}}
    masks = {"customers.email": "email", "customers.tenant_id": "hash"}
    decision = _guard(masks, generated_columns=generated).decide("SELECT domain FROM customers")
    assert decision.allowed
    assert "'****' END AS \"domain\"" in decision.sql
    assert "SHA256" not in decision.sql.split('AS "tenant_id"')[1]


def test_a_table_referencing_a_masked_column_is_not_written() -> None:
    references = {"main.plain": [("main.customers", "email")], "main.staff": [("main.plain", None)]}
    guard = _guard({"customers.email": "redact"}, references=references)
    refused = guard.decide("INSERT INTO plain (id, note) VALUES (1, 'zoe@x.io')")
    assert not refused.allowed
    assert "references the masked column main.customers.email" in refused.explain()
    assert guard.decide("DELETE FROM plain WHERE id = 1").allowed  # no key is checked
    assert guard.decide("INSERT INTO staff (id) VALUES (1)").allowed  # plain is not masked


def test_a_masked_table_is_not_written_whatever_the_write() -> None:
    guard = _guard({"customers.email": "redact"})
    for sql in (
        "UPDATE customers SET tenant_id = 'A' WHERE id = 1",
        "DELETE FROM customers WHERE id = 1",
        "INSERT INTO customers (id) VALUES (1)",
        "UPDATE customers SET tenant_id = (SELECT 1) WHERE id = 1",
    ):
        decision = guard.decide(sql)
        assert not decision.allowed, sql
        assert "is not written" in decision.explain(), sql

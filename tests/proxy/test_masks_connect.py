"""Column masks through ``sqlfence.connect`` on real databases: the catalog the connection
loads (columns in order, partitions, shadow tables, generated columns), the hash masker's
function on SQLite, errors that would show a row's values, and ``sqlfence check --database``."""

from __future__ import annotations

import sqlite3
import warnings
from pathlib import Path
from typing import Any

import psycopg
import pytest

import sqlfence
from sqlfence.cli import main
from sqlfence.sql.masks import sha256_text

POLICY: dict[str, Any] = {
    "read_only": False,
    "statements": ["*"],
    "max_rows": None,
    "masked_columns": {"customers.email": "email", "customers.name": "hash", "*.ssn": "redact"},
}


def _connect(url: str, policy: dict[str, Any] = POLICY) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return sqlfence.connect(url, policy=policy, audit=False, telemetry=False)


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Path:
    path = tmp_path / "app.db"
    raw = sqlite3.connect(path)
    raw.executescript(
        "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT, email TEXT, ssn TEXT,"
        " domain TEXT GENERATED ALWAYS AS (substr(email, instr(email, '@') + 1)) VIRTUAL);"
        "INSERT INTO customers (id, name, email, ssn) VALUES"
        " (1, 'zoe', 'zoe.quill@example.com', '111-22-3333');"
        "CREATE VIRTUAL TABLE notes USING fts5(ssn, body);"
        "INSERT INTO notes VALUES ('111-22-3333', 'call back');"
    )
    raw.commit()
    raw.close()
    return path


def test_sqlite_every_masked_value_comes_back_masked(sqlite_db: Path) -> None:
    conn = _connect(f"sqlite:///{sqlite_db}")
    try:
        row = conn.execute("SELECT * FROM customers").fetchone()
        assert row == (1, sha256_text("zoe"), "z***@example.com", "****", "****")
        assert conn.execute("SELECT name FROM customers WHERE name = ?", ("zoe",)).fetchall() == []
        # an FTS5 table reads its own shadow tables: the authorizer lets it, masked
        assert conn.execute("SELECT ssn, body FROM notes").fetchall() == [("****", "call back")]
        with pytest.raises(sqlfence.PolicyViolation, match=r"holds values of main\.notes"):
            conn.execute("SELECT * FROM notes_content")  # the FTS table's shadow table
    finally:
        conn.close()


def test_sqlite_a_table_made_after_connecting_is_masked_under_a_column_key(
    sqlite_db: Path,
) -> None:
    """The connection reads the catalog again for a table it did not know (it was refused
    until a reconnect before)."""
    conn = _connect(f"sqlite:///{sqlite_db}")
    try:
        conn.execute("CREATE TABLE later (id INTEGER, ssn TEXT)")
        with sqlite3.connect(sqlite_db) as owner:
            owner.execute("INSERT INTO later VALUES (1, '123-45-6789')")
        assert conn.execute("SELECT * FROM later").fetchall() == [(1, "****")]
        with pytest.raises(sqlfence.PolicyViolation, match="masked columns"):
            conn.execute("INSERT INTO later VALUES (2, 'x')")
    finally:
        conn.close()


@pytest.mark.filterwarnings("ignore::sqlfence.PrivilegeWarning")
def test_check_with_a_database_shows_the_masked_statement(
    sqlite_db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = tmp_path / "masks.yaml"
    policy.write_text("masked_columns:\n  customers.email: email\n")
    url = f"sqlite:///{sqlite_db}"
    code = main(["check", "SELECT email FROM customers", "-p", str(policy), "--database", url])
    out = capsys.readouterr().out
    assert code == 0
    assert "masks applied: customers.email" in out
    assert "'***@'" in out
    assert main(["check", "SELECT email FROM customers", "-p", str(policy)]) == 1
    assert "does not know the columns" in capsys.readouterr().out


@pytest.mark.filterwarnings("ignore::sqlfence.PrivilegeWarning")
def test_postgres_partitions_children_and_errors_keep_values_masked(pg_url: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as admin:
        admin.execute(
            "CREATE TABLE customers (id int, region text, name text, email text,"
            " age int CHECK (age >= 0)) PARTITION BY LIST (region)"
        )
        admin.execute("CREATE TABLE customers_eu PARTITION OF customers FOR VALUES IN ('eu')")
        admin.execute("INSERT INTO customers VALUES (1, 'eu', 'zoe', 'zoe.quill@example.com', 30)")
        admin.execute("CREATE TABLE tags (v text UNIQUE)")
        admin.execute("INSERT INTO tags VALUES ('zoe.quill@example.com')")
        admin.execute("CREATE TABLE people (id int, ssn text)")
        admin.execute("CREATE TABLE people_old () INHERITS (people)")
        admin.execute("INSERT INTO people_old VALUES (7, '111-22-3333')")
    conn = _connect(pg_url)
    try:
        for table in ("customers", "customers_eu"):
            assert conn.execute(f"SELECT email FROM {table}").fetchall() == [
                ("z***@example.com",)
            ], table
        assert conn.execute("SELECT ssn FROM people_old").fetchall() == [("****",)]
        assert conn.execute("SELECT * FROM people").fetchall() == [(7, "****")]
        with pytest.raises(sqlfence.PolicyViolation, match="is not written"):
            conn.execute("UPDATE customers SET age = -1 WHERE id = 1")  # CHECK would tell
        with pytest.raises(sqlfence.Error) as raised:
            conn.execute("INSERT INTO tags VALUES ('zoe.quill@example.com')")
        assert "detail is withheld" in str(raised.value)
        chained = raised.value.__cause__
        assert chained is not None
        assert "DETAIL" not in str(chained)  # the driver's own error, printed with tracebacks
    finally:
        conn.close()


def test_sqlite_a_full_text_table_is_read_and_written_through_the_fence(sqlite_db: Path) -> None:
    """FTS5 reads and writes its shadow tables in statements of its own, which the engine's
    check once refused ("authorization denied")."""
    conn = _connect(f"sqlite:///{sqlite_db}", {"read_only": False, "max_rows": None})
    try:
        conn.execute("INSERT INTO notes VALUES ('x', 'second note')")
        found = conn.execute("SELECT body FROM notes WHERE notes MATCH 'second'").fetchall()
        assert found == [("second note",)]
    finally:
        conn.close()


@pytest.mark.filterwarnings("ignore::sqlfence.PrivilegeWarning")
def test_postgres_keys_and_columns_that_answer_for_masked_values(pg_url: str) -> None:
    """A foreign key to a masked column is an oracle for its values; a key whose column
    misses a quoted "SSN" by case would mask nothing."""
    with psycopg.connect(pg_url, autocommit=True) as admin:
        admin.execute("CREATE TABLE customers (id int PRIMARY KEY, email text UNIQUE)")
        admin.execute("INSERT INTO customers VALUES (1, 'zoe.quill@example.com')")
        admin.execute("CREATE TABLE orders (id int, email text REFERENCES customers (email))")
        admin.execute('CREATE TABLE staff (id int, "SSN" text)')
    conn = _connect(pg_url, {**POLICY, "masked_columns": {"customers.email": "email"}})
    try:
        with pytest.raises(sqlfence.PolicyViolation, match="references the masked column"):
            conn.execute("INSERT INTO orders VALUES (1, 'zoe.quill@example.com')")
        assert conn.execute("SELECT count(*) FROM orders").fetchone() == (0,)
    finally:
        conn.close()
    with pytest.raises(sqlfence.PolicyError, match="but it has SSN"):
        _connect(pg_url, {**POLICY, "masked_columns": {"*.ssn": "redact"}})


def test_sqlite_a_foreign_key_to_a_masked_column_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "fk.db"
    raw = sqlite3.connect(path)
    raw.executescript(
        "CREATE TABLE customers (id INTEGER PRIMARY KEY, email TEXT UNIQUE);"
        "CREATE TABLE orders (id INTEGER, email TEXT REFERENCES customers (email));"
        "CREATE TABLE notes (id INTEGER, customer INTEGER REFERENCES customers);"
    )
    raw.close()
    conn = _connect(f"sqlite:///{path}", {**POLICY, "masked_columns": {"customers.email": "null"}})
    try:
        with pytest.raises(sqlfence.PolicyViolation, match="references the masked column"):
            conn.execute("INSERT INTO orders VALUES (1, 'x')")
        conn.execute("INSERT INTO notes VALUES (1, 1)")  # its key is customers.id, not masked
    finally:
        conn.close()


@pytest.mark.filterwarnings("ignore::sqlfence.PrivilegeWarning")
def test_postgres_a_nulled_column_keeps_its_type(pg_url: str) -> None:
    """The null masker is NULL of the column's own type: arithmetic on it still works."""
    with psycopg.connect(pg_url, autocommit=True) as admin:
        admin.execute("CREATE TABLE staff (id int, salary int)")
        admin.execute("INSERT INTO staff VALUES (1, 120000)")
    conn = _connect(pg_url, {**POLICY, "masked_columns": {"staff.salary": "null"}})
    try:
        assert conn.execute("SELECT salary + 1, salary FROM staff").fetchall() == [(None, None)]
    finally:
        conn.close()


@pytest.mark.filterwarnings("ignore::sqlfence.PrivilegeWarning")
@pytest.mark.parametrize("dialect", ["sqlite", "postgres"])
def test_a_table_a_masked_column_references_is_not_updated_or_deleted_from(
    dialect: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Deleting a country that a masked row references fails, and so says a masked row holds
    it: the referenced table is read and added to, never updated or deleted from."""
    setup = [
        "CREATE TABLE countries (code TEXT PRIMARY KEY, name TEXT)",
        "INSERT INTO countries VALUES ('NZ', 'New Zealand'), ('FR', 'France')",
        "CREATE TABLE customers (id INTEGER PRIMARY KEY, country TEXT REFERENCES countries)",
        "INSERT INTO customers VALUES (1, 'NZ')",
    ]
    if dialect == "sqlite":
        url = f"sqlite:///{tmp_path / 'keys.db'}"
        with sqlite3.connect(tmp_path / "keys.db") as raw:
            for statement in setup:
                raw.execute(statement)
    else:
        url = request.getfixturevalue("pg_url")
        with psycopg.connect(url, autocommit=True) as admin:
            for statement in setup:
                admin.execute(statement)
    conn = _connect(url, {**POLICY, "masked_columns": {"customers.country": "redact"}})
    try:
        for sql in (
            "DELETE FROM countries WHERE code = 'NZ'",
            "DELETE FROM countries WHERE code = 'FR'",
            "UPDATE countries SET code = 'XX' WHERE code = 'NZ'",
            "UPDATE countries SET name = 'Aotearoa'",
        ):
            with pytest.raises(sqlfence.PolicyViolation, match=r"references \w+\.countries by"):
                conn.execute(sql)
            conn.rollback()
        conn.execute("INSERT INTO countries VALUES ('JP', 'Japan')")
        rows = conn.execute("SELECT code FROM countries ORDER BY code").fetchall()
        assert [tuple(row) for row in rows] == [("FR",), ("JP",), ("NZ",)]
        assert conn.execute("SELECT country FROM customers").fetchall() == [("****",)]
    finally:
        conn.close()


@pytest.mark.filterwarnings("ignore::sqlfence.PrivilegeWarning")
def test_postgres_foreign_keys_of_masked_columns_answer_through_no_other_relation(
    pg_url: str,
) -> None:
    """An updatable view over the referenced table, an upsert, a rule's action and a
    partition with a key of its own were each a way to the foreign key's answer (eleventh
    outside attack)."""
    with psycopg.connect(pg_url, autocommit=True) as admin:
        admin.execute(
            "CREATE TABLE countries (code text PRIMARY KEY, name text);"
            "INSERT INTO countries VALUES ('DE', 'Germany'), ('FR', 'France');"
            "CREATE TABLE cust (id int PRIMARY KEY, email text UNIQUE,"
            " country text REFERENCES countries);"
            "INSERT INTO cust VALUES (1, 'alice@x.com', 'DE');"
            "CREATE VIEW country_list AS SELECT * FROM countries;"
            "CREATE TABLE retire (code text);"
            "CREATE RULE retiring AS ON INSERT TO retire DO ALSO"
            " DELETE FROM countries WHERE code = NEW.code;"
            "CREATE TABLE orders (id int, email text REFERENCES cust (email));"
            "CREATE VIEW orders_v AS SELECT * FROM orders;"
            "CREATE TABLE pp (id int, email text) PARTITION BY RANGE (id);"
            "CREATE TABLE pp1 PARTITION OF pp FOR VALUES FROM (0) TO (100);"
            "ALTER TABLE pp1 ADD FOREIGN KEY (email) REFERENCES cust (email)"
        )
    masks = {"cust.country": "redact", "cust.email": "email"}
    conn = _connect(pg_url, {**POLICY, "masked_columns": masks})
    try:
        for sql in (
            "DELETE FROM country_list WHERE code = 'DE'",
            "UPDATE country_list SET code = 'DX' WHERE code = 'DE'",
            "INSERT INTO countries VALUES ('DE', 'x') ON CONFLICT (code) DO UPDATE SET code = 'DX'",
            "INSERT INTO retire VALUES ('DE')",
            "INSERT INTO orders_v VALUES (1, 'alice@x.com')",
            "INSERT INTO pp VALUES (1, 'alice@x.com')",
        ):
            with pytest.raises(sqlfence.PolicyViolation, match="by a foreign key"):
                conn.execute(sql)
            conn.rollback()
        conn.execute("INSERT INTO countries VALUES ('JP', 'Japan') ON CONFLICT DO NOTHING")
    finally:
        conn.close()


@pytest.mark.filterwarnings("ignore::sqlfence.PrivilegeWarning")
def test_postgres_a_cascade_reaches_no_foreign_key_of_a_masked_column(pg_url: str) -> None:
    """An ON UPDATE CASCADE into a table whose other foreign key references a masked column
    made the database check a guess against the raw value: the update failed for every
    address but the real one (twelfth outside attack). Two hops, an upsert and MERGE too."""
    with psycopg.connect(pg_url, autocommit=True) as admin:
        admin.execute(
            "CREATE TABLE cust (id int PRIMARY KEY, email text UNIQUE);"
            "INSERT INTO cust VALUES (1, 'alice@a.com'), (2, 'bob@b.com');"
            "CREATE TABLE px (id int, e text, PRIMARY KEY (id, e));"
            "CREATE TABLE cy (id int, e text, FOREIGN KEY (id, e) REFERENCES px (id, e)"
            " ON UPDATE CASCADE, FOREIGN KEY (e) REFERENCES cust (email));"
            "INSERT INTO px VALUES (1, 'alice@a.com'); INSERT INTO cy VALUES (1, 'alice@a.com');"
            "CREATE TABLE h1 (e text PRIMARY KEY);"
            "CREATE TABLE h2 (e text PRIMARY KEY REFERENCES h1 ON UPDATE CASCADE);"
            "CREATE TABLE h3 (e text REFERENCES h2 ON UPDATE CASCADE REFERENCES cust (email));"
            "CREATE TABLE plain (e text PRIMARY KEY);"
            "CREATE TABLE plain_child (e text REFERENCES plain ON UPDATE CASCADE)"
        )
    conn = _connect(pg_url, {**POLICY, "masked_columns": {"cust.email": "email"}})
    try:
        for sql in (
            "UPDATE px SET e = 'bob@b.com' WHERE id = 1",
            "UPDATE px SET e = 'rob@b.com' WHERE id = 1",
            "INSERT INTO px VALUES (1, 'alice@a.com') ON CONFLICT (id, e) DO UPDATE SET e = 'x'",
            "MERGE INTO px USING (SELECT 1 AS id) s ON px.id = s.id"
            " WHEN MATCHED THEN UPDATE SET e = 'bob@b.com'",
            "DELETE FROM px WHERE id = 1",
            "UPDATE h1 SET e = 'bob@b.com'",
        ):
            with pytest.raises(sqlfence.PolicyViolation, match="foreign keys would compare"):
                conn.execute(sql)
            conn.rollback()
        conn.execute("INSERT INTO px VALUES (2, 'x')")  # a plain INSERT runs no action
        conn.execute("UPDATE plain SET e = 'y' WHERE e = 'x'")  # no masked key reached
    finally:
        conn.close()


@pytest.mark.filterwarnings("ignore::sqlfence.PrivilegeWarning")
def test_postgres_maskers_take_a_value_of_any_type(pg_url: str) -> None:
    """``c || ''`` is jsonb's and an array's own operator: every read of a jsonb, array or
    bytea column under email, partial or hash failed (twelfth outside attack)."""
    with psycopg.connect(pg_url, autocommit=True) as admin:
        admin.execute(
            "CREATE TABLE docs (id int, body jsonb, tags text[], blob bytea);"
            'INSERT INTO docs VALUES (1, \'{"owner": "alice@x.com", "n": 12345678}\','
            " '{alice@x.com,secret-tag}', '\\x616c696365407831'), (2, NULL, NULL, NULL)"
        )
    for masker in ("email", "partial(0, 4)", "hash", "redact"):
        masks = {f"docs.{column}": masker for column in ("body", "tags", "blob")}
        conn = _connect(pg_url, {**POLICY, "masked_columns": masks})
        try:
            rows = conn.execute("SELECT id, body, tags, blob FROM docs ORDER BY id").fetchall()
            assert rows[1] == (2, None, None, None), masker
            shown = str(rows[0])
            secrets = ["alice@", "616c69636540"]
            if masker != "email":  # which keeps all after the first @, as its domain
                secrets += ["secret-tag", "12345678"]
            assert not [secret for secret in secrets if secret in shown], (masker, shown)
        finally:
            conn.close()


@pytest.mark.filterwarnings("ignore::sqlfence.PrivilegeWarning")
def test_postgres_a_row_value_with_a_null_field_is_masked_as_a_value(pg_url: str) -> None:
    """PostgreSQL's IS NOT NULL is false for a row with one NULL field: the maskers test IS
    NULL, so such a value is redacted, not shown as NULL (eleventh outside attack)."""
    with psycopg.connect(pg_url, autocommit=True) as admin:
        admin.execute(
            "CREATE TYPE address AS (street text, zip text);"
            "CREATE TABLE people (id int, home address);"
            "INSERT INTO people VALUES (1, ('main st', '12345')), (2, ('main st', NULL)),"
            " (3, NULL)"
        )
    for masker in ("redact", "email", "partial(0, 2)"):
        conn = _connect(pg_url, {**POLICY, "masked_columns": {"people.home": masker}})
        try:
            rows = conn.execute("SELECT id, home FROM people ORDER BY id").fetchall()
            shown = {row[0]: row[1] for row in rows}
            assert shown[3] is None, masker
            assert shown[1] is not None, (masker, shown)
            assert shown[2] is not None, (masker, shown)
            assert "12345" not in str(shown), masker
        finally:
            conn.close()


@pytest.mark.filterwarnings("ignore::sqlfence.PrivilegeWarning")
def test_postgres_relations_named_like_the_catalog_and_sequences(pg_url: str) -> None:
    """The owner's public.pg_rov read unqualified was judged as pg_catalog's and returned
    every row unmasked; public.pg_archive escaped a *.tenant_id filter; a sequence read
    directly counted every tenant's ids (thirteenth outside attack)."""
    with psycopg.connect(pg_url, autocommit=True) as admin:
        admin.execute(
            "CREATE TABLE rorders (id serial PRIMARY KEY, tenant_id text, note text);"
            "INSERT INTO rorders (tenant_id, note) VALUES ('A', 'a1'), ('B', 'b-secret');"
            "CREATE TABLE rcust (id int PRIMARY KEY, email text);"
            "INSERT INTO rcust VALUES (1, 'alice@a.com');"
            "CREATE VIEW pg_rov AS SELECT * FROM rorders;"
            "CREATE VIEW pg_rcv AS SELECT * FROM rcust;"
            "CREATE TABLE pg_archive (id int, tenant_id text, secret text);"
            "INSERT INTO pg_archive VALUES (1, 'A', 'a'), (2, 'B', 'b-archived')"
        )
    policy = {
        **POLICY,
        "allow_system_catalog": True,
        "row_filters": {"*.tenant_id": "tenant_id = :tenant"},
        "masked_columns": {"rcust.email": "email"},
    }
    conn = sqlfence.connect(pg_url, policy=policy, tenant="A", audit=False, telemetry=False)
    try:
        for sql, why in (
            ("SELECT * FROM pg_rov", "name it with its schema"),
            ("SELECT * FROM pg_rcv", "name it with its schema"),
            ("SELECT * FROM public.pg_rov", "reads public.rorders"),
            ("SELECT * FROM pg_archive", "name it with its schema"),
            ("SELECT last_value FROM rorders_id_seq", "not a table or view the connection"),
        ):
            with pytest.raises(sqlfence.PolicyViolation, match=why):
                conn.execute(sql)
            conn.rollback()
        rows = conn.execute("SELECT id, secret FROM public.pg_archive").fetchall()
        assert [tuple(row) for row in rows] == [(1, "a")]
    finally:
        conn.close()


@pytest.mark.filterwarnings("ignore::sqlfence.PrivilegeWarning")
def test_postgres_denied_columns_show_in_no_error_or_statistics(pg_url: str) -> None:
    """A NOT NULL or CHECK error's detail ("Failing row contains (1, ann, -1, hunter2)")
    showed a denied column, and pg_stats its values, with the catalog allowed (fourteenth
    outside attack)."""
    with psycopg.connect(pg_url, autocommit=True) as admin:
        admin.execute(
            "CREATE TABLE staff (id int PRIMARY KEY, name text, salary int CHECK (salary > 0),"
            " pw text); INSERT INTO staff VALUES (1, 'ann', 100, 'hunter2'), (2, 'bob', 200,"
            " 'pw2'); ANALYZE staff"
        )
    policy = {"read_only": False, "denied_columns": ["staff.pw"], "allow_system_catalog": True}
    conn = _connect(pg_url, policy)
    try:
        for sql in ("UPDATE staff SET id = NULL WHERE id = 2", "UPDATE staff SET salary = -1"):
            with pytest.raises(sqlfence.IntegrityError) as raised:
                conn.execute(sql)
            conn.rollback()
            cause = raised.value.__cause__
            shown = f"{raised.value} {cause} {cause.diag.message_detail}"  # type: ignore[union-attr]
            assert "hunter2" not in shown
            assert "pw2" not in shown
        with pytest.raises(sqlfence.PolicyViolation, match="statistics of every row"):
            conn.execute("SELECT histogram_bounds::text FROM pg_stats WHERE tablename = 'staff'")
    finally:
        conn.close()


@pytest.mark.filterwarnings("ignore::sqlfence.PrivilegeWarning")
def test_postgres_the_agents_temporary_table_is_read_under_filters(pg_url: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as admin:
        admin.execute(
            "CREATE TABLE orders (id int, tenant_id text); INSERT INTO orders VALUES (1, 'A')"
        )
    policy = {
        "read_only": False,
        "statements": ["*"],
        "row_filters": {"orders": "tenant_id = :tenant"},
    }
    conn = sqlfence.connect(pg_url, policy=policy, tenant="A", audit=False, telemetry=False)
    try:
        conn.execute("CREATE TEMP TABLE mine AS SELECT id FROM orders")
        assert [tuple(row) for row in conn.execute("SELECT id FROM mine").fetchall()] == [(1,)]
    finally:
        conn.close()

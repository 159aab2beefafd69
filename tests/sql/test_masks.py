"""Column masks, the pure parts: masker texts, keys, the maskers' SQL, and what a write may do
(``sqlfence/sql/masks.py``). The executed oracle is tests/policies/test_masks_execution.py."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
import yaml

from sqlfence.errors import PolicyError
from sqlfence.policies.engine import Guard
from sqlfence.policies.model import Policy
from sqlfence.sql.masks import (
    SQLITE_HASH_FUNCTION,
    Mask,
    MaskError,
    check_key,
    masked_value,
    parse_masker,
    sha256_text,
)

CASES: dict[str, Any] = yaml.safe_load(
    (Path(__file__).parent / "data" / "maskers.yaml").read_text()
)


@pytest.mark.parametrize(("text", "spelled"), CASES["valid"])
def test_a_masker_is_read_as_written(text: Any, spelled: str) -> None:
    assert parse_masker("t.c", "null" if text is None else text).spelled == spelled


@pytest.mark.parametrize("text", CASES["invalid"])
def test_an_unknown_masker_is_refused_naming_the_known_ones(text: str) -> None:
    with pytest.raises(MaskError, match="known: null, redact, email, hash, partial"):
        parse_masker("t.c", text)


@pytest.mark.parametrize("key", CASES["keys_valid"])
def test_a_key_names_a_column(key: str) -> None:
    check_key(key)


@pytest.mark.parametrize("key", CASES["keys_invalid"])
def test_a_key_that_names_no_column_is_refused(key: str) -> None:
    with pytest.raises(MaskError):
        check_key(key)


def test_a_policy_with_a_bad_mask_is_refused_naming_the_key() -> None:
    with pytest.raises(ValueError, match=r"masked_columns\['customers.email'\]: unknown masker"):
        Policy(masked_columns={"customers.email": "scramble"})
    with pytest.raises(ValueError, match=r"masked_columns\['email'\]"):
        Policy(masked_columns={"email": "null"})


def test_a_policy_file_with_a_bad_mask_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("masked_columns:\n  customers.email: scramble\n")
    with pytest.raises(PolicyError, match=r"p\.yaml"):
        Guard(str(path))


EDGES = ["zoe@x.io", "@lead", "plain", "a@", "ab", "abcdef", "abcdefg", "", "ünïcødé@ß.de", None]


@pytest.mark.parametrize(
    "mask",
    [
        Mask("k", "email"),
        Mask("k", "partial", (1, 2)),
        Mask("k", "redact"),
        Mask("k", "null"),
        Mask("k", "hash"),
    ],
)
def test_the_sqlite_masker_keeps_nothing_it_should_not(mask: Mask) -> None:
    """Each masker on SQLite, on edge values: the masked value holds none of the hidden part."""
    connection = sqlite3.connect(":memory:")
    connection.create_function(SQLITE_HASH_FUNCTION, 1, sha256_text, deterministic=True)
    connection.execute("CREATE TABLE t (c)")
    connection.executemany("INSERT INTO t VALUES (?)", [(v,) for v in EDGES])
    sql = f"SELECT c, {masked_value('c', mask, 'sqlite').sql(dialect='sqlite')} FROM t"
    for raw, masked in connection.execute(sql).fetchall():
        if raw is None or mask.kind == "null":
            assert masked is None
        elif mask.kind == "redact":
            assert masked == "****"
        elif mask.kind == "hash":
            assert masked == sha256_text(raw)
            assert len(masked) == 64
        elif mask.kind == "email":
            at = raw.find("@")
            assert masked == (raw[0] + "***@" + raw[at + 1 :] if at > 0 else "****")
        else:
            assert masked == (raw[:1] + "****" + raw[-2:] if len(raw) >= 7 else "****")


def test_the_hash_masker_is_refused_where_the_database_has_none() -> None:
    from sqlfence.sql.masks import MaskRefused

    with pytest.raises(MaskRefused, match="not available on iris"):
        masked_value("c", Mask("k", "hash"), "iris")


def test_the_iris_maskers_are_written_in_its_sql() -> None:
    """Written to the IRIS SQL reference (not run here): SUBSTRING, INSTR, LENGTH, ||."""
    sql = masked_value("Email", Mask("k", "email"), "iris").sql()
    assert "INSTR" in sql
    assert "SUBSTRING" in sql
    assert "|| ''" in sql  # the column as text

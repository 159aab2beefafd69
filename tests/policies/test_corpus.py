"""The decision corpus (data/*.yaml): every statement's verdict under its named policy."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from tests.policies import (
    CHECKS,
    DIALECTS,
    RULES,
    Case,
    data_files,
    fresh_guard,
    load_corpus,
    params,
    policies_of,
)

CORPUS = load_corpus()

# Every bypass class of REFERENCE.md ("Statements a firewall must not let through") must
# keep at least one denied case per listed dialect: (class, dialects, pattern on the SQL).
BYPASS_CLASSES = (
    ("DML inside a CTE", DIALECTS, r"WITH \w+ AS \((DELETE|UPDATE|INSERT)"),
    ("unreferenced DML CTE", ("postgres",), r"AS \(DELETE .*\) SELECT 1\b"),
    ("SELECT ... INTO", ("postgres",), r"^SELECT .* INTO \w+ FROM"),
    ("several statements", DIALECTS, r"SELECT 1; COMMIT; DROP TABLE users"),
    ("empty input", DIALECTS, r"^\s*$"),
    ("comment-only input", DIALECTS, r"^\s*(--|/\*)[^\n]*$"),
    ("MySQL executable comment", DIALECTS, r"/\*!"),
    ("quoted name", DIALECTS, r'FROM "secrets"'),
    ("mixed-case name", DIALECTS, r"FROM SeCrEtS"),
    ("schema-qualified name", ("postgres",), r"FROM public\.secrets"),
    ("schema-qualified name", ("sqlite",), r"FROM main\.secrets"),
    ("schema pattern", DIALECTS, r"audit\.log"),
    ("UNION arm", DIALECTS, r"UNION (ALL )?SELECT .* FROM secrets"),
    ("subquery in WHERE", DIALECTS, r"WHERE .*\(SELECT .* FROM secrets"),
    ("subquery in SELECT", DIALECTS, r"^SELECT \(SELECT .* FROM secrets"),
    ("subquery in HAVING", DIALECTS, r"HAVING .*\(SELECT .* FROM secrets"),
    ("LATERAL", ("postgres",), r"LATERAL"),
    ("CTE body reaching a denied table", DIALECTS, r"WITH \w+ AS \(SELECT .* FROM secrets\)"),
    ("pg_read_file", ("postgres",), r"\bpg_read_file\("),
    ("pg_catalog.pg_read_file", ("postgres",), r"pg_catalog\.pg_read_file"),
    ("quoted function name", ("postgres",), r'"pg_read_file"\('),
    ("lo_export", ("postgres",), r"\blo_export\("),
    ("dblink", ("postgres",), r"\bdblink\("),
    ("pg_sleep", ("postgres",), r"\bpg_sleep\("),
    ("nextval", ("postgres",), r"\bnextval\("),
    ("set_config", ("postgres",), r"\bset_config\("),
    ("query_to_xml", ("postgres",), r"\bquery_to_xml\("),
    ("load_extension", ("sqlite",), r"\bload_extension\("),
    ("readfile", ("sqlite",), r"\breadfile\("),
    ("table-valued function", DIALECTS, r"FROM \w+\(.*(secrets|/etc/passwd)"),
    ("COPY ... TO PROGRAM", ("postgres",), r"COPY .* TO PROGRAM"),
    ("CALL", ("postgres",), r"^CALL "),
    ("EXECUTE", ("postgres",), r"^EXECUTE "),
    ("DO $$", ("postgres",), r"^DO \$\$"),
    ("SET ROLE", ("postgres",), r"^SET ROLE"),
    ("SET search_path", ("postgres",), r"^SET search_path"),
    ("PRAGMA", ("sqlite",), r"^PRAGMA"),
    ("ATTACH DATABASE", ("sqlite",), r"^ATTACH DATABASE"),
    ("EXPLAIN ANALYZE <dml>", ("postgres",), r"^EXPLAIN ANALYZE (DELETE|UPDATE|INSERT)"),
    ("SELECT ... FOR UPDATE", ("postgres",), r"FOR UPDATE"),
)


def test_corpus_is_large_and_well_formed() -> None:
    """At least 250 cases over both dialects; rules, checks and policy names all exist."""
    assert len(CORPUS) >= 250
    per_dialect = Counter(case.dialect for case in CORPUS)
    assert set(per_dialect) == set(DIALECTS)
    assert min(per_dialect.values()) >= 100
    assert sum(case.allowed for case in CORPUS) >= 100
    for case in CORPUS:
        assert case.policy_name in policies_of(case.file), case.id
        assert set(case.rules) <= RULES, case.id
        assert set(case.xfail) <= CHECKS, case.id
        assert case.allowed or case.rules or "decide" in case.xfail, f"{case.id}: name a rule"
        assert isinstance(case.sql, str), case.id
    assert len({case.id for case in CORPUS}) == len(CORPUS)
    assert set(data_files()) >= {"sqlite", "postgres", "bypasses"}


@pytest.mark.parametrize(("name", "dialects", "pattern"), BYPASS_CLASSES, ids=str)
def test_every_bypass_class_has_a_denied_case(
    name: str, dialects: tuple[str, ...], pattern: str
) -> None:
    """Each REFERENCE.md bypass class keeps a denied case in the corpus for its dialects."""
    regex = re.compile(pattern, re.IGNORECASE | re.DOTALL)
    for dialect in dialects:
        hits = [
            case
            for case in CORPUS
            if case.dialect == dialect and not case.allowed and regex.search(case.sql)
        ]
        assert hits, f"no denied {dialect} case for bypass class {name!r} ({pattern})"


@pytest.mark.parametrize("case", params("decide", CORPUS))
def test_decision(case: Case) -> None:
    """The verdict, the rules named, the facts and the final SQL are the expected ones."""
    decision = case.guard().decide(case.sql)
    rules = [reason.rule for reason in decision.reasons]
    assert decision.allowed is case.allowed, decision.explain()
    if case.allowed:
        assert bool(rules) is bool(case.detected), decision.explain()
    else:
        assert decision.explain().startswith("denied"), decision.explain()
        assert decision.sql == case.sql, "a denied statement is never rewritten"
    missing = [rule for rule in case.rules if rule not in rules]
    assert not missing, f"expected rules {missing} among {rules}: {decision.explain()}"
    if case.detected is not None:
        assert decision.detected is case.detected
    if case.tables is not None:
        assert tuple(sorted(decision.facts.tables)) == case.tables
    if case.operation is not None:
        assert decision.facts.operation == case.operation
    if case.final_sql is not None:
        assert decision.sql == case.final_sql
    if case.rewritten is not None:
        assert decision.rewritten is case.rewritten, decision.sql


@pytest.mark.parametrize("case", params("stable", [c for c in CORPUS if c.allowed]))
def test_allowed_final_sql_is_stable(case: Case) -> None:
    """What is allowed, judged again as rewritten by a fresh Guard (the first one caches its
    own output as allowed), is allowed as is with the same tables."""
    first = case.guard().decide(case.sql)
    second = fresh_guard(case).decide(first.sql)
    assert second.allowed, second.explain()
    assert bool(second.reasons) is bool(first.reasons), second.explain()
    assert second.rewritten is False, f"rewritten twice: {first.sql!r} -> {second.sql!r}"
    assert second.facts.tables == first.facts.tables

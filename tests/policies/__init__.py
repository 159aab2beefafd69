"""The policy decision corpus (data/*.yaml): loading, expansion and one Guard per policy.

Each data file names its policies and lists cases. A case is one SQL text (or a list of
texts sharing the same expectations) judged under one named policy in one dialect (or in
several), with the expected verdict and, for denials, the rules that must be among the
reasons.

Case keys: ``sql`` (a text or a list), ``policy``, ``allowed``, ``rules`` (each must be among
the reasons), ``dialect`` (default: the file's), optional ``id``, ``tables`` (unqualified
names get the dialect's default schema), ``operation``, ``final_sql``, ``rewritten``,
``detected``, ``params`` (bound when executed), ``engine_denies`` (allowed by the fence but
refused by the database layer: executing it must raise and change nothing), ``volatile``
(results differ between runs: not compared), ``note`` (free text), ``xfail``.

``xfail`` maps a check (``decide``, ``stable``, ``execution``) to the reason it fails today:
a library bug, kept visible until it is fixed. A plain string is the reason for ``decide``;
the other checks inherit it unless they are given (``null``: that check passes). A policy
may give ``allowlist_sql``, turned into the dialect's fingerprints.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from sqlfence import Guard, databases
from sqlfence.sql.fingerprint import fingerprint

DATA = Path(__file__).parent / "data"
DIALECTS = ("sqlite", "postgres")
DEFAULT_SCHEMAS = {dialect: databases.profile(dialect).default_schema for dialect in DIALECTS}
RULES = frozenset(
    {
        "unparsed",
        "multiple_statements",
        "statements",
        "read_only",
        "denied_tables",
        "allowed_tables",
        "denied_columns",
        "denied_functions",
        "allowed_functions",
        "allowlist",
        "max_statement_length",
        "unresolved_table",
        "system_catalog",
        "engine_reading",
        "input",
        "session_settings",
        "attach",
        "routines",
        "row_filters",
        "masked_columns",
    }
)
CHECKS = frozenset({"decide", "stable", "execution"})
_CASE_KEYS = frozenset(
    {
        "id",
        "sql",
        "dialect",
        "policy",
        "allowed",
        "rules",
        "tables",
        "operation",
        "final_sql",
        "rewritten",
        "detected",
        "engine_denies",
        "volatile",
        "params",
        "xfail",
        "note",
    }
)


@dataclass(frozen=True)
class Case:
    """One statement, one policy, one dialect, and what the fence must decide."""

    id: str
    file: str
    dialect: str
    policy_name: str
    sql: str
    allowed: bool
    rules: tuple[str, ...] = ()
    tables: tuple[str, ...] | None = None
    operation: str | None = None
    final_sql: str | None = None
    rewritten: bool | None = None
    detected: bool | None = None
    engine_denies: bool = False
    volatile: bool = False
    params: tuple[Any, ...] | None = None
    xfail: Mapping[str, str] = field(default_factory=dict)

    @property
    def policy(self) -> dict[str, Any]:
        """The policy mapping this case is judged under (for ``Guard`` or ``connect``)."""
        return policy_mapping(self.file, self.policy_name, self.dialect)

    def guard(self) -> Guard:
        """The shared Guard for this case's file, policy and dialect."""
        return guard_for(self.file, self.policy_name, self.dialect)


@functools.cache
def _files() -> dict[str, dict[str, Any]]:
    return {
        path.stem: yaml.safe_load(path.read_text(encoding="utf-8"))
        for path in sorted(DATA.glob("*.yaml"))
    }


def policy_mapping(file: str, name: str, dialect: str) -> dict[str, Any]:
    """A named policy of a data file; ``allowlist_sql`` becomes that dialect's fingerprints."""
    spec = dict(_files()[file]["policies"][name] or {})
    statements = spec.pop("allowlist_sql", None)
    if statements is not None:
        spec["allowlist"] = [fingerprint(sql, dialect) for sql in statements]
    return spec


def fresh_guard(case: Case) -> Guard:
    """A new Guard for ``case`` with nothing cached (to judge a guard's own output again)."""
    return Guard(policy_mapping(case.file, case.policy_name, case.dialect), dialect=case.dialect)


@functools.cache
def guard_for(file: str, name: str, dialect: str) -> Guard:
    """One Guard per (file, policy, dialect), built the way ``connect`` builds it."""
    return Guard(policy_mapping(file, name, dialect), dialect=dialect)


def _xfail(raw: str | Mapping[str, str | None] | None) -> dict[str, str]:
    """A wrong decision also fails the stability and execution checks unless they say null."""
    given = {"decide": raw} if isinstance(raw, str) else dict(raw or {})
    decide = given.get("decide")
    checks = {check: given.get(check, decide) for check in CHECKS}
    return {check: reason for check, reason in checks.items() if reason}


def _qualify(table: str, dialect: str) -> str:
    return table if "." in table else f"{DEFAULT_SCHEMAS[dialect]}.{table}"


def _slug(sql: str) -> str:
    return re.sub(r"\s+", " ", sql).strip()[:80] or "<empty>"


def _expand(file: str, default_dialect: Any, raw: Mapping[str, Any]) -> list[Case]:
    unknown = set(raw) - _CASE_KEYS
    if unknown:
        raise ValueError(f"{file}: unknown case keys {sorted(unknown)} in {raw!r}")
    texts = raw["sql"] if isinstance(raw["sql"], list) else [raw["sql"]]
    dialects = raw.get("dialect", default_dialect)
    dialects = list(dialects) if isinstance(dialects, list) else [dialects]
    xfail = _xfail(raw.get("xfail"))
    cases = []
    for dialect in dialects:
        for text in texts:
            label = _slug(text)
            if raw.get("id"):
                label = raw["id"] if len(texts) == 1 else f"{raw['id']}: {label[:50]}"
            where = dialect if file == dialect else f"{file}:{dialect}"
            tables = raw.get("tables")
            params = raw.get("params")
            cases.append(
                Case(
                    id=f"{where}:{raw['policy']}:{label}",
                    file=file,
                    dialect=dialect,
                    policy_name=raw["policy"],
                    sql=text,
                    allowed=raw["allowed"],
                    rules=tuple(raw.get("rules") or ()),
                    tables=None
                    if tables is None
                    else tuple(sorted(_qualify(t, dialect) for t in tables)),
                    operation=raw.get("operation"),
                    final_sql=raw.get("final_sql"),
                    rewritten=raw.get("rewritten"),
                    detected=raw.get("detected"),
                    engine_denies=bool(raw.get("engine_denies", False)),
                    volatile=bool(raw.get("volatile", False)),
                    params=None if params is None else tuple(params),
                    xfail=dict(xfail),
                )
            )
    return cases


@functools.cache
def load_corpus() -> tuple[Case, ...]:
    """Every case of every data file, expanded per dialect and per SQL text, ids unique."""
    cases: list[Case] = []
    for file, content in _files().items():
        for raw in content["cases"]:
            cases.extend(_expand(file, content.get("dialect", list(DIALECTS)), raw))
    seen: dict[str, int] = {}
    unique = []
    for case in cases:
        count = seen.get(case.id, 0) + 1
        seen[case.id] = count
        unique.append(case if count == 1 else replace(case, id=f"{case.id} #{count}"))
    return tuple(unique)


def params(check: str, cases: Iterable[Case]) -> list[Any]:
    """pytest params of ``cases``, each marked strict xfail where ``check`` is known to fail."""
    marked = []
    for case in cases:
        reason = case.xfail.get(check)
        marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
        marked.append(pytest.param(case, id=case.id, marks=marks))
    return marked


def policies_of(file: str) -> Mapping[str, Any]:
    """The named policies a data file defines."""
    return dict(_files()[file]["policies"])


def data_files() -> tuple[str, ...]:
    """The data files' names (stems)."""
    return tuple(_files())

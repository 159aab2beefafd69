"""The policy rules: small functions over a statement's facts, run in order by the Guard.

Each rule yields the ``Violation``s it finds; the Guard runs only the rules that can fire under
its policy, in the manner of sqlglot's optimizer rules.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase

from sqlfence import databases
from sqlfence.policies.measuring import measures
from sqlfence.policies.model import Policy
from sqlfence.policies.server_code import ServerCode, defines_code
from sqlfence.policies.tables import (
    TableSet,
    is_catalog_function,
    is_catalog_table,
    is_statistics_table,
    table_matches,
)
from sqlfence.sql.analysis import StatementFacts
from sqlfence.sql.functions import canonical
from sqlfence.sql.postgres_grammar import EngineReading
from sqlfence.sql.size import token_count

_READ_OPERATIONS = frozenset({"select"})
_NOT_STATEMENTS = frozenset({"unparsed", "empty"})  # the unparsed rule has said why


@dataclass(frozen=True)
class Violation:
    """One broken rule: which rule, what a person should read, and where the policy says so."""

    rule: str
    message: str
    location: str | None = None

    def __str__(self) -> str:
        return f"{self.message} (policy {self.location})" if self.location else self.message


@dataclass(frozen=True)
class Patterns:
    """The policy's names, normalised and qualified the way the dialect compares them."""

    allowed_set: TableSet | None
    denied_set: TableSet
    denied_columns: tuple[tuple[tuple[str, ...], str], ...]
    denied_functions: frozenset[str]
    denied_rule: Callable[[str], bool] | None
    allowed_functions: frozenset[str] | None
    allowlist: frozenset[str]
    origins: Mapping[str, str]
    dialect: str
    # view -> every table it reads, directly or through other views (from the catalog)
    views: Mapping[str, frozenset[str]]
    # view -> every (table, column) it reads, directly or through other views
    view_columns: Mapping[str, frozenset[tuple[str, str]]] = field(default_factory=dict)
    # table or view -> its columns, lower-cased (from the catalog; a table not here is unknown)
    table_columns: Mapping[str, frozenset[str]] = field(default_factory=dict)
    # table -> generated column -> the columns it is computed from (lower-cased)
    generated_columns: Mapping[str, Mapping[str, frozenset[str]]] = field(default_factory=dict)
    # the database's own code, and every path into it (PostgreSQL)
    server_code: ServerCode = field(default_factory=ServerCode)
    # a table holding another's rows (partition, inheritance child, shadow table) -> its owners
    part_of: Mapping[str, frozenset[str]] = field(default_factory=dict)

    @property
    def allowed_tables(self) -> tuple[tuple[str, ...], ...] | None:
        """The allow list's qualified patterns; None when any table is allowed."""
        return None if self.allowed_set is None else self.allowed_set.patterns

    @property
    def denied_tables(self) -> tuple[tuple[str, ...], ...]:
        """The deny list's qualified patterns."""
        return self.denied_set.patterns

    @property
    def has_table_rules(self) -> bool:
        """True when the policy allows or denies tables (so every table must be known)."""
        return bool(self.denied_set) or self.allowed_set is not None


@dataclass(frozen=True)
class Context:
    """What a rule judges: the text, its facts, the policy and the policy's compiled names."""

    sql: str
    facts: StatementFacts
    policy: Policy
    patterns: Patterns
    # The database's own reading of the text, where its grammar is a library (PostgreSQL),
    # and the fence's statement kinds, one per statement, to compare with it.
    engine: EngineReading | None = None
    kinds: tuple[str, ...] = ()

    def engine_functions(self) -> frozenset[str]:
        """Functions the database's grammar sees that the fence's facts do not name."""
        if self.engine is None:
            return frozenset()
        return frozenset(canonical(name) for name in self.engine.functions) - self.facts.functions


Rule = Callable[[Context], Iterator[Violation]]


def _violation(ctx: Context, rule: str, message: str, *, key: str | None = None) -> Violation:
    """A violation of ``rule``, located at the policy ``key`` behind it (default: the rule's)."""
    # Only a key the policy sets has a line to point at; a default is nobody's line.
    return Violation(rule, message, ctx.patterns.origins.get(key or rule))


def statement_length(ctx: Context) -> Iterator[Violation]:
    """Refuse texts longer than ``max_statement_length`` before parsing them."""
    limit = ctx.policy.max_statement_length
    if len(ctx.sql) > limit:
        yield _violation(
            ctx,
            "max_statement_length",
            f"statement is {len(ctx.sql)} characters, over the limit of {limit}",
        )


def statement_tokens(ctx: Context) -> Iterator[Violation]:
    """Refuse texts with more than ``max_statement_tokens`` tokens before parsing them."""
    limit = ctx.policy.max_statement_tokens
    if token_count(ctx.sql, limit) > limit:
        yield _violation(
            ctx,
            "max_statement_tokens",
            f"statement has more than {limit} tokens (max_statement_tokens): too costly to judge",
        )


def unparsed(ctx: Context) -> Iterator[Violation]:
    """Fail closed on what the parser did not understand."""
    if ctx.facts.unparsed and not ctx.policy.allow_unparsed:
        yield _violation(
            ctx, "unparsed", f"not understood: {ctx.facts.unparsed}", key="allow_unparsed"
        )


_AGREED_KINDS = frozenset({"select", "insert", "update", "delete", "merge"})


def engine_reading(ctx: Context) -> Iterator[Violation]:
    """The database must read the text as the fence did: statements, kinds and tables.

    The engine's reading is the truth: a text the two read differently is denied, whichever
    reading would have been allowed.
    """
    engine = ctx.engine
    if engine is None:
        return
    if engine.error is not None:
        yield _engine_violation(ctx, f"PostgreSQL's grammar rejects it: {engine.error}")
        return
    if engine.statement_count != len(ctx.kinds):
        yield _engine_violation(
            ctx,
            f"PostgreSQL reads {engine.statement_count} statement(s) here, "
            f"the fence {len(ctx.kinds)}",
        )
        return
    for theirs, ours in zip(engine.kinds, ctx.kinds, strict=True):
        if theirs != ours and (theirs in _AGREED_KINDS or ours in _AGREED_KINDS):
            yield _engine_violation(
                ctx, f"PostgreSQL reads a {theirs} statement where the fence read a {ours}"
            )
            return
    tables = ctx.facts.tables
    for table in sorted(engine.tables - tables):
        yield _engine_violation(ctx, f"PostgreSQL reads table {table}, which the fence did not")
    if all(kind in _AGREED_KINDS for kind in engine.kinds):
        for table in sorted(tables - engine.tables):
            yield _engine_violation(
                ctx, f"the fence read table {table}, which PostgreSQL does not read"
            )


def _engine_violation(ctx: Context, message: str) -> Violation:
    return Violation("engine_reading", message)


def executable_comment(ctx: Context) -> Iterator[Violation]:
    """MySQL runs ``/*! ... */`` as code while parsers read it as a comment."""
    if "/*!" in ctx.sql and not ctx.policy.allow_unparsed:
        yield _violation(
            ctx, "unparsed", "executable comment /*! ... */ is not allowed", key="allow_unparsed"
        )


def statement_count(ctx: Context) -> Iterator[Violation]:
    """One statement per call unless the policy allows more."""
    count = ctx.facts.statement_count
    if count > 1 and not ctx.policy.allow_multiple_statements:
        yield _violation(
            ctx,
            "multiple_statements",
            f"{count} statements in one call; only one is allowed",
            key="allow_multiple_statements",
        )


def statement_kind(ctx: Context) -> Iterator[Violation]:
    """Only the statement kinds the policy names."""
    for operation in ctx.facts.operations:
        if operation not in _NOT_STATEMENTS and not ctx.policy.allows_statement(operation):
            allowed = ", ".join(ctx.policy.statements)
            yield _violation(
                ctx,
                "statements",
                f"{operation.upper()} statements are not allowed (allowed: {allowed})",
            )


def read_only(ctx: Context) -> Iterator[Violation]:
    """In read-only mode nothing anywhere in the tree may write, create or lock."""
    if not ctx.policy.read_only or ctx.facts.operation in _NOT_STATEMENTS:
        return
    facts = ctx.facts
    if facts.writes or any(op not in _READ_OPERATIONS for op in facts.operations):
        if facts.into:
            what = "SELECT ... INTO creates a table"
        elif facts.operation in _READ_OPERATIONS:
            what = "the statement contains a write"
        else:
            what = f"{facts.operation.upper()} writes"
        if facts.written:
            what += " (" + ", ".join(sorted(facts.written)) + ")"
        yield _violation(ctx, "read_only", f"read-only policy: {what}")
    elif facts.locks:
        yield _violation(ctx, "read_only", "read-only policy: locking clause")


def session_settings(ctx: Context) -> Iterator[Violation]:
    """A SET may change only the settings the database's profile lists as harmless: the
    fence pins how the server reads text (PostgreSQL's standard_conforming_strings), where
    names resolve (search_path), who the session is and the limits it set, and a SET of one
    of those would make the server read what the fence judged otherwise."""
    names = ctx.facts.extra.get("settings")
    if not names:
        return
    database = databases.find(ctx.patterns.dialect)
    settable = database.settable if database is not None else frozenset()
    pinned = frozenset[str]()
    if database is not None and (ctx.policy.row_filters or ctx.policy.masked_columns):
        # how the session reads a literal and writes a value as text: a row filter's
        # '2024-03-01' would take other rows, a partial mask another part of a date
        pinned = database.reading_settings
    if database is not None and ctx.policy.masked_columns:
        pinned = pinned | database.planner_settings  # an index scan's order ranks rows
    for name in dict.fromkeys(names):  # type: ignore[call-overload]
        if name not in settable - pinned:
            what = "this form of SET" if name == "?" else f"the setting {name}"
            if name in pinned and database is not None and name in database.planner_settings:
                why = (
                    "under masks the session scans no index, whose order would rank rows "
                    "by a masked value"
                )
            elif name in pinned:
                why = (
                    "under row filters or masks it would change how the filters' literals "
                    "read and what the maskers see as a value's text"
                )
            else:
                why = (
                    "the fence pins how the session reads statements and names, who it is and "
                    "its limits (timezone, datestyle and planner settings may be set)"
                )
            yield _violation(
                ctx, "session_settings", f"{what} may not be changed: {why}", key="statements"
            )


def routines(ctx: Context) -> Iterator[Violation]:
    """Under row filters or masks, none of the database's own code runs: a function's body
    reads what it likes, with the caller's rights (a function returning SETOF customers
    gives every tenant's rows, unmasked), and the fence cannot see inside it. It is reached
    by a call, and also by an operator, a cast, a domain, a view, a trigger ... (see
    ``ServerCode``)."""
    if not (ctx.policy.row_filters or ctx.policy.masked_columns):
        return
    engine = ctx.engine
    facts = ctx.facts
    refusal = None if engine is None else defines_code(engine)
    if refusal is not None:
        key = "row_filters" if ctx.policy.row_filters else "masked_columns"
        yield _violation(ctx, "routines", refusal, key=key)
        return
    code = ctx.patterns.server_code
    if not code:
        return
    tables = facts.tables if engine is None else facts.tables | engine.tables
    reached = code.reached(engine, facts.functions, tables, facts.written, facts.is_ddl)
    if reached is not None:
        yield routine_violation(ctx.policy, ctx.patterns, reached)


def routine_violation(policy: Policy, patterns: Patterns, reached: str) -> Violation:
    """The ``routines`` refusal for what of the database's own code a text reaches."""
    key = "row_filters" if policy.row_filters else "masked_columns"
    return Violation(
        "routines",
        f"{reached}: that code may read any table whole, which row filters and masks cannot "
        "reach, so it does not run under them",
        patterns.origins.get(key),
    )


def attach(ctx: Context) -> Iterator[Violation]:
    """Under table rules, no ATTACH (SQLite): an attached database brings tables, views and
    schema names the fence's catalog does not know (the same file attached again is every
    table under a new schema name, its views unread)."""
    if "attach" in ctx.facts.operations and (
        ctx.patterns.has_table_rules
        or ctx.patterns.denied_columns
        or ctx.policy.row_filters
        or ctx.policy.masked_columns
    ):
        yield _violation(
            ctx,
            "attach",
            "ATTACH is not allowed under table, column, row-filter or mask rules: the fence "
            "knows the tables and views of the databases open when the connection was made",
            key="statements",
        )


def tables(ctx: Context) -> Iterator[Violation]:
    """Denied tables never; when an allow list is set, nothing outside it."""
    patterns = ctx.patterns
    denied, allowed = patterns.denied_set, patterns.allowed_set
    for table in sorted(ctx.facts.tables):
        if denied and denied.matches(table, loose=True):
            yield _violation(ctx, "denied_tables", f"table {table} is on the deny list")
            continue
        owner = next(
            (o for o in sorted(patterns.part_of.get(table, ())) if denied.matches(o, True)), None
        )
        if owner is not None:
            yield _violation(
                ctx,
                "denied_tables",
                f"table {table} holds rows of {owner} (a partition, inheritance child or shadow "
                "table), which is on the deny list",
            )
            continue
        hidden = next(
            (base for base in sorted(patterns.views.get(table, ())) if denied.matches(base, True)),
            None,
        )
        if hidden is not None:
            yield _violation(
                ctx, "denied_tables", f"{table} reads {hidden}, which is on the deny list"
            )
        elif allowed is not None and not allowed.matches(table, loose=False):
            yield _violation(ctx, "allowed_tables", f"table {table} is not on the allow list")
    for type_name in sorted(ctx.facts.types):
        if denied and denied.matches(type_name, loose=True):
            yield _violation(
                ctx,
                "denied_tables",
                f"the row type of table {type_name} is on the deny list (it names its columns)",
            )
    if ctx.facts.unresolved and patterns.has_table_rules:
        key = "allowed_tables" if allowed is not None else "denied_tables"
        for what in ctx.facts.unresolved:
            yield _violation(
                ctx,
                "unresolved_table",
                f"cannot tell which table an implicit join reads ({what})",
                key=key,
            )


def system_catalog(ctx: Context) -> Iterator[Violation]:
    """The catalog tells which tables and columns exist, denied ones included: off by default.
    Writing it (``UPDATE pg_settings`` is ``set_config``) is never allowed."""
    dialect, allowed = ctx.patterns.dialect, ctx.patterns.allowed_set
    for table in sorted(ctx.facts.written):
        if is_catalog_table(dialect, table):
            yield _catalog_violation(
                ctx,
                f"{table} is the system catalog and is never written (use the database's own "
                "tools to change settings)",
            )
    protecting = ctx.policy.row_filters or ctx.policy.masked_columns
    for message in measures(dialect, ctx.facts, ctx.engine) if protecting else ():
        yield _catalog_violation(ctx, message)
    if ctx.policy.allow_system_catalog:  # pg_stats' histograms hold every hidden value
        for table in sorted(ctx.facts.tables) if ctx.policy.hides_values else ():
            if is_catalog_table(dialect, table) and is_statistics_table(dialect, table):
                yield _catalog_violation(
                    ctx,
                    f"{table} holds statistics of every row (values, counts), which row "
                    "filters, masks and denied tables and columns hide: it is not read under "
                    "them",
                )
        return
    for table in sorted(ctx.facts.tables):
        if allowed is not None and allowed.names(table):
            continue
        if is_catalog_table(dialect, table):
            yield _catalog_violation(
                ctx, f"{table} is the system catalog; set allow_system_catalog to read it"
            )
            continue
        base = next(
            (b for b in sorted(ctx.patterns.views.get(table, ())) if is_catalog_table(dialect, b)),
            None,
        )
        if base is not None:
            yield _catalog_violation(
                ctx, f"{table} reads {base}, the system catalog; set allow_system_catalog"
            )
    for name in sorted(ctx.facts.functions | ctx.engine_functions()):
        if is_catalog_function(dialect, name):
            yield _catalog_violation(
                ctx, f"{name}() reads the system catalog; set allow_system_catalog to call it"
            )


def _catalog_violation(ctx: Context, message: str) -> Violation:
    return _violation(ctx, "system_catalog", message, key="allow_system_catalog")


def columns(ctx: Context) -> Iterator[Violation]:
    """Denied columns are never named, and never read through ``*`` of their table."""
    facts = ctx.facts
    named = {column for _owner, column in facts.columns}
    unseen = sorted(ctx.engine.columns - named) if ctx.engine is not None else ()
    for table_pattern, column_pattern in ctx.patterns.denied_columns:
        for column in unseen:
            if fnmatchcase(column, column_pattern):
                yield _violation(
                    ctx,
                    "denied_columns",
                    f"PostgreSQL reads a column {column}, which the fence did not see",
                )
        # Each table is matched against the pattern once, not once per column naming it
        # (an unqualified column may be any table's: columns x tables otherwise).
        matched: dict[str, bool] = {}
        every: tuple[list[str], list[str]] | None = None  # (matching, those with generated)
        for owner, column in sorted(facts.columns, key=str):
            if owner:
                hit = matched.get(owner)
                if hit is None:
                    hit = matched[owner] = table_matches(
                        table_pattern, tuple(owner.split(".")), True
                    )
                matching = [owner] if hit else []
                computed = matching
            else:
                if every is None:
                    found = [
                        o
                        for o in facts.tables
                        if table_matches(table_pattern, tuple(o.split(".")), True)
                    ]
                    every = found, [o for o in found if o in ctx.patterns.generated_columns]
                matching, computed = every
            if not matching:
                continue
            if fnmatchcase(column, column_pattern):
                yield _violation(ctx, "denied_columns", f"column {matching[0]}.{column} is denied")
                continue
            # (tables without generated columns cannot answer: left out of the search)
            generated = generated_from(ctx.patterns, computed, column, column_pattern)
            if generated is not None:
                yield _violation(
                    ctx,
                    "denied_columns",
                    f"column {generated[0]}.{column} is computed from {generated[1]}, "
                    "which is denied",
                )
        for table in sorted(facts.tables):
            through = next(
                (
                    f"{base}.{column}"
                    for base, column in sorted(ctx.patterns.view_columns.get(table, ()))
                    if (column == "*" or fnmatchcase(column, column_pattern))
                    and table_matches(table_pattern, tuple(base.split(".")), True)
                ),
                None,
            )
            if through is not None:
                yield _violation(
                    ctx, "denied_columns", f"{table} reads column {through}, which is denied"
                )
        for table in sorted(facts.star_tables):
            known = ctx.patterns.table_columns.get(table)
            if known is not None and not any(fnmatchcase(c, column_pattern) for c in known):
                continue  # the catalog says it has no such column
            if table_matches(table_pattern, tuple(table.split(".")), True):
                yield _violation(
                    ctx,
                    "denied_columns",
                    f"* on {table} would read denied column {column_pattern}; name the columns",
                )


def generated_from(
    patterns: Patterns, tables: list[str], column: str, column_pattern: str
) -> tuple[str, str] | None:
    """``(table, source)`` when ``column`` of one of ``tables`` is a generated column computed
    from a column matching ``column_pattern``."""
    for table in tables:
        sources = patterns.generated_columns.get(table, {}).get(column.lower(), ())
        for source in sorted(sources):
            if fnmatchcase(source, column_pattern):
                return table, source
    return None


def functions(ctx: Context) -> Iterator[Violation]:
    """Built-in and policy deny lists, and the function allow list when set (which does not
    look at the arithmetic of a row bound: ``LIMIT LEAST(?, 50)`` is the fence's own)."""
    patterns = ctx.patterns
    rule = patterns.denied_rule
    facts = ctx.facts
    for name in sorted(facts.functions | facts.bound_functions | ctx.engine_functions()):
        if name in patterns.denied_functions or (rule is not None and rule(name)):
            key = (
                "denied_functions"
                if name in ctx.policy.denied_functions
                else "builtin_denied_functions"
            )
            yield _violation(ctx, "denied_functions", f"function {name}() is denied", key=key)
        elif (
            patterns.allowed_functions is not None
            and name not in patterns.allowed_functions
            and name in facts.functions
        ):
            yield _violation(
                ctx, "allowed_functions", f"function {name}() is not on the allow list"
            )


def allowlist(ctx: Context) -> Iterator[Violation]:
    """With an allowlist, only statement shapes seen before (by fingerprint) may run."""
    if ctx.patterns.allowlist and ctx.facts.fingerprint not in ctx.patterns.allowlist:
        yield _violation(
            ctx,
            "allowlist",
            f"statement shape {ctx.facts.fingerprint or '(none)'} is not on the allowlist",
        )


RULES: tuple[Rule, ...] = (
    unparsed,
    engine_reading,
    executable_comment,
    statement_count,
    statement_kind,
    read_only,
    session_settings,
    attach,
    routines,
    tables,
    system_catalog,
    columns,
    functions,
    allowlist,
)


def rules_for(policy: Policy, patterns: Patterns) -> tuple[Rule, ...]:
    """RULES without those that cannot fire under this policy (they cost time on every miss)."""
    idle: set[Rule] = set()
    if not policy.read_only:
        idle.add(read_only)
    if not patterns.has_table_rules:
        idle.add(tables)
    if not patterns.denied_columns:
        idle.add(columns)
    if not patterns.allowlist:
        idle.add(allowlist)
    if not (
        patterns.has_table_rules
        or patterns.denied_columns
        or policy.row_filters
        or policy.masked_columns
    ):
        idle.add(attach)
    if not (policy.row_filters or policy.masked_columns):
        idle.add(routines)
    return tuple(rule for rule in RULES if rule not in idle)

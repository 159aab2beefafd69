"""The policy engine: ``Guard.decide(sql) -> Decision``, judging SQL without a database.

Rules are an ordered tuple of small functions over the statement's facts, in the manner of
sqlglot's optimizer. Decisions are cached by SQL text, so a statement seen before costs a
dictionary lookup.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase

from sqlglot.dialects.dialect import Dialect

from sqlfence.policies.loader import PolicySource, load_policy
from sqlfence.policies.model import Policy
from sqlfence.sql.analysis import Analysis, FactHook, Namer, StatementFacts, analyze
from sqlfence.sql.functions import builtin_denied, builtin_denied_rule, policy_names
from sqlfence.sql.rewrite import limit_rows

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
class Decision:
    """The verdict on one SQL text. ``sql`` is what goes to the driver when allowed."""

    allowed: bool
    sql: str
    facts: StatementFacts
    reasons: tuple[Violation, ...] = ()
    detected: bool = False
    rewritten: bool = False
    max_rows: int | None = None

    @property
    def rule(self) -> str | None:
        """The first broken rule's name, if any."""
        return self.reasons[0].rule if self.reasons else None

    def explain(self) -> str:
        """One line a person can act on."""
        if not self.reasons:
            return "allowed" + (" (row limit applied)" if self.rewritten else "")
        verdict = "detected" if self.detected else "denied"
        return f"{verdict}: " + "; ".join(str(reason) for reason in self.reasons)


class TableSet:
    """Table name patterns: exact names in a set, wildcard patterns matched one by one."""

    def __init__(self, patterns: tuple[tuple[str, ...], ...]) -> None:
        self.patterns = patterns
        self._exact = frozenset(".".join(p) for p in patterns if not _has_wildcard(p))
        self._wild = tuple(p for p in patterns if _has_wildcard(p))
        self._depths = frozenset(len(p) for p in patterns if not _has_wildcard(p))

    def __bool__(self) -> bool:
        return bool(self.patterns)

    def names(self, table: str) -> bool:
        """True when ``table`` is named exactly (not through a wildcard)."""
        return table in self._exact

    def matches(self, table: str, loose: bool) -> bool:
        """Does a qualified table name match? ``loose`` (deny lists) ignores a catalog part."""
        if table in self._exact:
            return True
        parts = tuple(table.split("."))
        if loose and len(parts) > 2:
            for depth in self._depths:
                if ".".join(parts[-depth:]) in self._exact:
                    return True
        return any(table_matches(pattern, parts, loose) for pattern in self._wild)


def _has_wildcard(pattern: tuple[str, ...]) -> bool:
    return any(ch in part for part in pattern for ch in "*?[")


@dataclass(frozen=True)
class _Patterns:
    """The policy's names, normalised and qualified the way the dialect compares them."""

    allowed_tables: tuple[tuple[str, ...], ...] | None
    denied_tables: tuple[tuple[str, ...], ...]
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


@dataclass(frozen=True)
class _Context:
    sql: str
    facts: StatementFacts
    policy: Policy
    patterns: _Patterns
    has_table_rules: bool = field(default=False)


Rule = Callable[[_Context], Iterator[Violation]]


def _violation(ctx: _Context, rule: str, key: str, message: str) -> Violation:
    origins = ctx.patterns.origins
    return Violation(rule, message, origins.get(key) or origins.get(""))


def statement_length(ctx: _Context) -> Iterator[Violation]:
    """Refuse texts longer than ``max_statement_length`` before parsing them."""
    limit = ctx.policy.max_statement_length
    if len(ctx.sql) > limit:
        yield _violation(
            ctx,
            "max_statement_length",
            "max_statement_length",
            f"statement is {len(ctx.sql)} characters, over the limit of {limit}",
        )


def unparsed(ctx: _Context) -> Iterator[Violation]:
    """Fail closed on what the parser did not understand."""
    if ctx.facts.unparsed and not ctx.policy.allow_unparsed:
        yield _violation(ctx, "unparsed", "allow_unparsed", f"not understood: {ctx.facts.unparsed}")


def executable_comment(ctx: _Context) -> Iterator[Violation]:
    """MySQL runs ``/*! ... */`` as code while parsers read it as a comment."""
    if "/*!" in ctx.sql and not ctx.policy.allow_unparsed:
        yield _violation(
            ctx, "unparsed", "allow_unparsed", "executable comment /*! ... */ is not allowed"
        )


def statement_count(ctx: _Context) -> Iterator[Violation]:
    """One statement per call unless the policy allows more."""
    count = ctx.facts.statement_count
    if count > 1 and not ctx.policy.allow_multiple_statements:
        yield _violation(
            ctx,
            "multiple_statements",
            "allow_multiple_statements",
            f"{count} statements in one call; only one is allowed",
        )


def statement_kind(ctx: _Context) -> Iterator[Violation]:
    """Only the statement kinds the policy names."""
    for operation in ctx.facts.operations:
        if not ctx.policy.allows_statement(operation):
            allowed = ", ".join(ctx.policy.statements)
            yield _violation(
                ctx,
                "statements",
                "statements",
                f"{operation.upper()} statements are not allowed (allowed: {allowed})",
            )


def read_only(ctx: _Context) -> Iterator[Violation]:
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
        yield _violation(ctx, "read_only", "read_only", f"read-only policy: {what}")
    elif facts.locks:
        yield _violation(ctx, "read_only", "read_only", "read-only policy: locking clause")


def tables(ctx: _Context) -> Iterator[Violation]:
    """Denied tables never; when an allow list is set, nothing outside it."""
    patterns = ctx.patterns
    denied, allowed = patterns.denied_set, patterns.allowed_set
    for table in sorted(ctx.facts.tables):
        if denied and denied.matches(table, loose=True):
            yield _violation(
                ctx, "denied_tables", "denied_tables", f"table {table} is on the deny list"
            )
            continue
        hidden = next(
            (base for base in sorted(patterns.views.get(table, ())) if denied.matches(base, True)),
            None,
        )
        if hidden is not None:
            yield _violation(
                ctx,
                "denied_tables",
                "denied_tables",
                f"view {table} reads {hidden}, which is on the deny list",
            )
        elif allowed is not None and not allowed.matches(table, loose=False):
            yield _violation(
                ctx, "allowed_tables", "allowed_tables", f"table {table} is not on the allow list"
            )
    if ctx.facts.unresolved and ctx.has_table_rules:
        for what in ctx.facts.unresolved:
            yield _violation(
                ctx,
                "unresolved_table",
                "allowed_tables" if patterns.allowed_tables is not None else "denied_tables",
                f"cannot tell which table an implicit join reads ({what})",
            )


def system_catalog(ctx: _Context) -> Iterator[Violation]:
    """The catalog tells which tables and columns exist, denied ones included: off by default.

    Writing it (``UPDATE pg_settings`` is ``set_config``) is never allowed.
    """
    allowed = ctx.patterns.allowed_set
    for table in sorted(ctx.facts.written):
        if is_catalog_table(ctx.patterns.dialect, table):
            yield _violation(
                ctx,
                "system_catalog",
                "allow_system_catalog",
                f"{table} is the system catalog and is never written (use the database's own "
                "tools to change settings)",
            )
    if ctx.policy.allow_system_catalog:
        return
    for table in sorted(ctx.facts.tables):
        if is_catalog_table(ctx.patterns.dialect, table) and not (
            allowed is not None and allowed.names(table)
        ):
            yield _violation(
                ctx,
                "system_catalog",
                "allow_system_catalog",
                f"{table} is the system catalog; set allow_system_catalog to read it",
            )
    for name in sorted(ctx.facts.functions):
        if name.startswith(_CATALOG_FUNCTIONS.get(ctx.patterns.dialect, ())):
            yield _violation(
                ctx,
                "system_catalog",
                "allow_system_catalog",
                f"{name}() reads the system catalog; set allow_system_catalog to call it",
            )


_CATALOG_TABLES = {
    "sqlite": frozenset(
        {"sqlite_master", "sqlite_schema", "sqlite_temp_master", "sqlite_temp_schema"}
    )
}
_CATALOG_SCHEMAS = {
    "postgres": frozenset({"pg_catalog", "information_schema"}),
    "iris": frozenset({"information_schema"}),
}
_CATALOG_FUNCTIONS: dict[str, tuple[str, ...]] = {"sqlite": ("pragma_",)}


_CATALOG_MARKS = ("sqlite_", "pg_", "information_schema", "%", "INFORMATION_SCHEMA")


def is_catalog_table(dialect: str, table: str) -> bool:
    """True for the system catalog's tables and views in a dialect (qualified name)."""
    if not any(mark in table for mark in _CATALOG_MARKS):
        return False  # the common case, decided without splitting the name
    schema, _, name = table.rpartition(".")
    schema = schema.rpartition(".")[2].lower()
    name = name.lower()
    if name in _CATALOG_TABLES.get(dialect, ()) or schema in _CATALOG_SCHEMAS.get(dialect, ()):
        return True
    if dialect == "postgres":
        return name.startswith("pg_")  # pg_catalog is searched first: pg_shadow means it
    if dialect == "iris":
        return schema.startswith("%")  # %Dictionary and the other system class packages
    return False


def columns(ctx: _Context) -> Iterator[Violation]:
    """Denied columns are never named, and never read through ``*`` of their table."""
    facts = ctx.facts
    for table_pattern, column_pattern in ctx.patterns.denied_columns:
        for owner, column in sorted(facts.columns, key=str):
            if not fnmatchcase(column, column_pattern):
                continue
            owners = (owner,) if owner else tuple(facts.tables)
            hit = next(
                (o for o in owners if table_matches(table_pattern, tuple(o.split(".")), True)), None
            )
            if hit is not None:
                yield _violation(
                    ctx, "denied_columns", "denied_columns", f"column {hit}.{column} is denied"
                )
        for table in sorted(facts.star_tables):
            if table_matches(table_pattern, tuple(table.split(".")), True):
                yield _violation(
                    ctx,
                    "denied_columns",
                    "denied_columns",
                    f"* on {table} would read denied column {column_pattern}; name the columns",
                )


def functions(ctx: _Context) -> Iterator[Violation]:
    """Built-in and policy deny lists, and the function allow list when set."""
    patterns = ctx.patterns
    rule = patterns.denied_rule
    for name in sorted(ctx.facts.functions):
        if name in patterns.denied_functions or (rule is not None and rule(name)):
            key = (
                "denied_functions"
                if name in ctx.policy.denied_functions
                else ("builtin_denied_functions")
            )
            yield _violation(ctx, "denied_functions", key, f"function {name}() is denied")
        elif patterns.allowed_functions is not None and name not in patterns.allowed_functions:
            yield _violation(
                ctx,
                "allowed_functions",
                "allowed_functions",
                f"function {name}() is not on the allow list",
            )


def allowlist(ctx: _Context) -> Iterator[Violation]:
    """With an allowlist, only statement shapes seen before (by fingerprint) may run."""
    if ctx.patterns.allowlist and ctx.facts.fingerprint not in ctx.patterns.allowlist:
        yield _violation(
            ctx,
            "allowlist",
            "allowlist",
            f"statement shape {ctx.facts.fingerprint or '(none)'} is not on the allowlist",
        )


RULES: tuple[Rule, ...] = (
    unparsed,
    executable_comment,
    statement_count,
    statement_kind,
    read_only,
    tables,
    system_catalog,
    columns,
    functions,
    allowlist,
)


def _closure(views: Mapping[str, frozenset[str]]) -> dict[str, frozenset[str]]:
    """Every table each view reads, following views of views (cycles are cut)."""
    closed: dict[str, frozenset[str]] = {}
    for view in views:
        seen: set[str] = set()
        todo = list(views[view])
        while todo:
            base = todo.pop()
            if base not in seen:
                seen.add(base)
                todo.extend(views.get(base, ()))
        closed[view] = frozenset(seen)
    return closed


def _rules_for(policy: Policy, patterns: _Patterns) -> tuple[Rule, ...]:
    """RULES without those that cannot fire under this policy (they cost time on every miss)."""
    idle: set[Rule] = set()
    if not policy.read_only:
        idle.add(read_only)
    if not patterns.denied_tables and patterns.allowed_tables is None:
        idle.add(tables)
    if not patterns.denied_columns:
        idle.add(columns)
    if not patterns.allowlist:
        idle.add(allowlist)
    return tuple(rule for rule in RULES if rule not in idle)


class Guard:
    """Judges SQL against a policy for one dialect. Thread-safe; decisions are cached."""

    def __init__(
        self,
        policy: PolicySource = None,
        *,
        dialect: str | Dialect = "sqlite",
        default_schema: str | None = None,
        agent_id: str | None = None,
        tenant: str | None = None,
        catalog: Mapping[str, str] | None = None,
        views: Mapping[str, Collection[str]] | None = None,
        cache_size: int = 4096,
    ) -> None:
        self.policy = (
            policy if isinstance(policy, Policy) else load_policy(policy).resolve(agent_id, tenant)
        )
        self.dialect = dialect_instance(dialect)
        self.dialect_name = _dialect_name(dialect, self.dialect)
        if default_schema is None:
            default_schema = _DEFAULT_SCHEMAS.get(self.dialect_name)
        self.namer = Namer(self.dialect, default_schema)
        self.catalog = dict(catalog or {})
        self.views = {view: frozenset(bases) for view, bases in (views or {}).items()}
        self._hooks = _hooks_for(self.dialect_name, self.catalog, default_schema)
        self.patterns = self._compile(self.policy)
        self._rules = _rules_for(self.policy, self.patterns)
        self._finish = _FINISHERS.get(self.dialect_name)
        self._cache: dict[str, Decision] = {}
        self._cache_size = cache_size

    def decide(self, sql: str) -> Decision:
        """The decision on ``sql``. Never raises for bad SQL: it is denied with a reason."""
        decision = self._cache.get(sql)
        if decision is None:
            decision = self._decide(sql)
            if len(self._cache) >= self._cache_size:
                self._cache.pop(next(iter(self._cache)), None)
            self._cache[sql] = decision
            if decision.rewritten and decision.allowed:
                # The guard wrote that text itself: judged again, it stands as it is (its
                # added LIMIT and LEAST are the guard's, not the agent's).
                self._cache.setdefault(
                    decision.sql,
                    Decision(
                        True,
                        decision.sql,
                        decision.facts,
                        decision.reasons,
                        decision.detected,
                        False,
                        decision.max_rows,
                    ),
                )
        return decision

    @property
    def policy_has_table_rules(self) -> bool:
        """True when the policy allows or denies tables (so arrows must be resolved)."""
        return bool(self.patterns.denied_tables) or self.patterns.allowed_tables is not None

    def with_catalog(
        self,
        catalog: Mapping[str, str] | None = None,
        views: Mapping[str, Collection[str]] | None = None,
    ) -> Guard:
        """The same guard knowing more of the database.

        ``catalog`` maps reference columns to tables (``Schema.Table.Column -> Schema.Table``,
        for IRIS arrows); ``views`` maps qualified views to the tables they read, so a view
        over a denied table is denied too.
        """
        return Guard(
            self.policy,
            dialect=self.dialect,
            default_schema=self.namer.default_schema,
            catalog=self.catalog if catalog is None else catalog,
            views=self.views if views is None else views,
            cache_size=self._cache_size,
        )

    @property
    def denied_functions(self) -> frozenset[str]:
        """Canonical names of every denied function (built-in list included)."""
        return self.patterns.denied_functions

    def analyze(self, sql: str) -> Analysis:
        """Parse ``sql`` and collect its facts, without judging it."""
        return analyze(
            sql, self.dialect, self.namer, self._hooks, columns=bool(self.policy.denied_columns)
        )

    def _decide(self, sql: str) -> Decision:
        if not isinstance(sql, str):
            raise TypeError(f"SQL must be a str, not {type(sql).__name__}")
        policy = self.policy
        if len(sql) > policy.max_statement_length:
            facts = StatementFacts(operation="unparsed", unparsed="too long to parse")
            ctx = _Context(sql, facts, policy, self.patterns)
            return Decision(False, sql, facts, tuple(statement_length(ctx)))
        analysis = self.analyze(sql)
        ctx = _Context(sql, analysis.facts, policy, self.patterns, self.policy_has_table_rules)
        reasons = tuple(violation for rule in self._rules for violation in rule(ctx))
        detected = bool(reasons) and policy.mode == "detect"
        allowed = not reasons or detected
        final = sql
        if allowed and policy.max_rows is not None and analysis.trees:
            final = limit_rows(analysis, policy.max_rows) or sql
        if allowed and self._finish is not None:
            final = self._finish(final)
        return Decision(
            allowed=allowed,
            sql=final,
            facts=analysis.facts,
            reasons=reasons,
            detected=detected,
            rewritten=final != sql,
            max_rows=policy.max_rows,
        )

    def _function_names(self, name: str) -> frozenset[str]:
        return policy_names(name, self.dialect)

    def _compile(self, policy: Policy) -> _Patterns:
        qualify = self.namer.qualify
        names = self._function_names
        denied_functions = {n for name in policy.denied_functions for n in names(name)}
        if policy.builtin_denied_functions:
            denied_functions |= builtin_denied(self.dialect_name)
        allowed = (
            None
            if policy.allowed_tables is None
            else tuple(qualify(name) for name in policy.allowed_tables)
        )
        denied = tuple(qualify(name) for name in policy.denied_tables)
        return _Patterns(
            allowed_tables=allowed,
            denied_tables=denied,
            allowed_set=None if allowed is None else TableSet(allowed),
            denied_set=TableSet(denied),
            denied_columns=tuple(_column_pattern(qualify, name) for name in policy.denied_columns),
            denied_functions=frozenset(denied_functions),
            allowed_functions=None
            if policy.allowed_functions is None
            else frozenset(n for name in policy.allowed_functions for n in names(name)),
            denied_rule=builtin_denied_rule(self.dialect_name)
            if policy.builtin_denied_functions
            else None,
            allowlist=frozenset(policy.allowlist),
            origins=dict(policy.origins),
            dialect=self.dialect_name,
            views=_closure(self.views),
        )


_DEFAULT_SCHEMAS = {"postgres": "public", "sqlite": "main", "iris": "SQLUser"}
_DIALECTS: dict[str, Dialect] = {}


def dialect_instance(dialect: str | Dialect) -> Dialect:
    """One Dialect instance per name, so every guard of a dialect shares its parser machinery.

    (``Dialect.get_or_raise(name)`` builds a new instance on each call.)
    """
    if not isinstance(dialect, str):
        return Dialect.get_or_raise(dialect)
    instance = _DIALECTS.get(dialect)
    if instance is None:
        instance = _DIALECTS.setdefault(dialect, Dialect.get_or_raise(dialect))
    return instance


def _strip_iris_terminator(sql: str) -> str:
    from sqlfence.sql.dialects.iris import strip_terminator

    return strip_terminator(sql)


# The last touch before the driver: IRIS rejects a trailing ";" (SQLCODE -25).
_FINISHERS: dict[str, Callable[[str], str]] = {"iris": _strip_iris_terminator}


def _dialect_name(requested: str | Dialect, dialect: Dialect) -> str:
    if isinstance(requested, str):
        return requested.lower()
    return type(dialect).__name__.lower()


def _hooks_for(
    dialect: str, catalog: Mapping[str, str], default_schema: str | None
) -> tuple[FactHook, ...]:
    if dialect == "iris":
        from sqlfence.sql.implicit_joins import ImplicitJoinFacts

        return (ImplicitJoinFacts(catalog, default_schema or "SQLUser"),)
    return ()


def _column_pattern(
    qualify: Callable[[str], tuple[str, ...]], name: str
) -> tuple[tuple[str, ...], str]:
    table, _, column = name.rpartition(".")
    return (qualify(table) if table else ("*", "*")), column.lower().strip('"')


def table_matches(pattern: tuple[str, ...], parts: tuple[str, ...], loose: bool) -> bool:
    """Does a qualified table match a pattern? ``loose`` (deny lists) ignores a catalog part."""
    if len(pattern) == 2 and pattern == ("*", "*"):
        return True
    if len(parts) > len(pattern) and loose:
        parts = parts[-len(pattern) :]
    if len(parts) != len(pattern):
        return False
    return all(fnmatchcase(part, pat) for part, pat in zip(parts, pattern, strict=True))

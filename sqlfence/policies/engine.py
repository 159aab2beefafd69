"""The policy engine: ``Guard.decide(sql) -> Decision``, judging SQL without a database.

Rules are an ordered tuple of small functions over the statement's facts, in the manner of
sqlglot's optimizer. Decisions are cached by SQL text, so a statement seen before costs a
dictionary lookup.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass

from sqlglot.dialects.dialect import Dialect

from sqlfence import databases
from sqlfence.errors import ConfigurationError, PolicyError
from sqlfence.policies.cache import DEFAULT_BYTES, DEFAULT_ENTRIES, DecisionCache
from sqlfence.policies.cascades import cascading
from sqlfence.policies.loader import PolicySource, load_policy
from sqlfence.policies.masks import ColumnMasks
from sqlfence.policies.model import Policy
from sqlfence.policies.relations import unknown_relations
from sqlfence.policies.row_filters import RowFilters
from sqlfence.policies.rules import (
    Context,
    Patterns,
    Violation,
    engine_reading,
    routine_violation,
    rules_for,
    statement_length,
    statement_tokens,
)
from sqlfence.policies.server_code import ServerCode
from sqlfence.policies.tables import TableSet, case_mismatch
from sqlfence.sql import postgres_grammar
from sqlfence.sql.analysis import Analysis, StatementFacts, analyze, statement_kind
from sqlfence.sql.builder import FactHook
from sqlfence.sql.functions import builtin_denied, builtin_denied_rule, policy_names
from sqlfence.sql.masks import MASKER_FUNCTIONS
from sqlfence.sql.names import Namer
from sqlfence.sql.postgres_grammar import EngineReading
from sqlfence.sql.quiet import quiet_sqlglot
from sqlfence.sql.rewrite import limit_rows
from sqlfence.sql.row_filters import Identity
from sqlfence.sql.size import token_count
from sqlfence.sql.system_columns import SYSTEM_COLUMNS


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
    # The row filters applied, by policy key (``orders``, ``*.tenant_id``), in tree order.
    row_filters: tuple[str, ...] = ()
    # The column masks applied, by policy key (``customers.email``, ``*.ssn``).
    masks: tuple[str, ...] = ()

    @property
    def rule(self) -> str | None:
        """The first broken rule's name, if any."""
        return self.reasons[0].rule if self.reasons else None

    def explain(self) -> str:
        """One line a person can act on."""
        if not self.reasons:
            applied = [
                f"{what} applied: {', '.join(keys)}"
                for what, keys in (("row filters", self.row_filters), ("masks", self.masks))
                if keys
            ]
            if applied:
                return f"allowed ({'; '.join(applied)})"
            return "allowed" + (" (row limit applied)" if self.rewritten else "")
        verdict = "detected" if self.detected else "denied"
        return f"{verdict}: " + "; ".join(str(reason) for reason in self.reasons)


def _owners(parts: Mapping[str, str]) -> dict[str, frozenset[str]]:
    """Every table whose rows each part holds, up the chain (a partition of a partition)."""
    owners: dict[str, frozenset[str]] = {}
    for part in parts:
        seen: list[str] = []
        owner = parts.get(part)
        while owner is not None and owner not in seen and owner != part:
            seen.append(owner)
            owner = parts.get(owner)
        owners[part] = frozenset(seen)
    return owners


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


class Guard:
    """Judges SQL against a policy for one dialect. Thread-safe; decisions are cached.

    The cache keeps at most ``cache_size`` decisions (0 switches it off) holding about
    ``cache_bytes`` at most, the texts the guard rewrote included; the oldest go first.
    """

    def __init__(
        self,
        policy: PolicySource = None,
        *,
        dialect: str | Dialect = "sqlite",
        default_schema: str | None = None,
        agent_id: str | None = None,
        tenant: str | None = None,
        claims: Mapping[str, str | int] | None = None,
        catalog: Mapping[str, str] | None = None,
        views: Mapping[str, Collection[str]] | None = None,
        view_columns: Mapping[str, Collection[tuple[str, str]]] | None = None,
        table_columns: Mapping[str, Collection[str]] | None = None,
        generated_columns: Mapping[str, Mapping[str, Collection[str]]] | None = None,
        parts: Mapping[str, str] | None = None,
        star_columns: Mapping[str, Sequence[str]] | None = None,
        references: Mapping[str, Collection[tuple[str, str | None]]] | None = None,
        placing: Mapping[str, Collection[str]] | None = None,
        server_code: ServerCode | None = None,
        cache_size: int = DEFAULT_ENTRIES,
        cache_bytes: int = DEFAULT_BYTES,
    ) -> None:
        self.policy = (
            policy if isinstance(policy, Policy) else load_policy(policy).resolve(agent_id, tenant)
        )
        self.dialect = dialect_instance(dialect)
        self.dialect_name = _dialect_name(dialect, self.dialect)
        if default_schema is None:
            database = databases.find(self.dialect_name)
            default_schema = database.default_schema if database is not None else None
        self.namer = Namer(self.dialect, default_schema)
        self.catalog = dict(catalog or {})
        self.views = {view: frozenset(bases) for view, bases in (views or {}).items()}
        self.parts = dict(parts or {})
        self.view_columns = {
            view: frozenset(columns) for view, columns in (view_columns or {}).items()
        }
        self.table_columns = {
            table: frozenset(column.lower() for column in columns)
            for table, columns in (table_columns or {}).items()
        }
        self.generated_columns = {
            table: _sources_closed(columns) for table, columns in (generated_columns or {}).items()
        }
        self.star_columns = {table: tuple(cols) for table, cols in (star_columns or {}).items()}
        self.references = {table: frozenset(keys) for table, keys in (references or {}).items()}
        self.placing = {table: frozenset(cols) for table, cols in (placing or {}).items()}
        self.server_code = server_code or ServerCode()
        self._known_relations = frozenset(
            {*self.table_columns, *self.star_columns, *self.views, *self.parts}
        )
        self._hooks = _hooks_for(self.dialect_name, self.catalog, default_schema)
        self.patterns = self._compile(self.policy)
        self._rules = rules_for(self.policy, self.patterns)
        self._finish = _FINISHERS.get(self.dialect_name)
        self._engine = _ENGINE_READERS.get(self.dialect_name)
        if self._engine is not None:
            postgres_grammar.require()
        # Who the connection acts for: a row filter's placeholders take these values, so the
        # decisions (and the cache holding them) belong to this guard's identity alone.
        self.identity = Identity(agent_id, tenant, dict(claims or {}))
        self._masks = masks = (
            ColumnMasks(
                self.policy,
                self.namer,
                self.star_columns,
                self.generated_columns,
                self.patterns.views,
                self.patterns.part_of,
                self.references,
                self.placing,
            )
            if self.policy.masked_columns
            else None
        )
        self._row_filters = (
            RowFilters(
                self.policy,
                self.identity,
                self.dialect,
                self.namer,
                self.table_columns,
                self.patterns.views,
                self.patterns.part_of,
                masks,
                self.generated_columns,
                self.star_columns,
            )
            if self.policy.row_filters or masks is not None
            else None
        )
        self._cache = DecisionCache(cache_size, cache_bytes)
        if self._row_filters is not None:
            self._refuse_case_mismatches()
        misspelt = masks.misspelt() if masks is not None else None
        if misspelt is not None:
            raise PolicyError(misspelt)

    def _refuse_case_mismatches(self) -> None:
        """A row filter's or mask's table that the catalog holds only in another letter case
        is a PolicyError: the key would reach no table, and leave that one open."""
        known = self.star_columns.keys() | self.table_columns.keys()
        if not known:
            return
        keys = [("row_filters", key, key) for key in self.policy.row_filters]
        keys += [
            ("masked_columns", key, key.rpartition(".")[0]) for key in self.policy.masked_columns
        ]
        for section, key, table in keys:
            if table.strip() == "*" or table.startswith("*."):
                continue
            parts = tuple(self.namer.normalize(p, quoted=True) for p in self.namer.qualify(table))
            pattern = parts if "." in table else ("*", parts[-1])
            other = case_mismatch(pattern, known)
            if other is not None:
                raise PolicyError(
                    f"{section}[{key!r}] names {'.'.join(parts)}, which the database does not "
                    f"have, but it has {other}: write the name as the database spells it "
                    "(a quoted part keeps its case)"
                )

    def decide(self, sql: str) -> Decision:
        """The decision on ``sql``. Never raises for bad SQL: it is denied with a reason."""
        decision = self._cache.get(sql)
        if decision is None:
            with quiet_sqlglot():
                decision = self._decide(sql)
            if self._cache.max_entries > 0:
                self._remember(sql, decision)
        return decision

    def _remember(self, sql: str, decision: Decision) -> None:
        decision.facts.keep_text_only()  # a hit needs the facts, not the tokens they came from
        self._cache.put(sql, decision)
        if decision.rewritten and decision.allowed:
            # The guard wrote that text itself: judged again, it stands as it is (its added
            # LIMIT and LEAST are the guard's, not the agent's). An entry of its own, within
            # the same bounds. (Built directly: dataclasses.replace costs microseconds here.)
            stands = Decision(
                True,
                decision.sql,
                decision.facts,
                decision.reasons,
                decision.detected,
                False,
                decision.max_rows,
                decision.row_filters,
                decision.masks,
            )
            self._cache.put(decision.sql, stands, replace=False)

    @property
    def policy_has_table_rules(self) -> bool:
        """True when the policy allows, denies or filters tables (so arrows must be resolved
        and views known: a view over a filtered table is refused)."""
        return self.patterns.has_table_rules or self._row_filters is not None

    def row_filtered(self, table: str) -> bool:
        """True when a row filter applies to the qualified ``table`` (masks are not filters:
        an ON CONFLICT REPLACE table with masked columns is no other tenant's row)."""
        return self._row_filters is not None and bool(self._row_filters.filters_for(table))

    def protected(self, table: str) -> bool:
        """True when a row filter or a mask applies to the qualified ``table``."""
        if self.row_filtered(table):
            return True
        return self._masks is not None and self._masks.masks_for(table) is not None

    def with_catalog(
        self,
        catalog: Mapping[str, str] | None = None,
        views: Mapping[str, Collection[str]] | None = None,
        view_columns: Mapping[str, Collection[tuple[str, str]]] | None = None,
        default_schema: str | None = None,
        table_columns: Mapping[str, Collection[str]] | None = None,
        generated_columns: Mapping[str, Mapping[str, Collection[str]]] | None = None,
        parts: Mapping[str, str] | None = None,
        star_columns: Mapping[str, Sequence[str]] | None = None,
        references: Mapping[str, Collection[tuple[str, str | None]]] | None = None,
        placing: Mapping[str, Collection[str]] | None = None,
        server_code: ServerCode | None = None,
    ) -> Guard:
        """The same guard knowing more of the database (each is what the driver's
        ``load_*`` of the same name returns): ``catalog``, IRIS reference columns to tables;
        ``views``, what each view, rule or parent reads (reading one over a denied table is
        denied); ``view_columns``, the ``(table, column)`` pairs each view reads;
        ``default_schema``, where unqualified names live; ``table_columns``, each relation's
        columns (``*`` is judged by them); ``generated_columns``, what each generated column
        is computed from; ``parts``, a partition, child or shadow table -> the table whose
        rows it holds; ``star_columns``, the columns ``SELECT *`` returns in order (masks);
        ``references``, what each table's foreign keys reference; ``placing``, the columns
        deciding where a table keeps a row; ``server_code``, the database's own code and
        the paths into it (none runs under row filters or masks).
        """
        return Guard(
            self.policy,
            dialect=self.dialect,
            default_schema=default_schema or self.namer.default_schema,
            agent_id=self.identity.agent_id,
            tenant=self.identity.tenant,
            claims=self.identity.claims,
            catalog=self.catalog if catalog is None else catalog,
            views=self.views if views is None else views,
            view_columns=self.view_columns if view_columns is None else view_columns,
            table_columns=self.table_columns if table_columns is None else table_columns,
            generated_columns=(
                self.generated_columns if generated_columns is None else generated_columns
            ),
            parts=self.parts if parts is None else parts,
            star_columns=self.star_columns if star_columns is None else star_columns,
            references=self.references if references is None else references,
            placing=self.placing if placing is None else placing,
            server_code=self.server_code if server_code is None else server_code,
            cache_size=self._cache.max_entries,
            cache_bytes=self._cache.max_bytes,
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
            ctx = Context(sql, facts, policy, self.patterns)
            return Decision(False, sql, facts, tuple(statement_length(ctx)))
        budget = policy.max_statement_tokens
        if len(sql) > budget and token_count(sql, budget) > budget:  # a token takes a character
            facts = StatementFacts(operation="unparsed", unparsed="too many tokens to parse")
            ctx = Context(sql, facts, policy, self.patterns)
            return Decision(False, sql, facts, tuple(statement_tokens(ctx)))
        refused = input_refused(sql)
        if refused is not None:  # denied in every mode: no driver may see such text
            facts = StatementFacts(operation="unparsed", unparsed=refused)
            return Decision(False, sql, facts, (Violation("input", f"not accepted: {refused}"),))
        analysis = self.analyze(sql)
        engine: EngineReading | None = None
        if self._engine is not None and not (analysis.facts.unparsed and policy.allow_unparsed):
            columns = bool(policy.denied_columns or policy.row_filters or policy.masked_columns)
            engine = self._engine(sql, self.namer.default_schema, columns)
        kinds = tuple(statement_kind(tree) for tree in analysis.trees)
        ctx = Context(sql, analysis.facts, policy, self.patterns, engine, kinds)
        reasons = tuple(violation for rule in self._rules for violation in rule(ctx))
        if self.dialect_name == "postgres" and self._known_relations:
            protecting = bool(policy.row_filters or policy.masked_columns)
            reasons += tuple(
                Violation(key, why, policy.origin(key))
                for key, why in unknown_relations(
                    analysis.facts, self._known_relations, self.namer.default_schema, protecting
                )
            )
        if self.server_code.cascades and analysis.facts.written and self._row_filters:
            # a plain INSERT runs no foreign key action (an upsert's UPDATE may, and so may a
            # rule's action on the table, or a view's)
            written = analysis.facts.written
            inserts = set(analysis.facts.operations) <= {"insert"}
            ruled = any(table in self.views for table in written)
            upsert = (
                "conflict" in sql.lower() if engine is None else '"onConflictClause"' in engine.tree
            )
            if not inserts or ruled or upsert:
                reasons += cascading(self, self._masks, analysis.facts.written)
        detected = bool(reasons) and policy.mode == "detect"
        allowed = not reasons or detected
        facts = analysis.facts
        applied: tuple[str, ...] = ()
        masked: tuple[str, ...] = ()
        if allowed and self._row_filters is not None:
            # Never in detect mode: a statement that cannot be filtered would run unfiltered.
            filtered = self._row_filters.apply(analysis, self.analyze, self._engine_check)
            if isinstance(filtered, Violation):
                return Decision(False, sql, facts, (*reasons, filtered))
            analysis, applied, masked = filtered
        source = analysis.sql
        final = source
        if allowed and policy.max_rows is not None and analysis.trees:
            # to raise on a cut result the cursor must see whether one row more exists
            asked = policy.max_rows + (1 if policy.on_row_limit == "error" else 0)
            final = limit_rows(analysis, asked) or source
        if (
            allowed
            and final is sql
            and self.dialect_name in _SERIALIZED
            and len(analysis.trees) == 1
        ):
            # No grammar library to compare with: the database is sent the fence's own
            # reading of the statement, so what it runs is what was judged.
            final = analysis.trees[0].sql(dialect=self.dialect)
        if allowed and self._finish is not None:
            final = self._finish(final)
        return Decision(
            allowed=allowed,
            sql=final,
            facts=facts,
            reasons=reasons,
            detected=detected,
            rewritten=final != sql,
            max_rows=policy.max_rows,
            row_filters=applied,
            masks=masked,
        )

    def _engine_check(self, sql: str, analysis: Analysis) -> Violation | None:
        """The database's own reading of a text the guard wrote (PostgreSQL): the same
        statements and tables as the fence's, no system column, or the first difference."""
        if self._engine is None:
            return None
        engine = self._engine(sql, self.namer.default_schema, False)
        kinds = tuple(statement_kind(tree) for tree in analysis.trees)
        ctx = Context(sql, analysis.facts, self.policy, self.patterns, engine, kinds)
        differs = next(iter(engine_reading(ctx)), None)
        stored = sorted(engine.identifiers() & SYSTEM_COLUMNS["postgres"])  # (t).ctid too
        if differs is None and stored:
            key = "row_filters" if self.policy.row_filters else "masked_columns"
            why = f"{stored[0]} is where rows are stored (other tenants' among them): not read"
            differs = Violation(key, why, self.policy.origin(key))
        if differs is not None or not self.server_code:
            return differs
        # The text adds the policy's own expressions (row filters, maskers): the database's
        # code must not be reached through them either (a filter's lower() or = overloaded).
        facts = analysis.facts
        reached = self.server_code.reached(
            engine, (), facts.tables | engine.tables, facts.written, False, MASKER_FUNCTIONS
        )
        return None if reached is None else routine_violation(self.policy, self.patterns, reached)

    def _with_sources(self, pairs: frozenset[tuple[str, str]]) -> frozenset[tuple[str, str]]:
        """``(table, column)`` pairs plus the columns their generated columns read."""
        extra = {
            (table, source)
            for table, column in pairs
            for source in self.generated_columns.get(table, {}).get(column.lower(), ())
        }
        return pairs | extra if extra else pairs

    def _compile(self, policy: Policy) -> Patterns:
        qualify = self.namer.qualify

        def names(name: str) -> frozenset[str]:
            return policy_names(name, self.dialect)

        denied_functions = {n for name in policy.denied_functions for n in names(name)}
        if policy.builtin_denied_functions:
            denied_functions |= builtin_denied(self.dialect_name)
        # A deny-list name without a schema is denied in every schema; an allow-list name
        # without one means the session's default schema only (both fail closed).
        denied = tuple(
            qualify(name) if "." in name else ("*", qualify(name)[-1])
            for name in policy.denied_tables
        )
        return Patterns(
            allowed_set=None
            if policy.allowed_tables is None
            else TableSet(tuple(qualify(name) for name in policy.allowed_tables)),
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
            views=(closed := _closure(self.views)),
            part_of=_owners(self.parts),
            view_columns={
                view: self._with_sources(
                    frozenset().union(
                        self.view_columns.get(view, frozenset()),
                        *(
                            self.view_columns.get(base, frozenset())
                            for base in closed.get(view, ())
                        ),
                    )
                )
                for view in self.view_columns.keys() | closed.keys()
            },
            table_columns=self.table_columns,
            generated_columns=self.generated_columns,
            server_code=self.server_code,
        )


def _sources_closed(columns: Mapping[str, Collection[str]]) -> dict[str, frozenset[str]]:
    """Generated column -> every column it reads, through other generated columns too
    (``pw_vv AS (pw_v)``, ``pw_v AS (password)``: ``pw_vv`` reads ``password``)."""
    direct = {name.lower(): frozenset(map(str.lower, sources)) for name, sources in columns.items()}
    return _closure(direct)


def input_refused(sql: str) -> str | None:
    """Why no database should be sent ``sql`` (a NUL, a lone surrogate); None when fine."""
    nul = sql.find("\x00")
    if nul >= 0:
        return (
            f"a NUL character at offset {nul} (drivers cut the text there, so the database "
            "would not run what was judged)"
        )
    if not sql.isascii():
        try:
            sql.encode("utf-8")
        except UnicodeEncodeError as error:
            return f"a character at offset {error.start} cannot be encoded ({error.reason})"
    return None


# Dialects with no grammar library and no engine-side check: the fence sends its own SQL.
_SERIALIZED = frozenset({"iris"})
# Dialects whose own grammar is available as a library: the fence compares its reading.
_ENGINE_READERS: dict[str, Callable[[str, str | None, bool], EngineReading]] = {
    "postgres": postgres_grammar.read
}
_DIALECTS: dict[str, Dialect] = {}


def dialect_instance(dialect: str | Dialect) -> Dialect:
    """One Dialect instance per name, so every guard of a dialect shares its parser machinery.

    (``Dialect.get_or_raise(name)`` builds a new instance on each call.)
    """
    if not isinstance(dialect, str):
        return Dialect.get_or_raise(dialect)
    instance = _DIALECTS.get(dialect)
    if instance is None:
        try:
            made = Dialect.get_or_raise(dialect)
        except ValueError as error:
            raise ConfigurationError(str(error)) from None
        instance = _DIALECTS.setdefault(dialect, made)
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

        return (ImplicitJoinFacts(catalog, default_schema or databases.IRIS.default_schema),)
    return ()


def _column_pattern(
    qualify: Callable[[str], tuple[str, ...]], name: str
) -> tuple[tuple[str, ...], str]:
    table, _, column = name.rpartition(".")
    return (qualify(table) if table else ("*", "*")), column.lower().strip('"')

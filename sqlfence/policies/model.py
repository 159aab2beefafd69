"""What is allowed: the immutable, strictly validated ``Policy`` and the per-tenant ``PolicySet``.

A misspelt key is an error, never a silently ignored rule. Every value remembers where it
was written (``origins``), so a denial can say ``policy analyst.yaml:7``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, PrivateAttr, field_validator

STATEMENT_KINDS = (
    "select",
    "insert",
    "update",
    "delete",
    "merge",
    "create",
    "drop",
    "alter",
    "truncate",
    "call",
    "transaction",
    "set",
    "pragma",
    "attach",
    "detach",
    "grant",
    "revoke",
    "copy",
    "command",
    "*",
)
DEFAULT_STATEMENTS = ("select", "insert", "update", "delete", "merge")


class Policy(BaseModel):
    """One agent's rules. Every field has a safe default: read-only, 1,000 rows, no side doors."""

    model_config = ConfigDict(
        frozen=True, extra="forbid", populate_by_name=True, validate_default=True
    )

    mode: Literal["enforce", "detect"] = Field(
        "enforce", description="enforce denies; detect allows but records each violation"
    )
    read_only: bool = Field(True, description="deny every write, DDL, INTO and locking clause")
    statements: tuple[str, ...] = Field(
        DEFAULT_STATEMENTS,
        description="statement kinds allowed (select, insert, ..., '*' for any)",
    )
    allowed_tables: tuple[str, ...] | None = Field(
        None,
        description="when set, only these tables (schema.table, schema.* or table); null = any",
    )
    denied_tables: tuple[str, ...] = Field(
        (),
        validation_alias=AliasChoices("denied_tables", "deny_tables"),
        description="tables never touched, matched after the dialect's normalisation "
        "(alias: deny_tables); a denied table's partitions, inheritance children and shadow "
        "tables (SQLite FTS, R-tree) are denied too, and so are views over it",
    )
    denied_columns: tuple[str, ...] = Field(
        (), description="columns never read or written: table.column, schema.table.column, *.col"
    )
    allow_system_catalog: bool = Field(
        False,
        description="allow reading the system catalog (sqlite_master and every sqlite_ table "
        "such as sqlite_stat1 and sqlite_sequence, pg_catalog, information_schema, IRIS % "
        "schemas); tables named in allowed_tables are allowed anyway; under row filters, "
        "masks, table rules or denied columns the planner's statistics (pg_stats, "
        "pg_statistic, pg_class, pg_stat_*_tables, "
        "sqlite_stat1-4, dbstat), which hold every row's values and counts, stay refused",
    )
    allowed_functions: tuple[str, ...] | None = Field(
        None, description="when set, only these functions may be called"
    )
    denied_functions: tuple[str, ...] = Field(
        (), description="functions never called, on top of the built-in deny list"
    )
    builtin_denied_functions: bool = Field(
        True,
        description="deny the built-in list of file, network, sleep, sequence and dynamic-SQL "
        "functions of each dialect",
    )
    max_rows: int | None = Field(
        1000,
        ge=1,
        le=2**31 - 1,  # what every database takes as a LIMIT
        strict=True,  # `true` is not a row count
        validation_alias=AliasChoices("max_rows", "max_row_limit"),
        description="at most this many rows per query (LIMIT injected, fetch capped); "
        "null = no limit (alias: max_row_limit)",
    )
    on_row_limit: Literal["truncate", "error"] = Field(
        "truncate",
        description="a result with more rows than max_rows: truncate it (cursor.truncated "
        "says so) or raise RowLimitExceeded (the SQLAlchemy dialect's default: an ORM cannot "
        "see a cut result)",
    )
    max_statement_length: int = Field(
        100_000, ge=1, description="longest statement text accepted, in characters"
    )
    max_statement_tokens: int = Field(
        50_000,
        ge=1,
        description="most tokens (words, numbers, strings, symbols) a statement may have: "
        "judging costs time and memory in proportion, so a bigger one is refused unparsed",
    )
    statement_timeout_ms: int | None = Field(
        None, ge=1, description="server-side statement timeout set on every session"
    )
    allow_multiple_statements: bool = Field(
        False, description="allow several statements in one execute (each is judged)"
    )
    allow_unparsed: bool = Field(
        False, description="allow statements the parser does not understand (fail open!)"
    )
    privileged_sessions: Literal["warn", "refuse"] = Field(
        "warn",
        description="a login that is a superuser or may run programs or read/write server "
        "files (PostgreSQL): warn and audit it, or refuse the connection",
    )
    allowlist: tuple[str, ...] = Field(
        (), description="when set, only statements with these fingerprints are allowed"
    )
    row_filters: dict[str, str] = Field(
        default_factory=dict,
        description="rows an agent sees and writes: table (schema.table, schema.*, or *.column "
        "for every table with that column) -> SQL condition on its columns, with :tenant, "
        ":agent_id and :claims.<name> for who the connection acts for (see Row filters)",
    )
    masked_columns: dict[str, str] = Field(
        default_factory=dict,
        description="columns an agent sees only masked, however it selects or uses them: "
        "table.column (schema.table.column, or *.column for every table with that column) "
        "-> null, redact, email, hash or partial(a, b) (see Column masks)",
    )
    mcp_tools: Literal["all", "curated"] = Field(
        "all",
        description="MCP server: every tool (query, explain, the catalog, curated tools) or "
        "only the curated tools of its tools file",
    )

    _origins: dict[str, str] = PrivateAttr(default_factory=dict)

    @field_validator("statements")
    @classmethod
    def _known_statements(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        lowered = tuple(kind.lower() for kind in value)
        unknown = [kind for kind in lowered if kind not in STATEMENT_KINDS]
        if unknown:
            known = ", ".join(STATEMENT_KINDS)
            raise ValueError(f"unknown statement kind {unknown[0]!r} (known: {known})")
        return lowered

    @field_validator("allowed_functions", "denied_functions")
    @classmethod
    def _lowercase(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        return None if value is None else tuple(name.lower() for name in value)

    @field_validator("row_filters")
    @classmethod
    def _valid_filters(cls, value: dict[str, str]) -> dict[str, str]:
        from sqlfence.sql.filter_keys import FilterError, check_key
        from sqlfence.sql.row_filters import parse_filter

        for key, condition in value.items():
            try:
                check_key(key)
                parse_filter(condition)
            except FilterError as error:
                raise ValueError(f"row_filters[{key!r}]: {error}") from None
        return value

    @field_validator("masked_columns")
    @classmethod
    def _valid_masks(cls, value: dict[str, str]) -> dict[str, str]:
        from sqlfence.sql.masks import MaskError, check_key, parse_masker

        for key, masker in value.items():
            try:
                check_key(key)
                parse_masker(key, masker)
            except MaskError as error:
                raise ValueError(f"masked_columns[{key!r}]: {error}") from None
        return value

    @property
    def origins(self) -> Mapping[str, str]:
        """Where each explicitly set key was written, e.g. ``{"denied_tables": "p.yaml:7"}``."""
        return self._origins

    def origin(self, key: str) -> str | None:
        """The location of ``key`` (or of the policy as a whole) for error messages."""
        return self._origins.get(key) or self._origins.get("")

    @property
    def hides_values(self) -> bool:
        """Does the policy hide values the database may quote back (in an error's detail,
        in the statistics): rows of other tenants, masked, denied or unlisted tables' or
        columns' values?"""
        return bool(
            self.row_filters
            or self.masked_columns
            or self.denied_columns
            or self.denied_tables
            or self.allowed_tables is not None
        )

    def allows_statement(self, kind: str) -> bool:
        """True when ``kind`` is one of the allowed statement kinds."""
        return kind in self.statements or "*" in self.statements

    @classmethod
    def unrestricted(cls) -> Policy:
        """A fence that records everything and denies nothing. Ask for it explicitly."""
        return cls(
            read_only=False,
            statements=("*",),
            max_rows=None,
            builtin_denied_functions=False,
            allow_multiple_statements=True,
            allow_unparsed=True,
            allow_system_catalog=True,
        )

    @classmethod
    def json_schema(cls) -> dict[str, Any]:
        """A JSON Schema for policy files (a flat policy or default/tenants/agents sections)."""
        policy = cls.model_json_schema(by_alias=False)
        policy["title"] = "sqlfence policy"
        defs = policy.pop("$defs", {})
        properties = policy["properties"]
        for alias, key in ALIASES.items():  # the design report's names are accepted too
            properties[alias] = {**properties[key], "description": f"alias of {key}"}
        sections = {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "default": {"$ref": "#/$defs/Policy"},
                "tenants": {"type": "object", "additionalProperties": {"$ref": "#/$defs/Tenant"}},
                "agents": {"type": "object", "additionalProperties": {"$ref": "#/$defs/Policy"}},
            },
        }
        # A tenant section is a policy that may also hold its own agents' sections (a copy:
        # the policy's additionalProperties: false would refuse "agents" under allOf).
        tenant = {
            **policy,
            "title": "sqlfence tenant section",
            "properties": {
                **properties,
                "agents": {"type": "object", "additionalProperties": {"$ref": "#/$defs/Policy"}},
            },
        }
        return {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": "sqlfence policy file",
            "anyOf": [{"$ref": "#/$defs/Policy"}, {"$ref": "#/$defs/PolicySet"}],
            "$defs": {**defs, "Policy": policy, "PolicySet": sections, "Tenant": tenant},
        }

    def with_origins(self, origins: Mapping[str, str]) -> Policy:
        """This policy, remembering where its keys were written."""
        self._origins.update(origins)
        return self


ALIASES = {"deny_tables": "denied_tables", "max_row_limit": "max_rows"}  # alias -> key


class PolicySet:
    """A default policy with per-tenant and per-agent overrides, resolved per (agent, tenant).

    Resolution order, later wins key by key: default, tenants[t], agents[a], tenants[t].agents[a].
    """

    def __init__(
        self,
        default: Mapping[str, Any],
        tenants: Mapping[str, Mapping[str, Any]] | None = None,
        agents: Mapping[str, Mapping[str, Any]] | None = None,
        origins: Mapping[tuple[str, ...], str] | None = None,
    ) -> None:
        self._default = dict(default)
        self._tenants = {name: dict(section) for name, section in (tenants or {}).items()}
        self._agents = {name: dict(section) for name, section in (agents or {}).items()}
        self._origins = dict(origins or {})
        self._resolved: dict[tuple[str | None, str | None], Policy] = {}

    def resolve(self, agent_id: str | None = None, tenant: str | None = None) -> Policy:
        """The effective policy for an agent of a tenant. Raises PolicyError when invalid."""
        key = (agent_id, tenant)
        policy = self._resolved.get(key)
        if policy is None:
            policy = self._build(agent_id, tenant)
            self._resolved[key] = policy
        return policy

    def _build(self, agent_id: str | None, tenant: str | None) -> Policy:
        from sqlfence.policies.loader import validate

        layers: list[tuple[tuple[str, ...], Mapping[str, Any]]] = [(("default",), self._default)]
        tenant_section = self._tenants.get(tenant or "", {}) if tenant else {}
        if tenant_section:
            layers.append((("tenants", tenant or ""), tenant_section))
        if agent_id and agent_id in self._agents:
            layers.append((("agents", agent_id), self._agents[agent_id]))
        tenant_agents = tenant_section.get("agents") or {}
        if agent_id and agent_id in tenant_agents:
            layers.append((("tenants", tenant or "", "agents", agent_id), tenant_agents[agent_id]))
        merged: dict[str, Any] = {}
        origins: dict[str, str] = {}
        for path, section in layers:
            for name, value in section.items():
                if name == "agents":
                    continue
                merged[name] = value
                where = self._origins.get(path + (name,))
                if where:
                    origins[_canonical(name)] = where
        whole = self._origins.get(layers[-1][0]) or self._origins.get(())
        if whole:
            origins[""] = whole
        return validate(merged, origins)


def _canonical(key: str) -> str:
    return {"deny_tables": "denied_tables", "max_row_limit": "max_rows"}.get(key, key)

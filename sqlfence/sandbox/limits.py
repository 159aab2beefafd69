"""Sandbox settings: ``Limits`` and the mapping of the design report's ``access_policy`` to Policy.

Validated once, immutable, passed down. ``cpu`` and ``memory`` are accepted for the container
runtimes; without a container they are recorded and not enforced.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sqlfence.errors import ConfigurationError
from sqlfence.policies.loader import validate
from sqlfence.policies.model import Policy

# What an agent may do in its own namespace when the policy is not read-only: it owns the
# database, so DDL is allowed; side doors (ATTACH, PRAGMA, SET, COPY, GRANT) stay closed.
WRITER_STATEMENTS = ("select", "insert", "update", "delete", "merge", "create", "drop", "alter")
READER_STATEMENTS = ("select",)


class Limits(BaseModel):
    """Resource limits of one sandbox. Unknown keys are errors."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    cpu: str | float | None = Field(None, description="CPU share (container runtimes only)")
    memory: str | None = Field(None, description="memory limit such as 512M (containers only)")
    pids: int = Field(256, ge=16, description="processes per dedicated container (containers only)")
    disk_quota_mb: float | None = Field(None, gt=0, description="namespace size limit")
    max_connections: int | None = Field(None, ge=1, description="open fence connections")
    statement_timeout_ms: int | None = Field(None, ge=1, description="per statement, server-side")
    on_quota: Literal["deny", "terminate"] = Field(
        "deny", description="over the disk quota: deny writes, or destroy the sandbox"
    )
    quota_check_interval_s: float | None = Field(
        None, gt=0, description="also check the disk quota on a timer this often"
    )

    @property
    def disk_quota_bytes(self) -> int | None:
        """``disk_quota_mb`` in bytes, or None."""
        return None if self.disk_quota_mb is None else int(self.disk_quota_mb * 1024 * 1024)


def build_limits(limits: Limits | Mapping[str, Any] | None) -> Limits:
    """``limits`` as a validated ``Limits`` (a mapping uses the design report's keys)."""
    if isinstance(limits, Limits):
        return limits
    try:
        return Limits.model_validate(dict(limits or {}))
    except ValidationError as error:
        raise ConfigurationError(f"invalid limits: {error}") from None


def build_policy(access_policy: Policy | Mapping[str, Any] | None, limits: Limits) -> Policy:
    """The fence policy of a sandbox: the agent owns its namespace, so DDL is allowed.

    ``access_policy`` takes the design report's keys (read_only, allowed_tables, deny_tables,
    max_row_limit) and any other ``Policy`` key. A ``Policy`` is used as given, except that a
    statement timeout from ``limits`` is added when the policy has none.
    """
    if isinstance(access_policy, Policy):
        policy = access_policy
    else:
        given = dict(access_policy or {})
        read_only = bool(given.setdefault("read_only", False))
        given.setdefault("statements", READER_STATEMENTS if read_only else WRITER_STATEMENTS)
        policy = validate(given, {})  # a PolicyError naming the bad key
    if policy.statement_timeout_ms is None and limits.statement_timeout_ms is not None:
        policy = policy.model_copy(update={"statement_timeout_ms": limits.statement_timeout_ms})
    return policy

"""sqlfence's MCP server: guarded ``query``, ``list_tables``, ``describe_table``, ``explain``,
curated tools, and the readable tables as resources. This module: its settings and the fence
connections of one MCP session.

Built on the official ``mcp`` SDK (``MCPServer``). Each MCP session gets its own fence
connection (or, with ``sandbox=True``, its own SQLite sandbox that the agent owns, optionally
filled from a golden snapshot), opened on its first call. The identity, and so the policy
section, is the operator's: the configured ``agent_id`` (default ``mcp-client``) and
``tenant``, or over HTTP the identity of the caller's bearer token. What the client says
about itself (``clientInfo.name``) is only recorded, as ``client_name``.

Each tool call is one transaction: committed when it succeeds, rolled back when it fails,
and audited (``mcp_tools.py``). The catalog reads and ``EXPLAIN`` run through a second,
read-only fence connection that runs only the server's fixed SQL. Catalog results are
filtered by the policy: a table it may not read is not listed, and describing it answers as
for a table that does not exist. Results are sized for a context window (rows, bytes per
result, bytes per value), with ``truncated_by`` naming the limits that cut.

Run it: ``sqlfence mcp --policy P URL`` (``--help`` for the options; ``mcp_serve.py``).
Configuration is checked before serving: a problem exits with status 2 and one line.
"""

from __future__ import annotations

import sqlite3
import threading
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlfence.errors import ConfigurationError
from sqlfence.integrations import mcp_catalog
from sqlfence.integrations.mcp_curated import CuratedTool, compile_template
from sqlfence.integrations.mcp_tokens import TokenFile, TokenIdentity
from sqlfence.observe.audit import AuditLog
from sqlfence.observe.settings import AuditOption
from sqlfence.policies.engine import dialect_instance
from sqlfence.policies.loader import PolicySource, load_policy
from sqlfence.policies.model import Policy
from sqlfence.proxy import drivers
from sqlfence.proxy.connect import connect
from sqlfence.proxy.connection import GuardedConnection
from sqlfence.proxy.options import FenceOptions

DEFAULT_AGENT = "mcp-client"
DEFAULT_TIMEOUT_MS = 30_000  # unless the policy sets statement_timeout_ms
DEFAULT_RESULT_BYTES = 64 * 1024
DEFAULT_CELL_BYTES = 4 * 1024
DEFAULT_MAX_SESSIONS = 100  # HTTP sessions at once; at the limit the idlest one is ended
DEFAULT_IDLE_TIMEOUT_S = 300
DEFAULT_SANDBOX_QUOTA_MB = 256
# SQLite builds a whole value before the cell budget can cut it (zeroblob(300000000)): values
# over this are an error on the server's SQLite connections instead of gigabytes of memory.
MAX_VALUE_BYTES = 16 * 1024 * 1024
# The server's own connection runs fixed catalog SQL and EXPLAIN of already-judged
# statements, one at a time; the database makes it read-only underneath (the profile's
# read-only options).
_SERVER_POLICY = Policy.unrestricted().model_copy(update={"allow_multiple_statements": False})


@dataclass(frozen=True)
class MCPSettings:
    """How the MCP server reaches the database and whom it records calls as.

    ``policy``, ``agent_id``, ``tenant`` and ``audit`` are the fence options of that name
    (``sqlfence.proxy.options.FenceOptions``); one audit log serves every session.
    """

    url: str | None = None
    policy: PolicySource = None
    agent_id: str | None = None
    tenant: str | None = None
    claims: Mapping[str, str | int] = field(default_factory=dict)  # row filters' :claims.x
    audit: AuditOption = None
    sandbox: bool = False
    snapshot: str | Path | None = None
    sandbox_root: str | Path | None = None
    sandbox_quota_mb: float = DEFAULT_SANDBOX_QUOTA_MB
    max_rows: int = 200
    max_result_bytes: int = DEFAULT_RESULT_BYTES
    max_cell_bytes: int = DEFAULT_CELL_BYTES
    curated: tuple[CuratedTool, ...] = ()  # from a tools file (mcp_curated.load_tools)
    # HTTP: bearer tokens (a tokens file of hashes -> identities) and the server's own URL
    tokens: TokenFile | None = None
    public_url: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def identity(self) -> str:
        """The agent id every call is recorded and judged as (the operator's, never the
        client's)."""
        return self.agent_id or DEFAULT_AGENT

    @property
    def dialect(self) -> str:
        """The SQL dialect of the database served (``sqlite`` for sandboxes)."""
        if self.sandbox or self.url is None:
            return "sqlite"
        return drivers.for_url(drivers.ConnectionURL.parse(self.url)).dialect

    def identities(self) -> list[TokenIdentity]:
        """Every identity this server may serve: the tokens file's, or the configured one."""
        if self.tokens is not None:
            return self.tokens.identities()
        return [self.configured]

    @property
    def configured(self) -> TokenIdentity:
        """The identity given on the command line (stdio, or HTTP without tokens)."""
        return TokenIdentity(self.identity, self.tenant, tuple(sorted(self.claims.items())))

    def check(self) -> list[Policy]:
        """Everything checkable before serving; raises sqlfence.Error or OSError naming the
        problem. Returns the policy of each identity."""
        if self.max_rows < 1 or self.max_result_bytes < 1 or self.max_cell_bytes < 1:
            raise ConfigurationError("max_rows, max_result_bytes and max_cell_bytes must be >= 1")
        FenceOptions(audit=self.audit).resolved()  # a wrong audit= is named before serving
        if self.tokens is not None and self.agent_id is not None:
            raise ConfigurationError(
                "--agent-id and --tokens exclude each other: with tokens, each token's entry "
                "names its identity"
            )
        policies = [policy_for(self, who.agent_id, who.tenant) for who in self.identities()]
        if not policies:
            raise ConfigurationError(f"tokens file {self.tokens.path} has no tokens")  # type: ignore[union-attr]
        dialect = self.dialect
        for tool in self.curated:  # placeholders and declared parameters agree
            compile_template(tool, dialect_instance(dialect), dialect)
        if self.snapshot is not None and not _snapshot_exists(self.snapshot, self.sandbox_root):
            raise ConfigurationError(
                f"snapshot not found: {self.snapshot} (a shared snapshot name under the "
                "sandbox root, or a snapshot directory)"
            )
        if self.sandbox:
            _try_sandbox(self, policies[0])
            return policies
        if self.url is None:
            raise ConfigurationError("an MCP server needs a database URL unless sandbox=True")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # PrivilegeWarning and the like: said at first use
            connect(self.url, policy=policies[0], telemetry=False).close()  # reachable
        return policies


def policy_for(settings: MCPSettings, agent_id: str, tenant: str | None) -> Policy:
    """The identity's policy, with a statement timeout unless the policy sets one. A sandbox
    without a policy is the agent's own: writes and DDL inside it."""
    policy = settings.policy
    if settings.sandbox and policy is None:
        from sqlfence.sandbox.limits import Limits, build_policy

        return build_policy({"statement_timeout_ms": DEFAULT_TIMEOUT_MS}, Limits())
    if not isinstance(policy, Policy):
        policy = load_policy(policy).resolve(agent_id, tenant)
    if policy.statement_timeout_ms is None:
        policy = policy.model_copy(update={"statement_timeout_ms": DEFAULT_TIMEOUT_MS})
    return policy


class AgentSession:
    """One MCP session's fence connections (and sandbox), closed when the session ends.

    ``lock`` serialises the session's calls: each is one transaction on ``agent``. ``audit``
    is the server's audit log (an ``AuditLog``), shared by the connections and the sandbox's
    lifecycle events. A fence connection learns the catalog (views, generated columns) when
    it opens: ``refresh()`` opens a new one when the schema changed since.
    """

    def __init__(
        self,
        settings: MCPSettings,
        who: TokenIdentity,
        client_name: str | None,
        audit: AuditLog | None = None,
    ) -> None:
        self.who = who  # the whole identity: a session serves no other (claims included)
        self.agent_id, self.tenant = who.agent_id, who.tenant
        self.claims = who.claim_map
        self.client_name = client_name
        self.lock = threading.Lock()
        self.sandbox: str | None = None
        self._sandbox: Any = None
        self._settings, self._audit = settings, audit
        self.policy = policy_for(settings, self.agent_id, self.tenant)
        if settings.sandbox:
            from sqlfence.sandbox import AgentSandbox

            self._sandbox = AgentSandbox.create(
                agent_id=self.agent_id,
                tenant=self.tenant,
                backend="sqlite",
                access_policy=self.policy,
                audit=audit,
                root=settings.sandbox_root,
                load_snapshot=settings.snapshot,
                limits={"disk_quota_mb": settings.sandbox_quota_mb},
            )
            self.sandbox = self._sandbox.name
            self.url: str = self._sandbox.namespace.url
        elif settings.url is None:
            raise ValueError("an MCP server needs a database URL unless sandbox=True")
        else:
            self.url = settings.url
        try:
            self.agent = self._open_agent()
            self.system = self.agent.session.system
            self.server = connect(
                self.url,
                policy=_SERVER_POLICY,
                agent_id=self.agent_id,
                tenant=self.tenant,
                audit=audit,
                client_name=client_name,
                sandbox=self.sandbox,
                **mcp_catalog.read_only_options(self.system),
            )
            self._stamp = mcp_catalog.schema_stamp(self.server)
        except BaseException:
            self.close()  # the sandbox goes with the session that could not start
            raise

    def refresh(self) -> None:
        """A new agent connection when the schema changed since this one learnt it (a table
        or a generated column made by another process); the caller holds ``lock``."""
        stamp = mcp_catalog.schema_stamp(self.server)
        if stamp is None or stamp == self._stamp:
            return
        fresh = self._open_agent()
        self.agent.close()
        self.agent, self._stamp = fresh, stamp

    def _open_agent(self) -> GuardedConnection:
        agent: GuardedConnection
        if self._sandbox is not None:
            agent = self._sandbox.get_connection(client_name=self.client_name)
        else:
            agent = connect(
                self.url,
                policy=self.policy,
                agent_id=self.agent_id,
                tenant=self.tenant,
                claims=self.claims,
                audit=self._audit,
                client_name=self.client_name,
            )
        setlimit = getattr(agent._raw, "setlimit", None)  # sqlite3, Python 3.11+
        length = getattr(sqlite3, "SQLITE_LIMIT_LENGTH", None)
        if setlimit is not None and length is not None:  # no bigger value is ever built
            setlimit(length, MAX_VALUE_BYTES)
        return agent

    def close(self) -> None:
        """Close both connections and destroy the sandbox. Safe to call twice."""
        for name in ("server", "agent"):
            connection = getattr(self, name, None)
            if connection is not None:
                connection.close()
        if self._sandbox is not None:
            self._sandbox.destroy()


def _try_sandbox(settings: MCPSettings, policy: Policy) -> None:
    """Create and destroy one sandbox as a session would: the root is usable, the snapshot
    loads. Raises the sandbox layer's error (a sqlfence.Error) or OSError."""
    from sqlfence.sandbox import AgentSandbox

    AgentSandbox.create(
        agent_id=settings.identity,
        backend="sqlite",
        access_policy=policy,
        root=settings.sandbox_root,
        load_snapshot=settings.snapshot,
    ).destroy()


def _snapshot_exists(snapshot: str | Path, root: str | Path | None) -> bool:
    """Whether ``snapshot`` names a shared snapshot under the root, or a directory, with a
    manifest (what ``AgentSandbox.load_snapshot`` accepts)."""
    from sqlfence.sandbox.sandbox import SNAPSHOTS, resolve_root
    from sqlfence.sandbox.snapshots import SnapshotStore

    if isinstance(snapshot, Path) or "/" in str(snapshot):
        where = Path(snapshot)
        return where.name in SnapshotStore(where.parent).names()
    return str(snapshot) in SnapshotStore(resolve_root(root) / SNAPSHOTS).names()


if __name__ == "__main__":
    from sqlfence.integrations.mcp_serve import main

    main()

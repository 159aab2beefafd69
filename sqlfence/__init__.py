"""sqlfence: a guarded PEP 249 driver and per-agent database sandboxes for AI agents.

``sqlfence.connect(url, policy=...)`` is a drop-in replacement for a driver's ``connect()``:
every statement is parsed, judged against the policy, row-limited, timed and recorded.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from sqlfence.errors import (
    AuditError,
    AuditWarning,
    ConfigurationError,
    DatabaseError,
    DataError,
    DefaultPolicyWarning,
    Error,
    IntegrityError,
    InterfaceError,
    InternalError,
    NotSupportedError,
    OperationalError,
    PolicyError,
    PolicyViolation,
    PrivilegeWarning,
    ProgrammingError,
    QuotaExceeded,
    RowLimitExceeded,
    SandboxError,
    Warning,
)
from sqlfence.lazy import exports

if TYPE_CHECKING:  # the names below are imported on first use (see ``__getattr__``)
    from sqlfence.policies.engine import Decision, Guard
    from sqlfence.policies.loader import load_policy
    from sqlfence.policies.model import Policy, PolicySet
    from sqlfence.policies.rules import Violation
    from sqlfence.proxy.connect import connect, wrap
    from sqlfence.proxy.connection import GuardedConnection
    from sqlfence.proxy.cursor import GuardedCursor

# The fence (sqlglot, pydantic, the observers) is imported when one of its names is first
# used, not by ``import sqlfence``: a command such as ``sqlfence sandbox list`` never needs it
# and starts in a fraction of the time. The errors above are cheap and always there.
_LATER = {
    "Decision": "sqlfence.policies.engine",
    "Guard": "sqlfence.policies.engine",
    "load_policy": "sqlfence.policies.loader",
    "Policy": "sqlfence.policies.model",
    "PolicySet": "sqlfence.policies.model",
    "Violation": "sqlfence.policies.rules",
    "connect": "sqlfence.proxy.connect",
    "wrap": "sqlfence.proxy.connect",
    "GuardedConnection": "sqlfence.proxy.connection",
    "GuardedCursor": "sqlfence.proxy.cursor",
}

__getattr__, __dir__ = exports(__name__, globals(), _LATER)

__version__ = "0.1.0"

# A library does not print: alerts and warnings reach the application's logging setup, if any.
logging.getLogger("sqlfence").addHandler(logging.NullHandler())

# PEP 249 module globals. Connections may be shared between threads, cursors may not
# (the strictest of the wrapped drivers decides). The fence's SQL uses the driver's own
# placeholders: ``paramstyle`` states the default driver's (sqlite3, qmark), and each
# connection's ``paramstyle`` its own (``pyformat`` on PostgreSQL).
apilevel = "2.0"
threadsafety = 1
paramstyle = "qmark"

__all__ = [
    "AuditError",
    "AuditWarning",
    # DBAPI exports
    "ConfigurationError",
    "DataError",
    "DatabaseError",
    "DefaultPolicyWarning",
    "PrivilegeWarning",
    "Error",
    "IntegrityError",
    "InterfaceError",
    "InternalError",
    "NotSupportedError",
    "OperationalError",
    "ProgrammingError",
    "Warning",
    "apilevel",
    "connect",
    "paramstyle",
    "threadsafety",
    # the fence
    "Decision",
    "Guard",
    "GuardedConnection",
    "GuardedCursor",
    "Policy",
    "PolicyError",
    "PolicySet",
    "PolicyViolation",
    "QuotaExceeded",
    "RowLimitExceeded",
    "SandboxError",
    "Violation",
    "__version__",
    "load_policy",
    "wrap",
]

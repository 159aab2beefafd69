"""The PEP 249 exception tree, plus sqlfence's own errors placed under the nearest DBAPI class.

A caller's generic ``except sqlfence.ProgrammingError`` keeps working for a policy denial,
and ``except sqlfence.OperationalError`` for a dead server or a sandbox that is gone.
Every error pickles with its structured fields (so it crosses process boundaries).
"""

from __future__ import annotations

from typing import Any


class Warning(Exception):
    """Important warnings, such as data truncation while inserting."""


class Error(Exception):
    """Base class of every sqlfence error (PEP 249)."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.args, self.__dict__))


def _rebuild(cls: type[Error], args: tuple[Any, ...], state: dict[str, Any]) -> Error:
    error = cls.__new__(cls)
    Exception.__init__(error, *args)
    error.__dict__.update(state)
    return error


class InterfaceError(Error):
    """An error of the database interface rather than the database."""


class DatabaseError(Error):
    """An error related to the database."""


class DataError(DatabaseError):
    """Problems with the processed data: division by zero, value out of range."""


class OperationalError(DatabaseError):
    """The database's operation failed: lost connection, timeout, server gone."""


class IntegrityError(DatabaseError):
    """The relational integrity of the database is affected (a foreign key check fails)."""


class InternalError(DatabaseError):
    """The database hit an internal error (a cursor is no longer valid)."""


class ProgrammingError(DatabaseError):
    """Table not found, syntax error, wrong number of parameters, or a policy denial."""


class NotSupportedError(DatabaseError):
    """A method or database API was used that the database does not support."""


class PolicyViolation(ProgrammingError):
    """The fence denied a statement. ``decision`` carries the facts and every reason."""

    def __init__(self, message: str, decision: Any = None) -> None:
        super().__init__(message)
        self.decision = decision

    @property
    def reasons(self) -> tuple[Any, ...]:
        """The violations that caused the denial (empty when none was recorded)."""
        return tuple(getattr(self.decision, "reasons", ()))


class PolicyError(InterfaceError):
    """A policy file or mapping is malformed; the message names the file and line."""


class QuotaExceeded(OperationalError):
    """A sandbox went over a limit (disk, connections); writes are refused until it is under."""


class AuditError(OperationalError):
    """A statement could not be audited: the audit log refuses writes (a full disk, a read-only
    file system) or made no progress in time. ``cause`` names what failed; ``ran`` says whether
    the statement reached the database (its event is then kept and written when the log can)."""

    def __init__(self, message: str, cause: str = "", ran: bool = False) -> None:
        super().__init__(message)
        self.cause = cause
        self.ran = ran


class RowLimitExceeded(DataError):
    """A result had more rows than the policy's ``max_rows`` and the policy says
    ``on_row_limit: error`` (the rows would otherwise be cut without the caller seeing it)."""


class SandboxError(OperationalError):
    """A sandbox could not be created, reached, or is gone (destroyed, paused, OOM-killed)."""


class NothingMade(SandboxError):
    """A sandbox's ``create`` failed before it made anything (its server did not answer):
    there is nothing for a reaper to remove."""


class LicenceRefused(SandboxError):
    """IRIS refused a login for want of a licence unit: it runs, and it is full."""


class SnapshotCorrupt(SandboxError):
    """A snapshot's files do not match their checksums, or its manifest is unreadable."""


class PoolTimeout(OperationalError):
    """No sandbox of a pool became free within the acquire timeout."""


class ConfigurationError(InterfaceError):
    """A URL, driver or setting cannot be used: unknown scheme, missing extra, bad option."""


__all__ = [
    "AuditError",
    "AuditWarning",
    "ConfigurationError",
    "DataError",
    "DatabaseError",
    "DefaultPolicyWarning",
    "PrivilegeWarning",
    "Error",
    "IntegrityError",
    "InterfaceError",
    "InternalError",
    "LicenceRefused",
    "NotSupportedError",
    "NothingMade",
    "OperationalError",
    "PolicyError",
    "PoolTimeout",
    "PolicyViolation",
    "ProgrammingError",
    "QuotaExceeded",
    "RowLimitExceeded",
    "SandboxError",
    "SnapshotCorrupt",
    "Warning",
]


class AuditWarning(UserWarning):
    """The audit log could not record events and ``on_audit_failure="continue"`` let the
    statements run anyway (given once per stretch of failure; the count is in ``stats()``)."""


class DefaultPolicyWarning(UserWarning):
    """A connection was opened without a policy and got the safe default."""


class PrivilegeWarning(UserWarning):
    """The database login can do more than SQL: a superuser, or one that runs programs or
    reads and writes files on the server. A fence cannot make such a session safe."""

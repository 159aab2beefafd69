"""The fence's own options, declared once: ``FenceOptions`` and the names derived from it.

``connect()`` and ``wrap()`` spell the options out as keyword parameters, which is what IDEs
and ``help()`` show; a test checks that their signatures and ``FenceOptions`` agree (names,
order, defaults, types). What takes or forwards the options (the SQLAlchemy dialects, the
MCP server, sandboxes and their pool) takes their names and types from here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from typing import TypeVar

from sqlfence.errors import ConfigurationError
from sqlfence.observe.observer import Observer
from sqlfence.observe.settings import (
    AuditOption,
    MonitoringOption,
    TelemetryOption,
    resolve_audit,
    resolve_monitoring,
    resolve_telemetry,
)
from sqlfence.policies.loader import PolicySource

_Given = TypeVar("_Given")
_Resolved = TypeVar("_Resolved")


@dataclass(frozen=True)
class FenceOptions:
    """What the fence judges a connection by and records it with.

    ``policy``: a YAML path, YAML text, a mapping, a ``Policy`` or a ``PolicySet``; None is
    the safe default (read-only, 1,000 rows) and a warning saying so. ``agent_id`` and
    ``tenant`` choose the policy's section and label every event; with ``claims`` (the
    claims of the caller's token, say) they are the values a row filter's ``:tenant``,
    ``:agent_id`` and ``:claims.<name>`` take. ``audit`` (off by
    default), ``monitoring`` and ``telemetry`` (on by default) take what
    ``sqlfence.observe.settings`` declares (``AuditOption`` ...). ``observer``: an
    ``Observer`` the connection reports to instead of those three. ``catalog``: IRIS
    reference columns (``{"Schema.Table.Column": "Schema.Target"}``) for ``->``, instead of
    reading them from the server.
    """

    policy: PolicySource = None
    agent_id: str | None = None
    tenant: str | None = None
    claims: Mapping[str, str | int] | None = None
    audit: AuditOption = None
    monitoring: MonitoringOption = None
    telemetry: TelemetryOption = True
    observer: Observer | None = None
    catalog: Mapping[str, str] | None = None

    def resolved(self) -> FenceOptions:
        """These options with ``audit``, ``monitoring`` and ``telemetry`` resolved to their
        settings (or the parts given), so that a wrong one fails before a database is reached.

        Raises TypeError for a shape an option does not take and ConfigurationError for
        invalid settings, each naming the option. With an ``observer``, the three are not
        used and so not looked at.
        """
        if self.observer is not None:
            return self
        return replace(
            self,
            audit=_resolved("audit", resolve_audit, self.audit),
            monitoring=_resolved("monitoring", resolve_monitoring, self.monitoring),
            telemetry=_resolved("telemetry", resolve_telemetry, self.telemetry),
        )


FENCE_OPTIONS: tuple[str, ...] = tuple(field.name for field in fields(FenceOptions))
# connect()'s other keywords of its own: what the session is recorded under (the sandbox it
# belongs to, the name a client gave itself). Everything else goes to the driver.
SESSION_LABELS = ("sandbox", "client_name")
CONNECT_OPTIONS = (*FENCE_OPTIONS, *SESSION_LABELS)


def _resolved(option: str, resolve: Callable[[_Given], _Resolved], value: _Given) -> _Resolved:
    try:
        return resolve(value)
    except ValueError as error:  # pydantic's ValidationError: a misspelt or invalid key
        raise ConfigurationError(f"invalid {option}= settings: {error}") from None

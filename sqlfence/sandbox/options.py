"""What sandboxes are made with: the options of ``AgentSandbox.create`` that a ``SandboxPool``
passes on to every sandbox it makes, and the fence options their connections are opened with.

``SandboxOptions`` is checked against ``AgentSandbox.create``'s signature by a test, as
``FenceOptions`` is against ``connect()``'s; ``audit`` and ``monitoring`` are the fence
options of those names (``sqlfence.observe.settings`` declares what each takes).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any, TypedDict

from sqlfence.observe.parts import EventSink
from sqlfence.observe.settings import AuditOption, MonitoringOption
from sqlfence.policies.model import Policy
from sqlfence.proxy.options import FenceOptions
from sqlfence.sandbox.limits import Limits


class SandboxOptions(TypedDict, total=False):
    """``AgentSandbox.create``'s keywords beyond those a pool has of its own (``backend``,
    ``runtime``, ``placement``, ``image``, ``server_url``, ``root``) and the agent it sets."""

    tenant: str | None
    limits: Limits | Mapping[str, Any] | None
    monitoring: MonitoringOption
    access_policy: Policy | Mapping[str, Any] | None
    audit_log: Mapping[str, Any] | None
    audit: AuditOption
    ttl: float | timedelta | None
    load_snapshot: str | Path | None
    on_event: EventSink | None


SANDBOX_OPTIONS: tuple[str, ...] = tuple(SandboxOptions.__annotations__)


def observing(
    audit: AuditOption = None,
    monitoring: MonitoringOption = None,
    audit_log: Mapping[str, Any] | None = None,
) -> tuple[AuditOption, MonitoringOption]:
    """``audit`` and ``monitoring`` resolved for a sandbox's connections, so that a wrong one
    fails before anything is made. ``audit_log`` (the design report's section) stands for
    ``audit`` when that is None and the section is enabled.

    Raises TypeError for a shape an option does not take and ConfigurationError for invalid
    settings, each naming the option.
    """
    if audit is None and audit_log and audit_log.get("enabled", True):
        audit = dict(audit_log)
    resolved = FenceOptions(audit=audit, monitoring=monitoring).resolved()
    return resolved.audit, resolved.monitoring

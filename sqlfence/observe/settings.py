"""One immutable settings object per observability concern: audit, monitor, telemetry.

Unknown keys are errors (a misspelt ``retention_day`` must not silently keep logs forever).
Every model accepts the keyword names of the design report (``log_queries``,
``export_format``, ``alert_on_slow_query_ms``, ``log_all_queries`` ...).

What ``connect(audit=, monitoring=, telemetry=)`` take is declared here too, each as a type
(``AuditOption``, ``MonitoringOption``, ``TelemetryOption``) with the one function that
resolves it to its settings (``resolve_audit``, ``resolve_monitoring``, ``resolve_telemetry``).
"""

from __future__ import annotations

import os
import reprlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeAlias, TypeVar

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

if TYPE_CHECKING:  # the parts are built on these settings: imported where they are needed
    from sqlfence.observe.audit import AuditLog
    from sqlfence.observe.monitor import Monitor
    from sqlfence.observe.telemetry import Telemetry

SinkName = Literal["file", "stdout", "logging", "structlog"]
AuditSink = SinkName | Callable[[dict[str, Any]], None]

DEFAULT_AUDIT_DIRECTORY = Path(".sqlfence") / "audit"
AUDIT_KEY_ENV = "SQLFENCE_AUDIT_KEY"


class _Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)


class AuditSettings(_Settings):
    """Where and how audit events are written. ``AuditSettings()`` is a sensible default.

    The chain key comes from ``key``, else the ``SQLFENCE_AUDIT_KEY`` environment variable,
    else ``key_file`` (default ``<directory>/audit.key``, created with mode 0600 when missing);
    a key shorter than 16 bytes is refused.

    ``durability``: ``batched`` (default) queues each event when its statement runs and a
    background writer writes it within ``flush_interval_s``; a process crash or SIGKILL loses
    at most the events not yet written, never more than ``queue_size + batch_size``. ``sync``
    makes every call that records an event (``execute``, ``connect``...) return only once the
    event is written and fsynced; concurrent events share one fsync (group commit).
    ``durable=True`` is the older spelling of ``sync``.

    ``on_audit_failure``: ``fail_closed`` (default) raises ``sqlfence.errors.AuditError`` (an
    ``OperationalError``) from a statement whose event cannot be written, and refuses new
    statements while the log refuses writes; ``continue`` lets statements run, counting and
    logging what could not be recorded. Nothing waits on the log longer than
    ``wait_timeout_s`` (``put_timeout_s`` is its older name).
    """

    enabled: bool = True
    directory: Path = DEFAULT_AUDIT_DIRECTORY
    prefix: str = Field("audit", pattern=r"^[A-Za-z0-9_.]+$")
    sinks: tuple[AuditSink, ...] = ("file",)
    key: SecretStr | None = None
    key_file: Path | None = None
    # What is recorded. Denials, errors and the log's own events are always recorded.
    log_queries: bool = True
    log_connections: bool = True
    log_schema_changes: bool = True
    log_params: bool = False
    mask_literals: bool = False
    # A statement longer than this is recorded cut (a denied 10 MB text must not cost 10 MB a
    # line); the default keeps every statement the default max_statement_length allows whole.
    max_query_chars: int | None = Field(100_000, gt=0)
    # Files.
    export_format: Literal["json", "jsonl", "csv"] = "jsonl"
    retention_days: float | None = Field(None, gt=0)
    max_file_bytes: int = Field(64 * 1024 * 1024, gt=0)
    rotate_daily: bool = True
    # What survives a crash, and what a fault does to statements.
    durability: Literal["batched", "sync"] = "batched"
    on_audit_failure: Literal["fail_closed", "continue"] = "fail_closed"
    wait_timeout_s: float = Field(10.0, gt=0)
    # The background writer.
    queue_size: int = Field(8_192, gt=0)
    batch_size: int = Field(1_024, gt=0)
    flush_interval_s: float = Field(0.1, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _older_names(cls, data: Any) -> Any:
        """``durable`` and ``put_timeout_s``, the names these settings had before."""
        if not isinstance(data, dict) or not ({"durable", "put_timeout_s"} & data.keys()):
            return data
        data = dict(data)
        if "durable" in data:
            durable = data.pop("durable")
            if not isinstance(durable, bool):
                raise ValueError(f"durable must be true or false, not {durable!r}")
            wanted = "sync" if durable else "batched"
            if data.setdefault("durability", wanted) != wanted:
                raise ValueError(f"durable={durable} contradicts durability={data['durability']!r}")
        if "put_timeout_s" in data:
            timeout = data.pop("put_timeout_s")
            if timeout is not None:
                data.setdefault("wait_timeout_s", timeout)
        return data

    @field_validator("sinks", mode="before")
    @classmethod
    def _one_sink_is_a_list(cls, value: Any) -> Any:
        if isinstance(value, str) or callable(value):
            return (value,)
        return value

    @property
    def durable(self) -> bool:
        """True in ``sync`` durability (the older name of that mode)."""
        return self.durability == "sync"

    @property
    def fail_closed(self) -> bool:
        """True when a statement that cannot be audited must fail."""
        return self.on_audit_failure == "fail_closed"

    @property
    def resolved_key_file(self) -> Path:
        """The key file used when neither ``key`` nor the environment variable gives a key."""
        return self.key_file if self.key_file is not None else self.directory / "audit.key"


class MonitorSettings(_Settings):
    """Live metrics and alert rules. A rule whose threshold is None is off.

    A statement is counted as slow from ``alert_on_slow_query_ms`` when that is set, else from
    ``slow_query_ms``. The same alert (kind and connection or agent) fires at most once per
    ``alert_cooldown_s``. Callbacks and webhooks run on a background thread.
    """

    enabled: bool = True
    slow_query_ms: float = Field(1000.0, gt=0)
    alert_on_slow_query_ms: float | None = Field(None, gt=0)
    alert_on_denials: int | None = Field(5, gt=0)
    denial_window_s: float = Field(60.0, gt=0)
    alert_on_error_rate: float | None = Field(None, gt=0, le=1)
    error_rate_window: int = Field(50, gt=0)
    alert_on_cpu_percent: float | None = Field(None, gt=0)
    alert_on_memory_mb: float | None = Field(None, gt=0)
    alert_on_memory_percent: float | None = Field(None, gt=0)
    alert_on_disk_mb: float | None = Field(None, gt=0)
    alert_on_disk_percent: float | None = Field(None, gt=0)
    alert_cooldown_s: float = Field(60.0, ge=0)
    callbacks: tuple[Callable[..., Any], ...] = ()
    webhook: str | None = None
    webhooks: tuple[str, ...] = ()
    webhook_headers: dict[str, str] = Field(default_factory=dict)
    webhook_timeout_s: float = Field(5.0, gt=0)
    webhook_retries: int = Field(3, ge=0)
    webhook_backoff_s: float = Field(0.5, ge=0)
    log_all_queries: bool = False
    queue_size: int = Field(10_000, gt=0)

    @field_validator("callbacks", mode="before")
    @classmethod
    def _one_callback_is_a_list(cls, value: Any) -> Any:
        return (value,) if callable(value) else value

    @field_validator("webhook", "webhooks", mode="after")
    @classmethod
    def _http_only(cls, value: Any) -> Any:
        for url in (value,) if isinstance(value, str) else value or ():
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"webhook {url!r} is not an http:// or https:// URL")
        return value

    @property
    def slow_threshold_ms(self) -> float:
        """The duration from which a statement counts as slow."""
        if self.alert_on_slow_query_ms is not None:
            return self.alert_on_slow_query_ms
        return self.slow_query_ms

    @property
    def webhook_urls(self) -> tuple[str, ...]:
        """``webhook`` and ``webhooks`` together."""
        return ((self.webhook,) if self.webhook else ()) + self.webhooks

    def __hash__(self) -> int:  # the headers dict is not hashable; settings are frozen
        return hash((type(self), self.model_dump_json(exclude={"callbacks"}), self.callbacks))


class TelemetrySettings(_Settings):
    """OpenTelemetry spans and metrics through the application's providers.

    ``query_text``: ``auto`` records parameterised text as is and masks the literals of
    text sent without parameters (the semantic conventions' default); ``masked`` always
    masks; ``raw`` never does; ``off`` leaves ``db.query.text`` out. With ``background``
    (the default) spans and metrics are built on a worker thread from timestamps taken on
    the query's thread, so the query pays for a queue append; when that worker falls behind
    (its queue is full) the query's thread waits rather than telemetry being lost.
    ``exemplars`` records metrics in the statement span's context, so the SDK may attach
    exemplars (linking a histogram bucket to a trace) at a few microseconds per measurement.
    ``returned_rows`` (opt-in, as in the semantic conventions) adds ``db.response.returned_rows``
    to spans and records the ``db.client.response.returned_rows`` histogram, one more SDK
    measurement per statement. Span attributes are built only for spans the application's
    sampler records.
    ``tracer_provider``/``meter_provider`` override the global ones.
    """

    enabled: bool = True
    spans: bool = True
    metrics: bool = True
    query_text: Literal["auto", "masked", "raw", "off"] = "auto"
    returned_rows: bool = False
    exemplars: bool = False
    background: bool = True
    queue_size: int = Field(16_384, gt=0)
    tracer_provider: Any = None
    meter_provider: Any = None

    def __hash__(self) -> int:
        return hash(
            (
                self.enabled,
                self.spans,
                self.metrics,
                self.query_text,
                self.returned_rows,
                self.exemplars,
                self.background,
                self.queue_size,
                id(self.tracer_provider),
                id(self.meter_provider),
            )
        )


# -- what connect(audit=, monitoring=, telemetry=) take ------------------------------------
# Each option's shapes, and the one function that resolves them to settings (or to the part
# the caller built and keeps: an AuditLog, Monitor or Telemetry is used as is, not closed).

AuditOption: TypeAlias = (
    "bool | str | os.PathLike[str] | Mapping[str, object] | AuditSettings | AuditLog | None"
)
MonitoringOption: TypeAlias = "bool | Mapping[str, object] | MonitorSettings | Monitor | None"
TelemetryOption: TypeAlias = "bool | Mapping[str, object] | TelemetrySettings | Telemetry | None"

_S = TypeVar("_S", bound=_Settings)


def resolve_audit(value: AuditOption) -> AuditSettings | AuditLog:
    """``audit=`` as its settings: None or False is off (``enabled=False``), True the
    defaults, a directory (str or path) the defaults there, a mapping of ``AuditSettings``
    keys those settings; an ``AuditSettings`` or an ``AuditLog`` is returned as given.

    Raises TypeError, naming what was given, for any other value, and pydantic's
    ValidationError (a ValueError) for unknown or invalid keys.
    """
    if value is None or value is False:
        return AuditSettings(enabled=False)
    if isinstance(value, (str, os.PathLike)):
        return AuditSettings(directory=Path(value))
    settings = _settings(value, AuditSettings)
    if settings is not None:
        return settings
    from sqlfence.observe.audit import AuditLog  # audit.py imports this module

    if isinstance(value, AuditLog):
        return value
    raise _refused("audit", value, AuditSettings, "an AuditLog", "a directory (str or path)")


def resolve_monitoring(value: MonitoringOption) -> MonitorSettings | Monitor:
    """``monitoring=`` as its settings: None or True the defaults (metrics, and the denial
    burst as the one alert rule), False off (``enabled=False``), a mapping of
    ``MonitorSettings`` keys those settings; a ``MonitorSettings`` or a ``Monitor`` is
    returned as given. Raises as ``resolve_audit`` does.
    """
    if value is False:
        return MonitorSettings(enabled=False)
    settings = _settings(True if value is None else value, MonitorSettings)
    if settings is not None:
        return settings
    from sqlfence.observe.monitor import Monitor  # monitor.py imports this module

    if isinstance(value, Monitor):
        return value
    raise _refused("monitoring", value, MonitorSettings, "a Monitor")


def resolve_telemetry(value: TelemetryOption) -> TelemetrySettings | Telemetry:
    """``telemetry=`` as its settings: None or True the defaults (spans and metrics through
    the global providers), False off (``enabled=False``), a mapping of
    ``TelemetrySettings`` keys those settings; a ``TelemetrySettings`` or a ``Telemetry`` is
    returned as given. Raises as ``resolve_audit`` does.
    """
    if value is False:
        return TelemetrySettings(enabled=False)
    settings = _settings(True if value is None else value, TelemetrySettings)
    if settings is not None:
        return settings
    from sqlfence.observe.telemetry import Telemetry  # telemetry.py imports this module

    if isinstance(value, Telemetry):
        return value
    raise _refused("telemetry", value, TelemetrySettings, "a Telemetry")


def _settings(value: object, settings_type: type[_S]) -> _S | None:
    """``value`` as ``settings_type``: True for the defaults, a mapping of its keys, or the
    settings themselves. None for anything else (the caller names what it accepts)."""
    if value is True:
        return settings_type()
    if isinstance(value, Mapping):
        return settings_type.model_validate(dict(value))
    if isinstance(value, settings_type):
        return value
    return None


def _refused(
    option: str, value: object, settings_type: type[_Settings], part: str, *also: str
) -> TypeError:
    """The error for a value ``option`` does not take: what it takes, and what it was given."""
    name = settings_type.__name__
    takes = ", ".join(("None", "a bool", *also, f"a mapping of {name} keys", name))
    given = f"{type(value).__name__} {reprlib.repr(value)}"
    return TypeError(f"{option}= takes {takes} or {part}, not {given}")

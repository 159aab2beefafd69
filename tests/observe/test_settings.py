"""Settings objects (sqlfence/observe/settings.py): strict, frozen, the design report's keys;
what audit=, monitoring= and telemetry= take and what each resolves to."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pydantic
import pytest

from sqlfence.observe.audit import AuditLog
from sqlfence.observe.monitor import Monitor
from sqlfence.observe.settings import (
    AuditSettings,
    MonitorSettings,
    TelemetrySettings,
    resolve_audit,
    resolve_monitoring,
    resolve_telemetry,
)
from sqlfence.observe.telemetry import Telemetry
from tests.observe.conftest import DESIGN_REPORT_AUDIT_LOG


@pytest.mark.parametrize("model", [AuditSettings, MonitorSettings, TelemetrySettings])
def test_unknown_keys_are_errors(model: type[pydantic.BaseModel]) -> None:
    """A misspelt key is rejected, never ignored."""
    with pytest.raises(pydantic.ValidationError, match="extra"):
        model.model_validate({"enabledd": True})


@pytest.mark.parametrize("model", [AuditSettings, MonitorSettings, TelemetrySettings])
def test_settings_are_frozen_and_hashable(model: type[pydantic.BaseModel]) -> None:
    """Settings cannot change after validation and equal settings hash alike."""
    settings = model()
    with pytest.raises(pydantic.ValidationError):
        settings.enabled = False  # type: ignore[attr-defined]
    assert hash(settings) == hash(model())


def test_audit_defaults_and_design_report_keys() -> None:
    """The default directory is .sqlfence/audit; the design report's audit_log keys load."""
    settings = AuditSettings.model_validate(DESIGN_REPORT_AUDIT_LOG)
    assert settings.directory == Path(".sqlfence/audit")
    assert settings.resolved_key_file == Path(".sqlfence/audit/audit.key")
    assert settings.sinks == ("file",)
    assert AuditSettings(sinks="stdout").sinks == ("stdout",)


def test_monitor_thresholds_and_webhooks() -> None:
    """The slow threshold follows the alert threshold when set; webhooks must be http(s)."""
    assert MonitorSettings().slow_threshold_ms == 1000
    settings = MonitorSettings(
        alert_on_slow_query_ms=250,
        webhook="https://hooks.example/a",
        webhooks=("http://b",),
        callbacks=print,
    )
    assert settings.slow_threshold_ms == 250
    assert settings.webhook_urls == ("https://hooks.example/a", "http://b")
    assert settings.callbacks == (print,)
    with pytest.raises(pydantic.ValidationError, match="webhook"):
        MonitorSettings(webhooks=("file:///etc/passwd",))
    with pytest.raises(pydantic.ValidationError):
        MonitorSettings(alert_on_error_rate=1.5)


def test_durability_and_failure_settings_and_their_older_names() -> None:
    """durability and on_audit_failure default to batched and fail_closed; durable=True and
    put_timeout_s still work as the older names of sync and wait_timeout_s."""
    settings = AuditSettings()
    assert (settings.durability, settings.on_audit_failure) == ("batched", "fail_closed")
    assert settings.fail_closed
    assert not settings.durable
    assert AuditSettings(durable=True) == AuditSettings(durability="sync")  # type: ignore[call-arg]
    assert AuditSettings.model_validate({"durable": False}).durability == "batched"
    assert AuditSettings(put_timeout_s=0.5).wait_timeout_s == 0.5  # type: ignore[call-arg]
    with pytest.raises(pydantic.ValidationError, match="contradicts"):
        AuditSettings(durable=True, durability="batched")  # type: ignore[call-arg]
    with pytest.raises(pydantic.ValidationError):
        AuditSettings(durability="eventually")
    with pytest.raises(pydantic.ValidationError):
        AuditSettings(on_audit_failure="ignore")


# -- audit=, monitoring=, telemetry=: every shape each takes, and what it resolves to -------


class _Directory:
    """An os.PathLike that is not a Path."""

    def __fspath__(self) -> str:
        return "elsewhere"


# (resolve, what is given, the settings it resolves to)
SHAPES: list[tuple[Callable[[Any], Any], object, object]] = [
    (resolve_audit, None, AuditSettings(enabled=False)),
    (resolve_audit, False, AuditSettings(enabled=False)),
    (resolve_audit, True, AuditSettings()),
    (resolve_audit, "logs", AuditSettings(directory=Path("logs"))),
    (resolve_audit, Path("logs"), AuditSettings(directory=Path("logs"))),
    (resolve_audit, _Directory(), AuditSettings(directory=Path("elsewhere"))),
    (resolve_audit, {"retention_days": 9}, AuditSettings(retention_days=9)),
    (resolve_audit, MappingProxyType({"log_params": True}), AuditSettings(log_params=True)),
    (resolve_audit, {"durable": True}, AuditSettings(durability="sync")),
    (resolve_monitoring, None, MonitorSettings()),
    (resolve_monitoring, True, MonitorSettings()),
    (resolve_monitoring, False, MonitorSettings(enabled=False)),
    (resolve_monitoring, {"slow_query_ms": 5}, MonitorSettings(slow_query_ms=5)),
    (resolve_monitoring, MappingProxyType({"enabled": False}), MonitorSettings(enabled=False)),
    (resolve_telemetry, None, TelemetrySettings()),
    (resolve_telemetry, True, TelemetrySettings()),
    (resolve_telemetry, False, TelemetrySettings(enabled=False)),
    (resolve_telemetry, {"query_text": "masked"}, TelemetrySettings(query_text="masked")),
]


@pytest.mark.parametrize(
    ("resolve", "given", "expected"),
    SHAPES,
    ids=[
        f"{resolve.__name__}-{type(given).__name__}-{n}"
        for n, (resolve, given, _) in enumerate(SHAPES)
    ],
)
def test_every_shape_resolves_to_its_settings(
    resolve: Callable[[Any], Any], given: object, expected: object
) -> None:
    """Each shape an option takes resolves to the settings it stands for."""
    resolved = resolve(given)
    assert resolved == expected
    assert resolve(resolved) is resolved  # resolving is idempotent: settings stay as given


@pytest.mark.parametrize(
    ("resolve", "settings"),
    [
        (resolve_audit, AuditSettings(prefix="other")),
        (resolve_monitoring, MonitorSettings(slow_query_ms=1)),
        (resolve_telemetry, TelemetrySettings(spans=False)),
    ],
)
def test_settings_are_returned_as_given(resolve: Callable[[Any], Any], settings: object) -> None:
    """A settings object is the option already resolved: the same object comes back."""
    assert resolve(settings) is settings


def test_a_part_the_caller_built_is_returned_as_given(audit_dir: Path) -> None:
    """An AuditLog, Monitor or Telemetry is used as is (the caller keeps and closes it)."""
    log = AuditLog(AuditSettings(directory=audit_dir))
    monitor = Monitor(MonitorSettings())
    telemetry = Telemetry(TelemetrySettings(background=False))
    try:
        assert resolve_audit(log) is log
        assert resolve_monitoring(monitor) is monitor
        assert resolve_telemetry(telemetry) is telemetry
    finally:
        log.close()
        monitor.close()
        telemetry.close()


# (resolve, a value it does not take, the type name the message must give)
REFUSED: list[tuple[Callable[[Any], Any], object, str]] = [
    (resolve_audit, 42, "int 42"),
    (resolve_audit, 0.5, "float 0.5"),
    (resolve_audit, ["logs"], "list ['logs']"),
    (resolve_audit, b"logs", "bytes b'logs'"),
    (resolve_audit, MonitorSettings(), "MonitorSettings"),
    (resolve_monitoring, "on", "str 'on'"),
    (resolve_monitoring, 1, "int 1"),
    (resolve_monitoring, AuditSettings(), "AuditSettings"),
    (resolve_monitoring, print, "builtin_function_or_method"),
    (resolve_telemetry, "off", "str 'off'"),
    (resolve_telemetry, 0, "int 0"),
    (resolve_telemetry, MonitorSettings(), "MonitorSettings"),
]


@pytest.mark.parametrize(
    ("resolve", "given", "named"),
    REFUSED,
    ids=[f"{resolve.__name__}-{named}" for resolve, _, named in REFUSED],
)
def test_a_shape_an_option_does_not_take_is_a_type_error(
    resolve: Callable[[Any], Any], given: object, named: str
) -> None:
    """A wrong shape raises TypeError naming the option, what it takes and what was given."""
    option = resolve.__name__.removeprefix("resolve_")
    with pytest.raises(TypeError) as raised:
        resolve(given)
    message = str(raised.value)
    assert message.startswith(f"{option}= takes None, a bool, ")
    assert f", not {named}" in message


@pytest.mark.parametrize(
    ("resolve", "given", "key"),
    [
        (resolve_audit, {"retention_day": 9}, "retention_day"),
        (resolve_monitoring, {"alert_on_slow_query": 5}, "alert_on_slow_query"),
        (resolve_monitoring, {"webhook": "ftp://x"}, "webhook"),
        (resolve_telemetry, {"span": False}, "span"),
    ],
)
def test_unknown_or_invalid_keys_of_a_mapping_are_validation_errors(
    resolve: Callable[[Any], Any], given: dict[str, object], key: str
) -> None:
    """A mapping is validated as the settings are: a misspelt key is never ignored."""
    with pytest.raises(pydantic.ValidationError, match=key):
        resolve(given)

"""Settings objects (sqlfence/observe/settings.py): strict, frozen, the design report's keys."""

from __future__ import annotations

from pathlib import Path

import pydantic
import pytest

from sqlfence.observe.settings import AuditSettings, MonitorSettings, TelemetrySettings
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

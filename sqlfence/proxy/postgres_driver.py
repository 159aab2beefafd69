"""PostgreSQL through psycopg 3: ``postgresql://user:password@host:port/database?options``.

The second layer is the server's: ``default_transaction_read_only`` and ``statement_timeout``
are set as session options at connect time, before the agent's first statement.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlfence.policies.engine import Guard
from sqlfence.proxy.drivers import ConnectionURL, Driver


class PostgresDriver(Driver):
    """psycopg 3 (the ``postgres`` extra)."""

    name = "postgresql"
    schemes = ("postgresql", "postgres", "postgresql+psycopg")
    module_name = "psycopg"
    extra = "postgres"
    dialect = "postgres"
    system = "postgresql"
    default_schema = "public"

    def connect(self, url: ConnectionURL, guard: Guard, kwargs: dict[str, Any]) -> Any:
        params: dict[str, Any] = dict(url.options)
        for key, value in (
            ("user", url.username),
            ("password", url.password),
            ("host", url.host),
            ("port", url.port),
            ("dbname", url.database),
        ):
            if value:
                params.setdefault(key, value)
        params.update(kwargs)
        settings = _session_settings(guard)
        if settings:
            extra = " ".join(f"-c {name}={value}" for name, value in settings.items())
            params["options"] = f"{params.get('options', '')} {extra}".strip()
        return self.module.connect(**params)

    def harden(self, raw: Any, guard: Guard, opened: bool) -> Callable[[], None] | None:
        if opened:
            return None  # the session options were given at connect time
        settings = _session_settings(guard)
        if settings:
            with raw.cursor() as cursor:
                for name, value in settings.items():
                    cursor.execute(f"SET SESSION {name} = {value}")
            if not getattr(raw, "autocommit", False):
                raw.commit()
        return None


def _session_settings(guard: Guard) -> dict[str, str]:
    policy = guard.policy
    settings: dict[str, str] = {}
    if policy.read_only and policy.mode == "enforce":
        settings["default_transaction_read_only"] = "on"
    if policy.statement_timeout_ms is not None:
        settings["statement_timeout"] = str(int(policy.statement_timeout_ms))
    return settings


DRIVER = PostgresDriver()

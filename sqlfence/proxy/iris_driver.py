"""InterSystems IRIS through ``iris.dbapi``: ``iris://user:password@host:port/NAMESPACE``.

Query options: ``timeout`` (connect timeout, seconds) and ``sharedmemory`` (true/false).
The second layer is the driver's per-cursor query timeout (``setQueryTimeout``).
"""

from __future__ import annotations

from typing import Any

from sqlfence.policies.engine import Guard
from sqlfence.proxy.drivers import ConnectionURL, Driver

_TRUE = {"1", "true", "yes", "on"}
_CATALOG_QUERY = """
SELECT k.TABLE_SCHEMA, k.TABLE_NAME, k.COLUMN_NAME, u.TABLE_SCHEMA, u.TABLE_NAME
FROM INFORMATION_SCHEMA.REFERENTIAL_CONSTRAINTS r
JOIN INFORMATION_SCHEMA.KEY_COLUMN_USAGE k
  ON k.CONSTRAINT_SCHEMA = r.CONSTRAINT_SCHEMA AND k.CONSTRAINT_NAME = r.CONSTRAINT_NAME
JOIN INFORMATION_SCHEMA.TABLE_CONSTRAINTS u
  ON u.CONSTRAINT_SCHEMA = r.UNIQUE_CONSTRAINT_SCHEMA
 AND u.CONSTRAINT_NAME = r.UNIQUE_CONSTRAINT_NAME
"""


class IrisDriver(Driver):
    """intersystems-irispython's ``iris.dbapi``."""

    name = "iris"
    schemes = ("iris", "intersystems")
    module_name = "iris.dbapi"
    extra = None  # a core dependency
    dialect = "iris"
    system = "intersystems_iris"
    default_schema = "SQLUser"

    def connect(self, url: ConnectionURL, guard: Guard, kwargs: dict[str, Any]) -> Any:
        params: dict[str, Any] = {
            "hostname": url.host or "localhost",
            "port": url.port or 1972,
            "namespace": url.database or "USER",
            "username": url.username or "",
            "password": url.password or "",
        }
        options = dict(url.options)
        if "timeout" in options:
            params["timeout"] = int(float(options.pop("timeout")))
        if "sharedmemory" in options:
            params["sharedmemory"] = options.pop("sharedmemory").lower() in _TRUE
        params.update(options)
        params.update(kwargs)
        return self.module.connect(**params)

    def load_catalog(self, raw: Any) -> dict[str, str]:
        """Foreign-key and reference columns from INFORMATION_SCHEMA, for ``->`` resolution.

        Written against the SQL standard's INFORMATION_SCHEMA views, which IRIS documents;
        not yet run against a live IRIS here. A failure leaves the catalog empty, and then
        arrows are denied under table rules (fail closed).
        """
        cursor = raw.cursor()
        try:
            cursor.execute(_CATALOG_QUERY)
            rows = cursor.fetchall()
        except self.error_class:
            return {}
        finally:
            cursor.close()
        return {
            f"{schema}.{table}.{column}": f"{ref_schema}.{ref_table}"
            for schema, table, column, ref_schema, ref_table in rows
        }

    def prepare_cursor(self, cursor: Any, guard: Guard) -> None:
        timeout = guard.policy.statement_timeout_ms
        if timeout is not None and hasattr(cursor, "setQueryTimeout"):
            cursor.setQueryTimeout(max(1, round(timeout / 1000)))

    def describe(self, error: BaseException) -> str:
        sqlcode = getattr(error, "sqlcode", None)
        message = str(error) or type(error).__name__
        return f"[SQLCODE {sqlcode}] {message}" if sqlcode is not None else message


DRIVER = IrisDriver()

"""The admin connections of one PostgreSQL server, shared by every sandbox of this process on it.

A sandbox holds no server connection while idle: each admin operation takes a connection
from its server's pool for its statements and gives it back, and the pool keeps at most
``IDLE`` of them open. So a thousand live sandboxes cost the server a few connections, not a
thousand (``max_connections`` is commonly 100). A pool is shared by the backends made for
the same admin URL and the same password sources (a URL without a password is authenticated
by whatever the environment gives libpq, so a connection made with one password source is
never handed to a caller that has another); the last backend's ``release`` closes it.

A connection an operation left broken (the server went away) is closed, not given back. A
forked child never touches its parent's connections (closing one would end the parent's
session): it opens its own.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator
from typing import Any

IDLE = 4  # enough for a pool's replenisher, a reset and a reaper at once
_PASSWORD_SOURCES = ("PGPASSWORD", "PGPASSFILE", "PGSERVICE", "PGSERVICEFILE")


class AdminPool:
    """Connections to one server as its admin, made by ``connect`` when none is idle."""

    def __init__(self, connect: Callable[[], Any]) -> None:
        self._connect = connect
        self._idle: list[Any] = []
        self._lock = threading.Lock()
        self.pid = os.getpid()
        self.users = 0

    @contextlib.contextmanager
    def connection(self) -> Iterator[Any]:
        """An admin connection (autocommit) for the block; given back after it."""
        connection = self._take()
        try:
            yield connection
        finally:
            self._give_back(connection)

    def _take(self) -> Any:
        with self._lock:
            while self._idle:
                connection = self._idle.pop()
                if not (connection.closed or connection.broken):
                    return connection
        return self._connect()

    def _give_back(self, connection: Any) -> None:
        if not (connection.closed or connection.broken):
            with self._lock:
                if len(self._idle) < IDLE and self.users > 0:
                    self._idle.append(connection)
                    return
        with contextlib.suppress(Exception):
            connection.close()

    def open_connections(self) -> int:
        """How many idle connections the pool keeps now."""
        with self._lock:
            return len(self._idle)

    def close(self) -> None:
        """Close the idle connections (those in use are closed when given back)."""
        with self._lock:
            idle, self._idle = self._idle, []
        for connection in idle:
            with contextlib.suppress(Exception):
                connection.close()


_pools: dict[tuple[str, ...], AdminPool] = {}
_pools_lock = threading.Lock()
_inherited: list[AdminPool] = []  # a parent's pools in a forked child: kept, never closed


def shared(url: str, connect: Callable[[], Any]) -> AdminPool:
    """This process's pool for admin ``url`` (made on first use); give it back with ``release``."""
    key = (url, *(os.environ.get(name, "") for name in _PASSWORD_SOURCES))
    with _pools_lock:
        pool = _pools.get(key)
        if pool is not None and pool.pid != os.getpid():
            _inherited.append(pool)
            pool = None
        if pool is None:
            pool = _pools[key] = AdminPool(connect)
        pool.users += 1
        return pool


def release(pool: AdminPool) -> None:
    """One user fewer of ``pool``; the last one's release closes its connections."""
    with _pools_lock:
        pool.users = max(0, pool.users - 1)
        if pool.users:
            return
        for key, known in list(_pools.items()):
            if known is pool:
                del _pools[key]
    pool.close()


def admin_connections() -> int:
    """How many idle admin connections this process keeps to PostgreSQL servers."""
    with _pools_lock:
        pools = list(_pools.values())
    return sum(pool.open_connections() for pool in pools)

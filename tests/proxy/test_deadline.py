"""A client-side deadline: a PostgreSQL backend that stops answering (SIGSTOP) cannot hold
``execute`` past statement_timeout_ms plus the grace; the error says why."""

from __future__ import annotations

import os
import signal
import threading
import warnings
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

import sqlfence
from sqlfence.proxy.deadline import Watchdog


@pytest.fixture
def frozen(pg_url: str) -> Iterator[tuple[Any, int]]:
    """A fence connection with a 300 ms statement timeout, and its backend's process id;
    the backend is resumed and ended afterwards."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sqlfence.PrivilegeWarning)
        conn = sqlfence.connect(pg_url, policy={"statement_timeout_ms": 300, "read_only": False})
    (pid,) = conn.execute("SELECT pg_backend_pid()").fetchone()
    conn.commit()
    try:
        yield conn, pid
    finally:
        os.kill(pid, signal.SIGCONT)
        with psycopg.connect(pg_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        conn.close()


def _in_thread(call: Any) -> BaseException | None:
    """Run ``call`` on a thread; its exception. A call still running after 60 s is a hang."""
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            call()
            outcome.append(None)
        except BaseException as error:
            outcome.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(60)
    assert outcome, "execute hung on a frozen server"
    return outcome[0]


def test_a_frozen_backend_fails_the_statement(frozen: tuple[Any, int]) -> None:
    """The backend stopped: execute raises OperationalError naming the deadline."""
    conn, pid = frozen
    os.kill(pid, signal.SIGSTOP)
    error = _in_thread(lambda: conn.execute("SELECT 1"))
    assert isinstance(error, sqlfence.OperationalError), error
    assert "no answer from the server within 2.3 s" in str(error)


def test_a_statement_that_answers_in_time_is_untouched(frozen: tuple[Any, int]) -> None:
    """Statements that answer (even a server-cancelled one) keep their own outcome."""
    conn, _pid = frozen
    assert conn.execute("SELECT 1").fetchone() == (1,)
    with pytest.raises(sqlfence.OperationalError, match="statement timeout"):
        conn.execute("SELECT count(*) FROM generate_series(1, 100000000)")
    conn.rollback()
    assert conn.execute("SELECT 2").fetchone() == (2,)


def test_the_watchdog_shuts_down_only_late_statements() -> None:
    """Watches that end in time never fire; one past its deadline does, on its own socket."""
    import socket

    watchdog = Watchdog()
    left, right = socket.socketpair()
    other, peer = socket.socketpair()
    with left, right, other, peer:
        for _ in range(100):
            with watchdog.watching(other.fileno, 30) as expired:
                pass
            assert not expired.fired
        with watchdog.watching(left.fileno, 0.05) as expired:
            assert left.recv(1) == b""  # blocks until the shutdown ends the read
        assert expired.fired
        peer.sendall(b"x")  # another socket is untouched
        assert other.recv(1) == b"x"


def test_connect_to_a_server_that_never_answers_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    """A listener that takes the TCP connection and says nothing: connect() fails within
    the driver's default connect timeout (shortened here) instead of waiting for ever."""
    import socket

    from sqlfence.proxy import postgres_driver

    monkeypatch.setattr(postgres_driver, "CONNECT_TIMEOUT_S", 1)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        url = f"postgresql://nobody@127.0.0.1:{port}/db"
        error = _in_thread(lambda: sqlfence.connect(url, policy={}))
    assert isinstance(error, sqlfence.OperationalError), error

"""Shared fixtures: a real PostgreSQL server for the session, SQLite databases per test.

With ``CI=true`` a test whose real component is missing fails instead of skipping, so a
green CI run means the real thing was exercised.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from tests.postgres_server import PostgresServer, started

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}

# CI explores the same examples on every run, so a red build is a reproducible finding;
# local runs explore new random examples each time.
settings.register_profile("ci", derandomize=True, print_blob=True)
if IN_CI:
    settings.load_profile("ci")


def missing(component: str) -> None:
    """Skip locally, fail in CI: a missing real component is never a green test there."""
    if IN_CI:
        pytest.fail(f"{component} is required in CI but is not available", pytrace=False)
    pytest.skip(f"{component} is not available")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server started for this test session (superuser ``postgres``, trust)."""
    with started(missing) as server:
        yield server


@pytest.fixture
def pg_url(postgres_server: PostgresServer) -> Iterator[str]:
    """A fresh, empty database on the session's server; dropped after the test."""
    with postgres_server.databases(1) as (url,):
        yield url


@pytest.fixture
def sqlite_path(tmp_path: Path) -> Path:
    """A path for a new SQLite database file."""
    return tmp_path / "test.db"

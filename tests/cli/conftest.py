"""A demo audit log, made once per session by the real demo command."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.cli.processes import cli


@pytest.fixture(scope="session")
def demo_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The audit log of one `sqlfence demo --audit DIR` run (do not change it)."""
    audit = tmp_path_factory.mktemp("demo") / "audit"
    done = cli("demo", "--audit", str(audit))
    assert done.returncode == 0, done.stdout + done.stderr
    return audit


@pytest.fixture
def demo_audit(demo_log: Path, tmp_path: Path) -> Path:
    """A copy of the demo's audit log that this test may change."""
    copy = tmp_path / "audit"
    shutil.copytree(demo_log, copy)
    return copy


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    """A fresh copy of the demo's shop database (customers, orders, secrets)."""
    from sqlfence.cli.demo import make_shop

    path = tmp_path / "shop.db"
    make_shop(path)
    return path

"""Importing sqlfence is cheap (sqlfence/lazy.py): the fence loads on first use, and a command
that needs no fence (``sqlfence sandbox list``) never imports it. Checked in a fresh
interpreter, by the modules it holds (not by time)."""

from __future__ import annotations

import json
import subprocess
import sys
import types
from pathlib import Path

import pytest

import sqlfence
import sqlfence.observe
import sqlfence.sandbox

HEAVY = ("sqlglot", "pglast", "psycopg", "docker", "opentelemetry")


def _modules_after(code: str) -> set[str]:
    script = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    return set(json.loads(done.stdout.strip().splitlines()[-1]))


def test_import_sqlfence_loads_no_parser_or_driver() -> None:
    loaded = _modules_after("import sqlfence, sqlfence.sandbox")
    assert not {name.split(".")[0] for name in loaded} & {*HEAVY, "pydantic"}


def test_sandbox_list_does_not_import_the_fence(tmp_path: Path) -> None:
    code = (
        "import contextlib, io\nfrom sqlfence.cli import main\n"
        f"with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    assert main(['sandbox', 'list', '--root', {str(tmp_path)!r}]) == 0"
    )
    loaded = _modules_after(code)
    assert not {name.split(".")[0] for name in loaded} & set(HEAVY)
    assert not any(name.startswith(("sqlfence.proxy", "sqlfence.policies")) for name in loaded)


@pytest.mark.parametrize(
    "package", [sqlfence, sqlfence.sandbox, sqlfence.observe], ids=lambda p: p.__name__
)
def test_every_exported_name_resolves(package: types.ModuleType) -> None:
    names = list(package.__all__)
    assert all(getattr(package, name) is not None for name in names)
    assert set(names) <= set(dir(package))
    with pytest.raises(AttributeError, match="has no attribute 'nothing_here'"):
        package.nothing_here  # noqa: B018


def test_an_exported_name_is_not_shadowed_by_a_submodule_of_that_name() -> None:
    """``sqlfence.observe.verify`` is a module and the function the package exports."""
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sqlfence.observe.verify, sqlfence.observe.query, sqlfence.sandbox.reaper\n"
            "from sqlfence.observe import verify, query_events\n"
            "from sqlfence.sandbox import reap\n"
            "print(callable(verify), callable(query_events), callable(reap))",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert loaded.stdout.split() == ["True", "True", "True"]

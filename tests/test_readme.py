"""The README stays true to the code: its snippets run as written, on a fresh clone.

Every fenced block of the README is either run here (``RUNS``) or named in ``NOT_RUN`` with
the server it needs; a new block fails ``test_every_snippet_is_run_or_says_why`` until it is
one or the other. Snippets run in a scratch directory holding the repository's ``policies/``,
as they would from the root of a fresh clone.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

import sqlfence
from sqlfence.policies.reference import markdown_table

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text()
SQLFENCE = [sys.executable, "-m", "sqlfence"]


@dataclass(frozen=True)
class Snippet:
    """One fenced block: its language, its first line (the key below), its text, its line."""

    language: str
    first: str
    text: str
    line: int


def snippets() -> list[Snippet]:
    """Every fenced block of the README, in order."""
    found = []
    for match in re.finditer(r"^```(\w*)\n(.*?)^```$", README, re.MULTILINE | re.DOTALL):
        text = match[2]
        first = next(line.strip() for line in text.splitlines() if line.strip())
        found.append(Snippet(match[1], first, text, README.count("\n", 0, match.start()) + 2))
    return found


def snippet(first: str) -> Snippet:
    """The block whose first line starts with ``first``."""
    (found,) = [s for s in snippets() if s.first.startswith(first)]
    return found


# Blocks that cannot run here, by the start of their first line, and why.
NOT_RUN = {
    "make demo": "make installs .venv and runs the whole suite (the demo: tests/cli/test_demo.py)",
    "from opentelemetry import": "needs an OpenTelemetry Collector at collector:4318",
    "from sqlfence.sandbox import AgentSandbox": "needs a PostgreSQL server or a Docker engine",
    "import sqlalchemy as sa": "needs a PostgreSQL server at localhost/shop",
    "sqlfence mcp --agent-id": "MCP servers run until stopped, on a PostgreSQL server",
    "docker run": "needs a Docker engine and an IRIS image",
    "SQLFENCE_K8S_CONTEXT=": "needs a Kubernetes cluster serving agent-sandbox v1beta1",
    "from sqlfence.sandbox.runtimes.kubernetes_runtime": "needs a Kubernetes cluster",
}


@pytest.fixture
def clone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A scratch working directory laid out as the root of a fresh clone (policies/ only)."""
    shutil.copytree(ROOT / "policies", tmp_path / "policies")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run_console(
    block: Snippet, cwd: Path, skip: Callable[[str], bool] = lambda line: False
) -> None:
    """Run each command line of a console block with bash; each must exit 0."""
    for line in block.text.splitlines():
        if not line.strip() or line.lstrip().startswith("#") or skip(line):
            continue
        command = line.replace("sqlfence ", f"{sys.executable} -m sqlfence ", 1)
        done = subprocess.run(
            ["bash", "-c", command], cwd=cwd, capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, f"README.md:{block.line}: {line}\n{done.stderr}"


def run_python(block: Snippet, names: dict[str, object] | None = None) -> dict[str, object]:
    """Run a python block as written; returns its names."""
    namespace: dict[str, object] = dict(names or {})
    exec(compile(block.text, f"README.md:{block.line}", "exec"), namespace)
    return namespace


def make_shop(clone: Path) -> None:
    """The Quickstart's first step: the shop database."""
    run_console(snippet("sqlfence demo --make-shop"), clone)


def test_every_snippet_is_run_or_says_why() -> None:
    """Each fenced block is run by a test below or named in NOT_RUN with the reason."""
    ran = (
        "sqlfence demo --make-shop", "import sqlfence", "guard = sqlfence.Guard", "default:",
        "conn = sqlfence.connect(", "sqlfence audit verify", "tools:",
        "sqlfence mcp token create", '{', "import pytest",
    )  # fmt: skip
    for block in snippets():
        known = any(block.first.startswith(prefix) for prefix in (*ran, *NOT_RUN))
        assert known, (
            f"README.md:{block.line}: a new snippet ({block.first!r}): run it in "
            "tests/test_readme.py, or add it to NOT_RUN with the server it needs"
        )


def test_policy_reference_is_generated_from_the_model() -> None:
    """The README's policy key table is exactly what the model says."""
    assert markdown_table() in README


def test_quickstart_runs_on_a_fresh_clone(clone: Path) -> None:
    """The Quickstart: make the shop, then the connect example does what its comments say."""
    make_shop(clone)
    block = snippet("import sqlfence")
    assert "sqlite:///shop.db" in block.text
    with pytest.raises(sqlfence.PolicyViolation):  # the last line: DELETE is refused
        run_python(block)
    # Run again up to the refused line, to look at what the comments promise.
    written = block.text[: block.text.index('cur.execute("DELETE')]
    names = run_python(Snippet("python", block.first, written, block.line))
    cur = names["cur"]
    assert isinstance(cur, sqlfence.GuardedCursor)
    assert cur.decision is not None
    assert cur.decision.sql == "SELECT * FROM orders LIMIT 100"
    assert cur.truncated is True
    assert len(names["rows"]) == 100  # type: ignore[arg-type]


def test_quickstart_guard_example_is_true(clone: Path) -> None:
    """The Guard example prints what the README says, with the repository's example policy."""
    block = snippet("guard = sqlfence.Guard")
    names = run_python(block, {"sqlfence": sqlfence})
    decision = names["decision"]
    assert isinstance(decision, sqlfence.Decision)
    assert decision.allowed is False
    assert f"decision.explain()      # '{decision.explain()}'" in README


def test_check_command_in_the_quickstart(clone: Path) -> None:
    """`sqlfence check "SELECT * FROM secrets" ...` as the Quickstart writes it: denied, exit 1."""
    command = re.search(r"`(sqlfence check \"SELECT \* FROM secrets\"[^`]*)`", README)
    assert command is not None
    done = subprocess.run(
        ["bash", "-c", command[1].replace("sqlfence ", f"{sys.executable} -m sqlfence ", 1)],
        cwd=clone,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1
    assert "is on the deny list" in done.stdout


def test_policy_example_is_the_repository_policy() -> None:
    """The policy example in "Policies" loads, and is policies/analyst.yaml's content."""
    shown = sqlfence.load_policy(snippet("default:").text)
    shipped = sqlfence.load_policy(str(ROOT / "policies" / "analyst.yaml"))
    for agent, tenant in ((None, None), ("bot-7", "acme"), ("x", "acme"), ("loader", None)):
        resolved = shown.resolve(agent, tenant).model_dump()
        assert resolved == shipped.resolve(agent, tenant).model_dump()


def test_observability_example_and_the_audit_commands(clone: Path) -> None:
    """The audited connection of "Observability" runs; after a1's statements, each audit
    command of the README runs as written (learn writes a1.yaml, a policy that loads)."""
    make_shop(clone)
    names = run_python(snippet("conn = sqlfence.connect("), {"sqlfence": sqlfence})
    conn = names["conn"]
    assert isinstance(conn, sqlfence.GuardedConnection)
    conn.execute("SELECT id, total FROM orders WHERE total > 100").fetchall()
    with pytest.raises(sqlfence.PolicyViolation):
        conn.execute("SELECT * FROM secrets")
    conn.close()
    run_console(snippet("sqlfence audit verify"), clone)
    assert (clone / "audit.csv").read_text().startswith("seq,")
    learned = sqlfence.load_policy(str(clone / "a1.yaml")).resolve("a1")
    assert len(learned.allowlist) == 1


def test_curated_tools_file_loads(tmp_path: Path) -> None:
    """The curated tools example is a valid tools file."""
    pytest.importorskip("mcp")
    from sqlfence.integrations.mcp_curated import load_tools

    path = tmp_path / "tools.yaml"
    path.write_text(snippet("tools:").text)
    assert [tool.name for tool in load_tools(path)] == ["orders_of_customer"]


def test_mcp_token_command(clone: Path) -> None:
    """`sqlfence mcp token create` runs as written (the server line beside it runs forever)."""
    pytest.importorskip("mcp")
    block = snippet("sqlfence mcp token create")
    run_console(block, clone, skip=lambda line: "--transport http" in line)
    assert "analyst" in (clone / "tokens.yaml").read_text()


def test_mcp_client_configuration_is_json() -> None:
    """The client configuration is valid JSON that runs `sqlfence mcp` with real options."""
    config = json.loads(snippet("{").text)
    args = config["mcpServers"]["sqlfence"]["args"]
    assert args[0] == "mcp"
    help_text = subprocess.run(
        [*SQLFENCE, "mcp", "--help"], capture_output=True, text=True, check=False
    ).stdout
    for option in (arg for arg in args if arg.startswith("--")):
        assert option in help_text


def test_pytest_plugin_example(tmp_path: Path) -> None:
    """The pytest plugin example passes under pytest, with the installed plugin."""
    (tmp_path / "test_example.py").write_text(snippet("import pytest").text)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_example.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTEST_ADDOPTS": ""},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 passed" in done.stdout

"""Loading hostile policy files: every limit is a PolicyError naming the file and line."""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from sqlfence import PolicyError, load_policy
from sqlfence.policies import bounded_yaml

HERE = Path(__file__).parent
CASES: list[dict[str, Any]] = yaml.safe_load(
    (HERE / "loader_data" / "hostile_policies.yaml").read_text()
)
DEV_ZERO = Path("/dev/zero")


def _content(case: dict[str, Any]) -> bytes:
    pieces = case["text"] if isinstance(case["text"], list) else [case["text"]]
    text = "".join(piece if isinstance(piece, str) else piece[0] * piece[1] for piece in pieces)
    return text.encode(case.get("encoding", "utf-8"))


@pytest.fixture(params=["libyaml", "python"])
def event_source(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each test runs with libyaml's parser and with PyYAML's pure-Python fallback.

    The limits live in the shared composer; this pins that both event sources keep them.
    """
    if request.param == "python":
        monkeypatch.setattr(bounded_yaml, "_Loader", bounded_yaml._PythonLoader)
    elif not hasattr(bounded_yaml, "_LibyamlLoader"):
        pytest.skip("PyYAML is built without libyaml")
    return str(request.param)


@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
def test_hostile_file_is_a_policy_error(
    case: dict[str, Any], event_source: str, tmp_path: Path
) -> None:
    """A hostile file is one PolicyError line naming the file and line, nothing raw."""
    path = tmp_path / "hostile.yaml"
    path.write_bytes(_content(case))
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    message = str(caught.value)
    assert re.search(case["error"], message), message[:300]
    assert "\n" not in message


@pytest.mark.skipif(not DEV_ZERO.exists(), reason="no /dev/zero on this system")
def test_dev_zero_stops_at_the_size_limit() -> None:
    """An endless special file is read only up to the limit, then refused."""
    with pytest.raises(PolicyError, match=r"^zero: larger than 1 MiB"):
        load_policy(DEV_ZERO)


def test_file_at_the_size_limit_loads(tmp_path: Path) -> None:
    """A file of exactly MAX_FILE_BYTES bytes is within the limit."""
    head = b"read_only: false\n"
    path = tmp_path / "full.yaml"
    path.write_bytes(head + b"#" * (bounded_yaml.MAX_FILE_BYTES - len(head) - 1) + b"\n")
    assert path.stat().st_size == bounded_yaml.MAX_FILE_BYTES
    assert load_policy(path).resolve().read_only is False


def test_text_over_the_size_limit() -> None:
    """YAML text given directly has the same size limit as a file."""
    text = "read_only: true\n" + "#" * bounded_yaml.MAX_FILE_BYTES
    with pytest.raises(PolicyError, match=r"^<policy text>: larger than 1 MiB"):
        load_policy(text)


def test_lone_surrogate_in_text() -> None:
    """A string that is not encodable text is refused at its line, not by the encoder."""
    with pytest.raises(PolicyError, match=r"^<policy text>:2: character U\+D800 is not allowed"):
        load_policy("read_only: true\nmax_rows: \ud800\n")


def test_anchors_and_merge_keys_still_load(event_source: str) -> None:
    """A few anchors, aliases and `<<` merge keys load as before, with their lines."""
    policies = load_policy(HERE / "files" / "anchors.yaml")
    acme = policies.resolve(tenant="acme")
    assert (acme.max_rows, acme.origin("max_rows")) == (10, "anchors.yaml:9")
    assert acme.denied_tables == ("secrets", "audit.*")
    loader = policies.resolve(agent_id="loader")
    assert loader.read_only is False
    assert (loader.denied_tables, loader.origin("denied_tables")) == (
        ("secrets", "audit.*"),
        "anchors.yaml:12",
    )


def test_dates_stay_strings() -> None:
    """Timestamps are not resolved: a date-like name is the string written."""
    policy = load_policy("denied_tables: [2024-01-01, secrets]\n").resolve()
    assert policy.denied_tables == ("2024-01-01", "secrets")


def test_learned_allowlist_of_a_megabyte_loads(event_source: str) -> None:
    """A `policy learn` file as large as the size limit allows is within the value limit."""
    shapes = [hashlib.blake2b(b"%d" % n, digest_size=8).hexdigest() for n in range(5500)]
    query = "SELECT " + "c, " * 38 + "d FROM t WHERE x = ?"
    comments = "".join(f"#   {shape}: {query}\n" for shape in shapes)
    text = comments + yaml.safe_dump({"read_only": True, "allowlist": shapes}, sort_keys=False)
    assert len(text.encode()) <= bounded_yaml.MAX_FILE_BYTES
    assert load_policy(text).resolve().allowlist == tuple(shapes)


def test_many_problems_are_counted_not_listed() -> None:
    """A file with thousands of bad keys gives a short message: the first few and a count."""
    text = "".join(f"key_{number}: 1\n" for number in range(3000))
    with pytest.raises(PolicyError) as caught:
        load_policy(text)
    message = str(caught.value)
    assert message.count("unknown key") == 10
    assert message.endswith("; and 2,990 more")


def test_lint_prints_one_line_per_hostile_file(tmp_path: Path) -> None:
    """`sqlfence policy lint` names each hostile file on one line, exits 2, no traceback."""
    paths: list[str] = []
    for number, case in enumerate(CASES):
        path = tmp_path / f"hostile_{number}.yaml"
        path.write_bytes(_content(case))
        paths.append(str(path))
    if DEV_ZERO.exists():
        paths.append(str(DEV_ZERO))
    lint = subprocess.run(
        [sys.executable, "-m", "sqlfence.cli", "policy", "lint", *paths],
        capture_output=True,
        text=True,
        check=False,
    )
    assert lint.returncode == 2
    assert "Traceback" not in lint.stderr
    lines = lint.stderr.splitlines()
    assert len(lines) == len(paths)
    for listed, line in zip(paths, lines, strict=True):
        assert line.startswith(f"{listed}: "), line[:300]

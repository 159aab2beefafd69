"""verify() names the first altered, missing, reordered or inserted event
(sqlfence/observe/verify.py), driven by data/tamper.yaml."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from sqlfence.observe.audit import AuditLog
from sqlfence.observe.filesink import chain_files
from sqlfence.observe.records import DenialRecord, StatementRecord
from sqlfence.observe.settings import AuditSettings
from sqlfence.observe.verify import verify
from tests.observe.conftest import DENIED, SELECT, make_session

CASES: list[dict[str, Any]] = yaml.safe_load(
    (Path(__file__).parent / "data" / "tamper.yaml").read_text()
)


@pytest.fixture
def log_file(audit_dir: Path) -> Path:
    """One audit file of 12 events (open, 10 statements, close)."""
    with AuditLog(AuditSettings(directory=audit_dir)) as log:
        for i in range(10):
            if i % 4 == 3:
                log.submit(DenialRecord(make_session(), DENIED.sql, DENIED, None))
            else:
                record = StatementRecord(make_session(), SELECT.sql, SELECT, 0.0, 10**18, i)
                record.await_rows()
                record.add_rows(i, False)
                log.submit(record)
    (path,) = chain_files(audit_dir, "audit")
    assert len(path.read_bytes().splitlines()) == 12
    return path


def _tamper(path: Path, case: dict[str, Any]) -> None:
    lines = path.read_bytes().splitlines(keepends=True)
    op = case["op"]
    if op == "change":
        line = bytearray(lines[case["line"] - 1])
        offset = case["offset"] if case["offset"] >= 0 else len(line) + case["offset"]
        line[offset] = ord("x") if line[offset] != ord("x") else ord("y")
        lines[case["line"] - 1] = bytes(line)
    elif op == "delete":
        del lines[case["line"] - 1]
    elif op == "swap":
        i = case["line"] - 1
        lines[i], lines[i + 1] = lines[i + 1], lines[i]
    elif op == "duplicate":
        lines.insert(case["after"], lines[case["line"] - 1])
    elif op == "forge":
        event = json.loads(lines[case["after"] - 1])
        event.update(seq=event["seq"] + 1, prev=event["mac"], mac="0" * 64, query="DROP TABLE x")
        lines.insert(case["after"], json.dumps(event, separators=(",", ":")).encode() + b"\n")
    elif op == "cut":
        lines[-1] = lines[-1][: -case["bytes"]]
    path.write_bytes(b"".join(lines))


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_tampering_is_found_at_the_line_it_happened(log_file: Path, case: dict[str, Any]) -> None:
    """Each kind of tampering fails verification at the tampered line, with its kind."""
    assert verify(log_file.parent).ok
    _tamper(log_file, case)
    for target in (log_file.parent, log_file):
        result = verify(target)
        assert not result.ok
        error = result.first_error
        assert error is not None
        assert (error.kind, error.line, error.file) == (case["kind"], case["at"], log_file), error


def test_a_wrong_key_fails_at_the_first_line(log_file: Path) -> None:
    """The wrong key fails on the first event and says the key may be the cause."""
    result = verify(log_file.parent, key="not-the-key")
    assert result.first_error is not None
    assert result.first_error.line == 1
    assert "key" in result.first_error.message


def test_no_key_and_no_files_are_failures(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """verify never passes without a key (an empty key file included) or without any event
    to check."""
    monkeypatch.delenv("SQLFENCE_AUDIT_KEY", raising=False)
    assert verify(tmp_path, key="k").first_error.kind == "empty"  # type: ignore[union-attr]
    (tmp_path / "audit-20260101-000001.jsonl").write_bytes(b'{"seq":1}\n')
    assert verify(tmp_path).first_error.kind == "no_key"  # type: ignore[union-attr]
    (tmp_path / "audit.key").write_bytes(b"")  # as a crash used to leave it
    assert verify(tmp_path).first_error.kind == "no_key"  # type: ignore[union-attr]
    (tmp_path / "audit.key").unlink()
    assert verify(tmp_path / "missing.jsonl", key="k").first_error.kind == "empty"  # type: ignore[union-attr]


def test_the_key_file_beside_the_log_is_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no key given, verify uses audit.key in the log's directory."""
    monkeypatch.delenv("SQLFENCE_AUDIT_KEY", raising=False)
    with AuditLog(AuditSettings(directory=tmp_path)) as log:
        log.emit("sandbox.create")
    assert (tmp_path / "audit.key").exists()
    result = verify(tmp_path)
    assert result.ok
    assert "verified" in str(result)
    assert AuditLog.verify(tmp_path).ok


def test_a_path_without_a_log_says_so_before_asking_for_a_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SQLFENCE_AUDIT_KEY", raising=False)
    for path in (tmp_path, tmp_path / "missing"):
        result = verify(path)
        assert result.first_error is not None
        assert result.first_error.kind == "empty", result


def test_a_first_line_altered_is_named_as_the_first_event(audit_dir: Path) -> None:
    with AuditLog(AuditSettings(directory=audit_dir)) as log:
        log.emit("sandbox.step")
    (path,) = chain_files(audit_dir, "audit")
    path.write_bytes(path.read_bytes().replace(b'"audit.open"', b'"audit.opem"', 1))
    result = verify(audit_dir)
    assert result.first_error is not None
    assert "the first event does not match its MAC" in result.first_error.message
    assert "seq -1" not in str(result)

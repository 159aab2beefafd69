"""The exit registry (sqlfence/exits.py) in real child processes: what they leave open is
closed at exit in dependency order, so the audit log records it before it closes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

from tests.observe.conftest import audit_events

KEY = "exit-test-key-of-the-audit-chain"
REPO = Path(__file__).resolve().parents[1]
TIMEOUT_S = 120.0  # a hang detector: each child takes about a second

# Opens an audit log, a sandbox audited to it and one of its connections, runs a
# statement, and then leaves everything open. An atexit handler registered first (as an
# OpenTelemetry provider's shutdown would be) must run after sqlfence's own.
CHILD = textwrap.dedent(
    """
    import atexit, json, sys
    from sqlfence.observe.audit import AuditLog
    from sqlfence.observe.settings import AuditSettings
    from sqlfence.sandbox import AgentSandbox

    audit_dir, root, wait = sys.argv[1], sys.argv[2], sys.argv[3] == "wait"
    options = json.loads(sys.argv[4])
    atexit.register(lambda: print("earlier handler", flush=True))
    log = AuditLog(AuditSettings(directory=audit_dir))
    sandbox = AgentSandbox.create("agent-1", root=root, audit=log, **options)
    conn = sandbox.get_connection()
    conn.execute("CREATE TABLE t (id INTEGER)")
    print(sandbox.name, flush=True)
    if wait:
        sys.stdin.read()
    """
)


def exiting_child(
    audit: Path, root: Path, options: dict[str, Any] | None = None, wait: bool = False
) -> subprocess.Popen[str]:
    """The child above, with ``options`` for ``AgentSandbox.create``; it prints the
    sandbox's name, then (``wait``) waits for stdin to close or a signal, or exits."""
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, str(audit), str(root), "wait" if wait else "exit",
         json.dumps(options or {})],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env={**os.environ, "SQLFENCE_AUDIT_KEY": KEY},
    )  # fmt: skip


def check_closed_in_order(audit: Path, name: str) -> None:
    """disconnect, then sandbox.destroyed, then audit.close last; the chain verifies."""
    kinds = [event["event_type"] for event in audit_events(audit)]
    assert kinds[-1] == "audit.close", kinds
    assert "disconnect" in kinds, kinds
    assert "sandbox.destroyed" in kinds, kinds
    assert kinds.index("disconnect") < kinds.index("sandbox.destroyed"), kinds
    (destroyed,) = [e for e in audit_events(audit) if e["event_type"] == "sandbox.destroyed"]
    assert destroyed["sandbox"] == name
    verified = subprocess.run(
        [sys.executable, "-m", "sqlfence", "audit", "verify", str(audit)],
        check=False,
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "SQLFENCE_AUDIT_KEY": KEY},
        timeout=TIMEOUT_S,
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_exit_without_closing_records_disconnect_and_destroy_before_audit_close(
    tmp_path: Path,
) -> None:
    """A process that exits with its connection, sandbox and audit log open: the log has
    the disconnect and sandbox.destroyed before audit.close, verifies, and no sandbox is left."""
    child = exiting_child(tmp_path / "audit", tmp_path / "root")
    out, err = child.communicate(timeout=TIMEOUT_S)
    assert child.returncode == 0, err
    name, earlier = out.splitlines()
    assert earlier == "earlier handler"  # it ran after sqlfence's handler, not before
    check_closed_in_order(tmp_path / "audit", name)
    assert list((tmp_path / "root" / "sandboxes").glob(f"{name}*")) == []


def test_sigterm_destroys_the_sandbox_and_closes_the_audit_log(tmp_path: Path) -> None:
    """An unhandled SIGTERM exits with 128 + 15 through the same ordered exit."""
    child = exiting_child(tmp_path / "audit", tmp_path / "root", wait=True)
    assert child.stdout is not None
    name = child.stdout.readline().strip()
    child.send_signal(signal.SIGTERM)
    out, err = child.communicate(timeout=TIMEOUT_S)
    assert child.returncode == 128 + signal.SIGTERM, err
    assert out.splitlines() == ["earlier handler"]
    check_closed_in_order(tmp_path / "audit", name)
    assert list((tmp_path / "root" / "sandboxes").glob(f"{name}*")) == []


PLAIN = textwrap.dedent(
    """
    import sys, warnings
    import sqlfence

    warnings.simplefilter("ignore")
    conn = sqlfence.connect("sqlite://", policy=sqlfence.Policy.unrestricted(),
                            audit={"directory": sys.argv[1]}, agent_id="left-open")
    conn.execute("SELECT 1").fetchall()
    """
)


def test_a_plain_connection_left_open_records_its_disconnect_before_audit_close(
    tmp_path: Path,
) -> None:
    """sqlfence.connect's connection, never closed: closed at exit, before the audit log."""
    audit = tmp_path / "audit"
    done = subprocess.run(
        [sys.executable, "-c", PLAIN, str(audit)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "SQLFENCE_AUDIT_KEY": KEY},
        timeout=TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    kinds = [event["event_type"] for event in audit_events(audit)]
    assert kinds[-2:] == ["disconnect", "audit.close"], kinds

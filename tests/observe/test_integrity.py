"""The HMAC chain and its key (sqlfence/observe/integrity.py)."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import stat
from pathlib import Path

import pytest

from sqlfence.observe.integrity import GENESIS, Chain, Signer, resolve_key, split_line
from sqlfence.observe.settings import AuditSettings


@pytest.mark.parametrize("key", [b"k", b"x" * 64, b"y" * 200])
def test_signer_is_hmac_sha256(key: bytes) -> None:
    """The precomputed-state signer gives exactly RFC 2104 HMAC-SHA256, any key length."""
    data = b'{"seq":1,"prev":"0"}'
    assert Signer(key).mac(data) == hmac.new(key, data, hashlib.sha256).hexdigest()


def test_chain_links_each_line_to_the_previous_mac() -> None:
    """A signed line carries its MAC last; the next line's prev is that MAC."""
    chain = Chain(Signer(b"k"))
    first = chain.sign(b'{"seq":1,"prev":"%s"}' % GENESIS.encode())
    body, mac = split_line(first)  # type: ignore[misc]
    assert json.loads(first)["mac"] == mac == chain.prev
    assert body == b'{"seq":1,"prev":"%s"}' % GENESIS.encode()
    assert chain.seq == 1
    second = chain.sign(b'{"seq":2,"prev":"%s"}' % mac.encode())
    assert json.loads(second)["prev"] == mac


@pytest.mark.parametrize("line", [b"", b"{}", b'{"seq":1}\n', b'{"mac":"short"}'])
def test_split_line_rejects_lines_without_a_mac(line: bytes) -> None:
    """Lines not written by the chain have no (body, mac) split."""
    assert split_line(line) is None


def test_key_from_settings_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An explicit key beats the environment variable and the key file."""
    monkeypatch.setenv("SQLFENCE_AUDIT_KEY", "from-env")
    settings = AuditSettings(directory=tmp_path, key="explicit")  # type: ignore[arg-type]
    assert resolve_key(settings, create=True) == b"explicit"


def test_key_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without an explicit key, SQLFENCE_AUDIT_KEY is used and no key file is made."""
    monkeypatch.setenv("SQLFENCE_AUDIT_KEY", "from-env")
    assert resolve_key(AuditSettings(directory=tmp_path), create=True) == b"from-env"
    assert not (tmp_path / "audit.key").exists()


def test_generated_key_file_is_private_and_reused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no key anywhere a 0600 key file is generated beside the log, then reused."""
    monkeypatch.delenv("SQLFENCE_AUDIT_KEY", raising=False)
    settings = AuditSettings(directory=tmp_path / "audit")
    key = resolve_key(settings, create=True)
    path = tmp_path / "audit" / "audit.key"
    assert key is not None
    assert len(key) == 64
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert resolve_key(settings, create=True) == key
    assert resolve_key(AuditSettings(directory=tmp_path / "other"), create=False) is None

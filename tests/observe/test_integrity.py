"""The HMAC chain and its key (sqlfence/observe/integrity.py)."""

from __future__ import annotations

import errno
import hashlib
import hmac
import json
import os
import stat
import threading
from pathlib import Path

import pytest

from sqlfence.errors import AuditError, ConfigurationError, OperationalError
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
    monkeypatch.setenv("SQLFENCE_AUDIT_KEY", "from-env-key-of-the-chain")
    settings = AuditSettings(directory=tmp_path, key="explicit-key-of-the-chain")
    assert resolve_key(settings, create=True) == b"explicit-key-of-the-chain"


def test_key_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without an explicit key, SQLFENCE_AUDIT_KEY is used and no key file is made."""
    monkeypatch.setenv("SQLFENCE_AUDIT_KEY", "from-env-key-of-the-chain")
    assert (
        resolve_key(AuditSettings(directory=tmp_path), create=True) == b"from-env-key-of-the-chain"
    )
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


@pytest.mark.parametrize(
    ("where", "key"),
    [("settings", "short"), ("environment", "0123456789abcde"), ("file", ""), ("file", "tiny")],
)
def test_an_empty_or_short_key_is_refused(
    where: str, key: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A key under 16 bytes, wherever it comes from (an empty key file left by a crash
    included), is refused with a message naming where it came from."""
    monkeypatch.delenv("SQLFENCE_AUDIT_KEY", raising=False)
    settings = AuditSettings(directory=tmp_path)
    if where == "settings":
        settings = AuditSettings(directory=tmp_path, key=key)
    elif where == "environment":
        monkeypatch.setenv("SQLFENCE_AUDIT_KEY", key)
    else:
        (tmp_path / "audit.key").write_text(key + "\n")
    with pytest.raises(ConfigurationError, match="at least 16 bytes") as raised:
        resolve_key(settings, create=True)
    assert {"settings": "AuditSettings", "environment": "SQLFENCE_AUDIT_KEY", "file": "audit.key"}[
        where
    ] in str(raised.value)


def test_concurrent_creators_of_the_key_file_share_one_whole_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Many threads creating the key file at once all get the same 64-hex key; no temporary
    file is left beside it."""
    monkeypatch.delenv("SQLFENCE_AUDIT_KEY", raising=False)
    settings = AuditSettings(directory=tmp_path / "audit")
    keys: list[bytes | None] = []
    threads = [
        threading.Thread(target=lambda: keys.append(resolve_key(settings, create=True)))
        for _ in range(16)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(keys)) == 1
    assert len(keys[0] or b"") == 64
    assert [p.name for p in (tmp_path / "audit").iterdir()] == ["audit.key"]


def test_a_key_file_that_cannot_be_made_is_an_audit_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the key file cannot be written the error names the file and the cause, and
    nothing is left behind."""
    monkeypatch.delenv("SQLFENCE_AUDIT_KEY", raising=False)
    directory = tmp_path / "audit"
    directory.mkdir()
    real = os.write

    def full(fd: int, data: bytes) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", full)
    try:
        with pytest.raises(AuditError, match=r"audit\.key.*No space left") as raised:
            resolve_key(AuditSettings(directory=directory), create=True)
    finally:
        monkeypatch.setattr(os, "write", real)
    assert isinstance(raised.value, OperationalError)
    assert list(directory.iterdir()) == []


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
def test_a_key_file_others_can_read_is_warned_about_once(tmp_path: Path, mode: int) -> None:
    """Whoever reads the key can forge the log: a key file readable beyond its owner warns,
    naming the mode and the fix; a 0600 one does not."""
    from sqlfence.errors import AuditWarning
    from sqlfence.observe.integrity import read_key_file

    path = tmp_path / "audit.key"
    path.write_bytes(b"k" * 32 + b"\n")
    os.chmod(path, 0o600)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_key_file(path, create=False) == b"k" * 32
    os.chmod(path, mode)
    with pytest.warns(AuditWarning, match=rf"mode {mode:04o}.*chmod 600"):
        read_key_file(path, create=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_key_file(path, create=False)  # said once

"""The HMAC-SHA256 chain that makes an audit log tamper-evident, and where its key comes from.

Each event line is ``{...,"seq":n,...,"prev":"<mac of event n-1>","mac":"<hex>"}``: the MAC
covers the exact bytes of the line up to ``,"mac"`` (with ``}`` appended), so ``seq`` and the
previous MAC are inside it. Changing, removing, reordering or inserting a line therefore
breaks the chain at that line, and nobody without the key can repair it.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import secrets
import warnings
from pathlib import Path

from sqlfence.errors import AuditError, AuditWarning, ConfigurationError
from sqlfence.observe.settings import AUDIT_KEY_ENV, AuditSettings
from sqlfence.small_files import NotReadable, read_small

GENESIS = "0" * 64  # ``prev`` of the very first event of a chain
MIN_KEY_BYTES = 16  # 128 bits: below that a key can be searched for
MAC_HEX_CHARS = 64
_MAC_PREFIX = b',"mac":"'
_MAC_SUFFIX_LEN = len(_MAC_PREFIX) + MAC_HEX_CHARS + 2  # ,"mac":"<64 hex>"}


class Signer:
    """HMAC-SHA256 with the key's inner and outer states computed once (half the cost)."""

    __slots__ = ("_inner", "_outer")

    def __init__(self, key: bytes) -> None:
        if len(key) > 64:  # the SHA-256 block size, as RFC 2104 says
            key = hashlib.sha256(key).digest()
        key = key.ljust(64, b"\0")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))

    def mac(self, data: bytes) -> str:
        """The hex HMAC-SHA256 of ``data``."""
        inner = self._inner.copy()
        inner.update(data)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.hexdigest()


class Chain:
    """Numbers and links events. Not thread-safe: the audit writer calls it under its lock.

    The writer builds an event's JSON with ``seq = chain.seq + 1`` and ``prev = chain.prev``
    inside it, then ``sign`` makes it the next link.
    """

    __slots__ = ("prev", "seq", "signer")

    def __init__(self, signer: Signer, seq: int = 0, prev: str = GENESIS) -> None:
        self.signer = signer
        self.seq = seq
        self.prev = prev

    def sign(self, body: bytes) -> bytes:
        """The signed line (with ``\\n``) of ``body``, which ends with ``}``."""
        mac = self.signer.mac(body)
        self.seq += 1
        self.prev = mac
        return b'%s%s%s"}\n' % (body[:-1], _MAC_PREFIX, mac.encode("ascii"))


def split_line(line: bytes) -> tuple[bytes, str] | None:
    """``(signed body, mac)`` of a line as written by ``Chain.sign``; None if it has no MAC."""
    line = line.rstrip(b"\r\n")
    if len(line) <= _MAC_SUFFIX_LEN or not line.endswith(b'"}'):
        return None
    start = len(line) - _MAC_SUFFIX_LEN
    if line[start : start + len(_MAC_PREFIX)] != _MAC_PREFIX:
        return None
    mac = line[start + len(_MAC_PREFIX) : -2].decode("ascii", "replace")
    return line[:start] + b"}", mac


def resolve_key(settings: AuditSettings, *, create: bool) -> bytes | None:
    """The chain key: ``settings.key``, else ``$SQLFENCE_AUDIT_KEY``, else the key file.

    With ``create`` a missing key file is generated (32 random bytes, hex, mode 0600).
    Raises ConfigurationError for a key shorter than ``MIN_KEY_BYTES`` (an empty key file
    left by a crash included) and AuditError when the key file cannot be created.
    """
    if settings.key is not None:
        return checked_key(settings.key.get_secret_value().encode(), "AuditSettings(key=...)")
    from_env = os.environ.get(AUDIT_KEY_ENV)
    if from_env:  # set but empty reads as unset, as everywhere else
        return checked_key(from_env.encode(), f"${AUDIT_KEY_ENV}")
    key = read_key_file(settings.resolved_key_file, create=create)
    return None if key is None else checked_key(key, str(settings.resolved_key_file))


def checked_key(key: bytes, origin: str) -> bytes:
    """``key`` when it is long enough to sign with; ConfigurationError naming ``origin`` if not."""
    if len(key) < MIN_KEY_BYTES:
        what = "empty" if not key else f"{len(key)} bytes long"
        raise ConfigurationError(
            f"the audit key from {origin} is {what}; a key needs at least {MIN_KEY_BYTES} "
            "bytes (a key file is generated with 64 hex characters when none exists)"
        )
    return key


def read_key_file(path: Path, *, create: bool) -> bytes | None:
    """The key stored in ``path``; generated atomically when missing and ``create``.

    The new key is written to a temporary file, fsynced and linked into place, so no reader
    ever sees a partial key; when another process made the file first, its key is used.
    """
    try:
        return _key_bytes(path)
    except FileNotFoundError:
        if path.is_symlink():  # a dangling link is not a missing key to make
            raise ConfigurationError(f"the audit key file {path} is a broken link") from None
        if not create:
            return None
    key = secrets.token_hex(32).encode()
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        _create_atomically(path, key + b"\n")
    except FileExistsError:  # another process made it first: use theirs
        return _key_bytes(path)
    except OSError as error:
        raise AuditError(
            f"cannot create the audit key file {path}: {error}", cause=str(error)
        ) from error
    return key


def _create_atomically(path: Path, data: bytes) -> None:
    """Write ``path`` (mode 0600) whole or not at all; FileExistsError when it exists."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(temporary, path)  # unlike rename, never replaces a key someone else made
        except OSError as error:
            if error.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP):
                raise
            if path.exists():  # a file system without hard links: rename, unless taken
                raise FileExistsError(errno.EEXIST, "exists", str(path)) from None
            os.rename(temporary, path)
        sync_directory(path.parent)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)


def sync_directory(directory: Path) -> None:
    """fsync a directory, so a file created or renamed in it survives a power loss."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory handles
        return
    try:
        with contextlib.suppress(OSError):  # some file systems refuse fsync on directories
            os.fsync(fd)
    finally:
        os.close(fd)


_MAX_KEY_FILE_BYTES = 4096


def _key_bytes(path: Path) -> bytes:
    """The key file's bytes: a small regular file (not /dev/zero, a FIFO or a directory)."""
    try:
        data = read_small(path, _MAX_KEY_FILE_BYTES, wait_s=0.5)
    except NotReadable as error:
        raise ConfigurationError(f"the audit key file cannot be read: {error}") from None
    if len(data) > _MAX_KEY_FILE_BYTES:
        raise ConfigurationError(
            f"the audit key file {path} is larger than {_MAX_KEY_FILE_BYTES} bytes: not a key"
        )
    _warn_if_others_can_read(path)
    return data.strip()


_warned_modes: set[tuple[str, int]] = set()


def _warn_if_others_can_read(path: Path) -> None:
    """Whoever can read the key can forge the whole log: say so, once per file and mode."""
    with contextlib.suppress(OSError):
        mode = path.stat().st_mode & 0o777
        if mode & 0o077 and (str(path), mode) not in _warned_modes:
            _warned_modes.add((str(path), mode))
            warnings.warn(
                f"the audit key file {path} has mode {mode:04o}: users other than its owner "
                f"can read it and forge the log; run chmod 600 {path}",
                AuditWarning,
                stacklevel=2,
            )

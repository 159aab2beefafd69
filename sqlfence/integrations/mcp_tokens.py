"""Bearer tokens for the MCP server's HTTP transport: a file of hashes mapped to identities.

The tokens file is YAML, one entry per token, holding only the SHA-256 of the token beside
the identity it stands for; a token itself is printed once, when it is made, and never
written anywhere. The server reads the file again whenever it changes, so tokens are added,
rotated and revoked by editing it, without a restart.

```yaml
tokens:
  - sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
    agent_id: analyst
    tenant: acme
    claims: {region: eu}   # what a row filter's :claims.region takes for this token
```
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from sqlfence.errors import ConfigurationError
from sqlfence.small_files import read_small

_PREFIX = "sqf_"  # recognisable in a leaked log line or a secret scanner's rules
_ENTRY_KEYS = frozenset({"sha256", "agent_id", "tenant", "claims"})
_CLAIM_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
MAX_FILE_BYTES = 1024 * 1024  # about 7,000 tokens; read whole on every change


@dataclass(frozen=True)
class TokenIdentity:
    """Who a token stands for: the agent id (and tenant) that chooses the policy section,
    and the claims a row filter's ``:claims.<name>`` takes (name, value pairs)."""

    agent_id: str
    tenant: str | None = None
    claims: tuple[tuple[str, str | int], ...] = ()

    @property
    def claim_map(self) -> dict[str, str | int]:
        return dict(self.claims)


def digest(token: str) -> str:
    """The hex SHA-256 a tokens file keeps for ``token``."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_token(
    path: str | Path,
    agent_id: str,
    tenant: str | None = None,
    claims: Mapping[str, str | int] | None = None,
) -> str:
    """Add a new token for ``agent_id`` to the tokens file (made 0600 if new); returns the
    token, which is not stored anywhere: show it once."""
    if not agent_id:
        raise ConfigurationError("a token needs an agent id")
    token = _PREFIX + secrets.token_urlsafe(32)
    where = Path(path)
    entries = _entries(where) if where.exists() else []
    entry: dict[str, Any] = {"sha256": digest(token), "agent_id": agent_id}
    if tenant:
        entry["tenant"] = tenant
    if claims:
        entry["claims"] = dict(_checked_claims(claims, "a token's claims"))
    entries.append(entry)
    text = yaml.safe_dump({"tokens": entries}, sort_keys=False)
    temporary = where.with_name(f".{where.name}.{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(temporary, where)
    return token


class TokenFile:
    """The identities of a tokens file, read again whenever the file changes. Thread-safe."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._stamp: tuple[int, ...] | None = None
        self._by_digest: dict[str, TokenIdentity] = {}
        self.reload()  # a missing or malformed file is a ConfigurationError at start

    def reload(self) -> None:
        """Read the file now; raises ConfigurationError naming what is wrong."""
        try:
            stat = self.path.stat()
        except OSError as error:
            raise ConfigurationError(f"tokens file {self.path}: {error.strerror}") from None
        identities: dict[str, TokenIdentity] = {}
        for number, entry in enumerate(_entries(self.path), start=1):
            where = f"tokens file {self.path}: entry {number}"
            unknown = sorted(set(entry) - _ENTRY_KEYS)
            if unknown:
                raise ConfigurationError(f"{where}: unknown key {unknown[0]!r}")
            hashed, agent, tenant = entry.get("sha256"), entry.get("agent_id"), entry.get("tenant")
            if not (isinstance(hashed, str) and _HEX64.fullmatch(hashed)):
                raise ConfigurationError(f"{where}: sha256 must be 64 hex digits")
            if not (isinstance(agent, str) and agent.strip()):
                raise ConfigurationError(f"{where}: agent_id must be a non-empty string")
            if tenant is not None and not (isinstance(tenant, str) and tenant.strip()):
                raise ConfigurationError(f"{where}: tenant must be a non-empty string")
            if hashed.lower() in identities:  # which identity would it be? neither
                raise ConfigurationError(f"{where}: the same sha256 as an earlier entry")
            claims = _checked_claims(entry.get("claims") or {}, f"{where}: claims")
            identities[hashed.lower()] = TokenIdentity(agent, tenant, claims)
        with self._lock:
            self._by_digest = identities
            self._stamp = _stamp(stat)

    def identity(self, token: str) -> TokenIdentity | None:
        """The identity ``token`` stands for, or None. A changed file is read first; a file
        that cannot be read or parsed any more admits no token (fail closed) until fixed."""
        self._refresh()
        wanted = digest(token)
        with self._lock:
            candidates = list(self._by_digest.items())
        found = None
        for hashed, identity in candidates:  # constant time in the token: compare every entry
            if hmac.compare_digest(hashed, wanted):
                found = identity
        return found

    def identities(self) -> list[TokenIdentity]:
        """Every identity the file names (to describe the tools for all of them)."""
        self._refresh()
        with self._lock:
            return list(self._by_digest.values())

    def _refresh(self) -> None:
        try:
            stat = self.path.stat()
        except OSError:
            with self._lock:  # the file is gone: no token is valid
                self._by_digest = {}
                self._stamp = None
            return
        if _stamp(stat) != self._stamp:
            try:
                self.reload()
            except ConfigurationError:
                with self._lock:  # a broken edit must not keep a revoked token alive
                    self._by_digest = {}
                    self._stamp = _stamp(stat)


def _checked_claims(claims: object, where: str) -> tuple[tuple[str, str | int], ...]:
    """Claims as (name, value) pairs: names of letters, digits and _, values text or whole
    numbers; raises ConfigurationError naming what is wrong."""
    if not isinstance(claims, Mapping):
        raise ConfigurationError(f"{where} must be a mapping of name: value")
    checked = []
    for name, value in sorted(claims.items(), key=lambda item: str(item[0])):
        if not (isinstance(name, str) and _CLAIM_NAME.fullmatch(name)):
            raise ConfigurationError(f"{where}: {name!r} is not a claim name (letters, digits, _)")
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise ConfigurationError(f"{where}: {name} must be text or a whole number")
        checked.append((name, value))
    return tuple(checked)


def _stamp(stat: os.stat_result) -> tuple[int, ...]:
    """What changes with any write of the file: ``st_ctime_ns`` cannot be set back by the
    tools that keep mtimes (``cp -p``, ``touch -r``); a replaced file has a new inode."""
    return (stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)


def _entries(path: Path) -> list[dict[str, Any]]:
    try:
        data = read_small(path, MAX_FILE_BYTES)
        if len(data) > MAX_FILE_BYTES:
            raise ConfigurationError(f"tokens file {path}: larger than {MAX_FILE_BYTES} bytes")
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        loaded = yaml.load(data.decode("utf-8"), Loader=loader) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise ConfigurationError(f"tokens file {path}: {error}") from None
    if isinstance(loaded, dict) and set(loaded) - {"tokens"}:
        unknown = sorted(set(map(str, loaded)) - {"tokens"})[0]
        raise ConfigurationError(f"tokens file {path}: unknown key {unknown!r} (only 'tokens:')")
    entries = loaded.get("tokens", []) if isinstance(loaded, dict) else None
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise ConfigurationError(f"tokens file {path}: expected 'tokens:' with a list of entries")
    return entries


class FileTokenVerifier:
    """The MCP SDK's token verifier over a tokens file: a known token's identity becomes the
    access token's ``client_id`` (and ``tenant`` claim)."""

    def __init__(self, tokens: TokenFile) -> None:
        self.tokens = tokens

    async def verify_token(self, token: str) -> Any:
        """An ``AccessToken`` for a known token, None for any other (the SDK answers 401)."""
        from mcp.server.auth.provider import AccessToken

        identity = self.tokens.identity(token)
        if identity is None:
            return None
        return AccessToken(
            token=token,
            client_id=identity.agent_id,
            scopes=[],
            subject=identity.agent_id,
            claims={"tenant": identity.tenant, "claims": identity.claim_map}
            if identity.tenant or identity.claims
            else None,
        )


def authenticated() -> TokenIdentity | None:
    """The identity of the HTTP request being served, when it carried a valid token."""
    from mcp.server.auth.middleware.auth_context import get_access_token

    access = get_access_token()
    if access is None:
        return None
    found = access.claims or {}
    tenant = found.get("tenant")
    claims = found.get("claims") or {}
    return TokenIdentity(
        access.client_id, str(tenant) if tenant else None, tuple(sorted(claims.items()))
    )

"""Namespace names: ``AGENT_<ID>_<YYYYMMDD_HHMMSS>_<token>`` and ``TENANT_<T>_AGENT_<ID>_...``,
or ``SANDBOX_<token>`` where every login on the server can list the names (PostgreSQL).

Pure functions. A name is what every backend accepts as an identifier: letters, digits and
underscore, a letter first, at most 63 characters (PostgreSQL's and IRIS's limit). A name
that must be shortened keeps a short hash of the full name, so two long names stay distinct.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime, timezone

MAX_LENGTH = 63
PREFIXES = ("AGENT_", "TENANT_", "SANDBOX_")
PATTERN = "^(AGENT|TENANT|SANDBOX)_"  # the same prefixes, as a regular expression for SQL
_HASH_LENGTH = 8
_NOT_ALLOWED = re.compile(r"[^A-Z0-9_]+")
_VALID = re.compile(rf"[A-Za-z][A-Za-z0-9_]{{0,{MAX_LENGTH - 1}}}")


def sanitise(text: str) -> str:
    """``text`` upper-cased with every run of other characters turned into one underscore.

    Raises ValueError when nothing usable is left (an empty or all-punctuation id).
    """
    cleaned = _NOT_ALLOWED.sub("_", text.upper()).strip("_")
    if not cleaned:
        raise ValueError(f"{text!r} has no letters or digits to build a name from")
    return cleaned


def stamp(when: datetime) -> str:
    """``YYYYMMDD_HHMMSS`` in UTC."""
    if when.tzinfo is not None:
        when = when.astimezone(timezone.utc)
    return when.strftime("%Y%m%d_%H%M%S")


def namespace_name(
    agent_id: str, tenant: str | None = None, when: datetime | None = None, token: str = ""
) -> str:
    """The namespace name of one sandbox of ``agent_id`` (of ``tenant``) created at ``when``.

    ``token`` (a few random hex digits from the caller) keeps two sandboxes of one agent made
    in the same second apart. The result always satisfies ``is_valid``.
    """
    parts = [f"TENANT_{sanitise(tenant)}"] if tenant else []
    parts.append(f"AGENT_{sanitise(agent_id)}")
    if when is not None:
        parts.append(stamp(when))
    if token:
        parts.append(sanitise(token))
    return fit("_".join(parts))


def opaque_name(token: str) -> str:
    """A name that says nothing of who it is for: ``SANDBOX_<token>`` (the registry knows).

    For servers whose every login reads the catalog of names (PostgreSQL's ``pg_database``
    and ``pg_roles``). ``token`` must be random enough not to be guessed (16 hex digits).
    """
    return fit(f"SANDBOX_{sanitise(token)}")


def fit(name: str, limit: int = MAX_LENGTH) -> str:
    """``name`` cut to ``limit`` characters, ending in a hash of the whole when it was cut."""
    if len(name) <= limit:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:_HASH_LENGTH].upper()
    head = name[: limit - _HASH_LENGTH - 1].rstrip("_")
    return f"{head}_{digest}"


def derived(name: str, suffix: str) -> str:
    """A related name (snapshot clone, login role): ``<name>__<suffix>``, fitted to the limit."""
    return fit(f"{name}__{sanitise(suffix)}")


def is_valid(name: str) -> bool:
    """True when ``name`` is a letter followed by letters, digits, underscores, <= 63 chars."""
    return _VALID.fullmatch(name) is not None


def is_sandbox_name(name: str) -> bool:
    """True when ``name`` looks like one sqlfence made (case-insensitive prefix check)."""
    return name.upper().startswith(PREFIXES)

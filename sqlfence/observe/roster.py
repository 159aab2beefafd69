"""The roster of a directory's chains: every chain ever written there, so a deleted one shows.

A second process writing the same directory gets a chain of its own (``audit.p<pid>``), and
its files and head could be deleted together without a trace in any other chain. So each
chain is listed in ``<prefix>.chains`` once it has written its first line: one signed line
naming every chain of the directory that has written, and the directory's random id,
replaced atomically under a lock (``<prefix>.chains.lock``). Each chain's ``audit.open``
records the id and the chains the roster listed, and a live writer records the chains
listed after it opened (``audit.chains``), so the chains vouch for each other in signed
events.

``verify`` fails for a chain the roster lists, or another chain vouches for, when nothing of
it is left; for a chain not in the roster that names it (but one whose writer is still at
work: it lists itself just after its first line); for a chain written in
another directory; and for a roster that is missing or not signed with the key. A writer
that finds no roster beside existing chains (logs from before rosters, or a deleted one)
starts one and records which chains it found and where each ended, so ``verify`` can tell
the two apart: a chain enrolled at or before that point means the roster was deleted. A
writer whose chain the roster lists but which finds no file and no head of it records that
the chain was lost.

Writers vouch for the chains they find on disk (files or a head) as well as those the roster
lists, and a retention purge names again the chains its purged events vouched for, so an
older roster put back does not hide a chain another writer has seen, nor does retention.

What no roster can show: a directory emptied of all of it (files, heads and roster) reads as
one never written, and a chain written and deleted whole between two looks of every other
writer (a second apart), with an older roster put back. Ship events to a sink elsewhere.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import secrets
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from sqlfence.observe.events import json_text
from sqlfence.observe.integrity import Signer
from sqlfence.small_files import replace_small

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no roster lock, one writer per directory
    fcntl = None  # type: ignore[assignment]

logger = logging.getLogger("sqlfence.observe")
SUFFIX = ".chains"
_LABEL = b"sqlfence audit chains\n"
_PER_PROCESS = re.compile(r"\.p\d+$")


class BadRoster(ValueError):
    """A roster file that is not one signed with this key."""


def base_of(chain: str) -> str:
    """The prefix a chain was opened with (``audit.p123`` -> ``audit``)."""
    return _PER_PROCESS.sub("", chain)


def roster_path(directory: Path, base: str) -> Path:
    """Where the roster of the chains opened with prefix ``base`` is kept."""
    return directory / f"{base}{SUFFIX}"


@dataclass(frozen=True)
class Roster:
    """The chains of a directory, and the directory's own random id (which every chain's
    ``audit.open`` records, so a chain copied in from another directory shows)."""

    directory_id: str
    chains: frozenset[str]


def read_roster(path: Path, signer: Signer) -> Roster | None:
    """The roster at ``path``; None when there is none. Raises BadRoster when it is not one
    signed with ``signer``'s key (altered, forged, or another key)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        data = json.loads(raw)
        chains, directory_id, signature = data["chains"], data["directory"], data["sig"]
        if not isinstance(chains, list) or not all(isinstance(c, str) for c in chains):
            raise TypeError("chains is not a list of names")
        if not isinstance(directory_id, str):
            raise TypeError("directory is not an id")
    except (ValueError, KeyError, TypeError) as error:
        raise BadRoster(f"{path} is not an audit roster ({error})") from None
    if signer.mac(_LABEL + _body(directory_id, chains)) != signature:
        raise BadRoster(f"{path} is not signed with this key (altered, forged or another key)")
    return Roster(directory_id, frozenset(chains))


def enroll(
    directory: Path, chain: str, signer: Signer, on_disk: Mapping[str, int], *, fresh: bool
) -> dict[str, object]:
    """Look ``chain`` up in its roster (made when missing). Returns what the chain's
    ``audit.open`` records: the roster's name, the directory's id, the chains the roster
    lists (the chain vouches for them), and what was wrong: ``roster_missing`` (no roster,
    beside the chains of its prefix found on disk, each with its last ``seq`` from
    ``on_disk``; ``chain`` itself included), ``roster_invalid`` (not signed with this key;
    replaced) or ``chain_lost`` (``chain`` is listed but ``fresh``: no file and no head of
    it are left). A chain that is not ``fresh`` is listed from now on; a fresh one once it
    has written (``mark_written``). Raises OSError when the roster cannot be written."""
    path = roster_path(directory, base_of(chain))
    found: dict[str, object] = {"roster": path.name}
    with _locked(path):
        try:
            roster = read_roster(path, signer)
        except BadRoster as error:
            found["roster_invalid"] = str(error)
            roster = None
        if roster is None:
            base = base_of(chain)
            ends = {c: seq for c, seq in sorted(on_disk.items()) if base_of(c) == base}
            if ends and "roster_invalid" not in found:
                found["roster_missing"] = ends
            written = frozenset(ends) | (frozenset() if fresh else {chain})
            roster = Roster(secrets.token_hex(16), written)
            _write(path, roster, signer)
        elif chain in roster.chains and fresh:
            found["chain_lost"] = (
                f"chain {chain} is listed in {path.name} but its files and head are gone: "
                "every earlier event of it is missing"
            )
        elif chain not in roster.chains and not fresh:
            roster = _listing(path, roster, chain, signer)
    found["directory_id"] = roster.directory_id
    found["roster_chains"] = sorted(roster.chains)
    # Chains found on disk are vouched for too: a roster put back from an older copy does
    # not list a chain enrolled since, but its files and head are still there.
    others = sorted(set(chains_on_disk(directory, base_of(chain))) - roster.chains - {chain})
    if others:
        found["chains_on_disk"] = others
    return found


def chains_on_disk(directory: Path, base: str) -> list[str]:
    """The chains of prefix ``base`` that have files or a head in ``directory``."""
    names = set()
    with contextlib.suppress(OSError):
        for entry in os.scandir(directory):
            name = entry.name
            if name.endswith(".head"):
                chain = name[: -len(".head")]
            elif name.endswith(".jsonl") and name.count("-") >= 2:
                chain = name.rsplit("-", 2)[0]
            else:
                continue
            if base_of(chain) == base:
                names.add(chain)
    return sorted(names)


def mark_written(directory: Path, chain: str, signer: Signer) -> None:
    """List ``chain`` in its roster: it has written its first line. Raises OSError."""
    path = roster_path(directory, base_of(chain))
    with _locked(path):
        try:
            roster = read_roster(path, signer)
        except BadRoster:
            return  # the chain's audit.open recorded it; verify fails on it
        if roster is not None and chain not in roster.chains:
            _listing(path, roster, chain, signer)


def _listing(path: Path, roster: Roster, chain: str, signer: Signer) -> Roster:
    listed = Roster(roster.directory_id, roster.chains | {chain})
    _write(path, listed, signer)
    return listed


class RosterWatch:
    """A writer's side of its roster: lists its chain once it has written, and notices
    chains listed after it opened, or found on disk (files or a head), for it to vouch for
    (at most once a second). Looking on disk too means that keeping an older roster in
    place while another process writes does not keep that process's chain out of sight."""

    CHECK_S = 1.0

    def __init__(self, directory: Path, chain: str, signer: Signer, listed: list[str]) -> None:
        self._directory = directory
        self._chain = chain
        self._signer = signer
        self._path = roster_path(directory, base_of(chain))
        self._vouched = set(listed)
        self._listed = chain in self._vouched
        self._due = 0.0
        self._seen: tuple[int, int, int] | None = None

    def after_write(self, written_seq: int, *, now: bool = False) -> list[str]:
        """After a write that put the chain at ``written_seq``: the chains to vouch for
        (an ``audit.chains`` event), none most of the time. ``now`` looks at once."""
        if not self._listed and written_seq > 0:
            try:
                mark_written(self._directory, self._chain, self._signer)
            except OSError:
                logger.exception("audit roster of %s not updated; tried again", self._chain)
            else:
                self._listed = True
                self._vouched.add(self._chain)  # a chain need not vouch for itself
        moment = time.monotonic()
        if not now and moment < self._due:
            return []
        self._due = moment + self.CHECK_S
        found = set(chains_on_disk(self._directory, base_of(self._chain)))
        try:
            stat = self._path.stat()
            seen = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
            if seen != self._seen:
                self._seen = seen
                roster = read_roster(self._path, self._signer)
                found |= roster.chains if roster is not None else set()
        except (OSError, BadRoster):
            pass  # verify reports a missing or bad roster itself
        new = sorted(found - self._vouched - {self._chain})
        self._vouched.update(new)
        return new

    @property
    def vouched(self) -> list[str]:
        """Every chain this writer has vouched for (a purge records them again)."""
        return sorted(self._vouched - {self._chain})


def _body(directory_id: str, chains: list[str]) -> bytes:
    return json_text({"chains": chains, "directory": directory_id}).encode("ascii")


def _write(path: Path, roster: Roster, signer: Signer) -> None:
    body = _body(roster.directory_id, sorted(roster.chains))
    line = b'%s,"sig":"%s"}\n' % (body[:-1], signer.mac(_LABEL + body).encode("ascii"))
    replace_small(path, line, sync=True)


@contextlib.contextmanager
def _locked(roster: Path) -> Iterator[None]:
    """Hold the roster's lock (``<roster>.lock``) while it is read and replaced."""
    lock = roster.with_name(roster.name + ".lock")
    handle: IO[bytes] = open(os.open(lock, os.O_RDWR | os.O_CREAT, 0o600), "rb+")  # noqa: SIM115
    try:
        if fcntl is not None:
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield
    finally:
        handle.close()


def is_being_written(directory: Path, chain: str) -> bool:
    """True when a live writer holds ``chain``'s lock (it may have enrolled and not yet
    written its first line)."""
    if fcntl is None:
        return False
    try:
        fd = os.open(directory / f"{chain}.lock", os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)
    return False

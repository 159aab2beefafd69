"""``verify(path)``: is an audit log exactly what was written? Names the first line that is not.

Checked per line, in order: the line is complete JSON with a MAC; the MAC is right (else the
line was altered, or forged without the key); ``seq`` is the next number (a jump means an
event is missing, or reordered when the missing one comes later; a repeat means an event was
inserted); ``prev`` is the previous line's MAC. A log whose first event is not ``seq`` 1 must
contain the retention purge that removed the older files. Then the chain's signed head
(``head.py``) must not be ahead of its last line: a log cut at its end fails with the
number of events missing. A chain whose events say it keeps a head fails without one;
logs from before heads existed verify without.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlfence.observe.filesink import chain_files, chain_of, chain_prefixes, link_of
from sqlfence.observe.head import SUFFIX as HEAD_SUFFIX
from sqlfence.observe.head import BadHead, Head, head_path, read_head
from sqlfence.observe.integrity import GENESIS, Signer, read_key_file, split_line
from sqlfence.observe.roster import SUFFIX as ROSTER_SUFFIX
from sqlfence.observe.roster import BadRoster, base_of, is_being_written, read_roster, roster_path
from sqlfence.observe.settings import AUDIT_KEY_ENV

ALTERED = "altered"
MISSING = "missing"
REORDERED = "reordered"
INSERTED = "inserted"
MALFORMED = "malformed"
NO_KEY = "no_key"
EMPTY = "empty"


@dataclass(frozen=True)
class VerifyError:
    """The first place where the log is not what was written."""

    kind: str
    message: str
    file: Path | None = None
    line: int | None = None
    seq: int | None = None
    missing: int | None = None  # events missing, when that can be counted

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}: " if self.file is not None else ""
        return f"{where}{self.kind}: {self.message}"


@dataclass(frozen=True)
class VerifyResult:
    """What ``verify`` found. True when every chain is intact."""

    ok: bool
    events_checked: int
    files_checked: int
    chains: tuple[str, ...] = ()
    first_error: VerifyError | None = None
    last_seq: dict[str, int] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return self.ok

    def __str__(self) -> str:
        if self.ok:
            return (
                f"ok: {self.events_checked} events in {self.files_checked} files "
                f"({', '.join(self.chains)}) verified"
            )
        return f"FAILED after {self.events_checked} good events: {self.first_error}"


class _Broken(Exception):
    def __init__(self, error: VerifyError) -> None:
        super().__init__(str(error))
        self.error = error


def verify(path: str | Path, key: str | bytes | None = None) -> VerifyResult:
    """Verify the audit log at ``path``: a directory (every chain in it) or one file.

    The key is ``key``, else ``$SQLFENCE_AUDIT_KEY``, else ``audit.key`` in the directory.
    Never raises for a broken log; the result says what is wrong and where.
    """
    path = Path(path)
    directory = path if path.is_dir() else path.parent
    purges: set[int] = set()
    if path.is_dir():
        # A chain whose files were all deleted still has its head: it is checked too.
        names = sorted(set(chain_prefixes(path)) | set(_heads_in(path)))
        chains = {prefix: chain_files(path, prefix) for prefix in names}
        whole = True
        heads_required = True
    elif path.is_file():
        chains = {path.name: [path]}
        # The first file of a chain must start at seq 1 (or where a recorded purge says).
        siblings = chain_files(directory, chain_of(path) or "")
        whole = bool(siblings) and siblings[0] == path
        if whole:
            purges = _purge_marks(siblings[1:])
        # The head is checked for the newest file of a chain, when it is there.
        heads_required = False
    else:
        return _failed(VerifyError(EMPTY, f"{path} does not exist"))
    if not chains and not (path.is_dir() and _rosters_in(path)):
        return _failed(VerifyError(EMPTY, f"no audit files in {path}"))
    signer = _signer(key, directory)
    if signer is None:
        return _failed(
            VerifyError(
                NO_KEY,
                f"no key (or an empty one): pass one, set {AUDIT_KEY_ENV}, or put audit.key "
                f"in {directory}",
            )
        )
    # Heads are read before the files: a writer replaces its head after writing the lines it
    # names, so a live log read afterwards is never behind the head read first.
    heads = {name: _head_of(directory, name, paths, signer) for name, paths in chains.items()}
    checked = files = 0
    last: dict[str, int] = {}
    checkers: dict[str, _ChainChecker] = {}
    for name, paths in chains.items():
        checker = _ChainChecker(signer, paths, whole)
        checker.purged_to.update(dict.fromkeys(purges))  # one file: marks not checked
        head = heads[name]
        if isinstance(head, Head):
            checker.head_seq = head.seq
        try:
            checker.run()
            checker.check_name(chain_of(paths[0]) if paths else name)
            checker.check_head(head, heads_required)
        except _Broken as broken:
            return VerifyResult(
                False,
                checked + checker.count,
                files + checker.files,
                tuple(chains),
                broken.error,
                last,
            )
        checked += checker.count
        files += checker.files
        last[name] = checker.expected - 1
        checkers[name] = checker
    if path.is_dir():
        # Read after the files were listed: a writer enrolls before its first line, so
        # every chain listed is already in the roster read now.
        error = _check_rosters(path, checkers, signer)
        if error is not None:
            return VerifyResult(False, checked, files, tuple(chains), error, last)
    return VerifyResult(True, checked, files, tuple(chains), None, last)


_NO_HEAD = "no head"


def _head_of(
    directory: Path, name: str, paths: list[Path], signer: Signer
) -> Head | VerifyError | str | None:
    """The head that applies to ``paths`` (None: none applies; ``_NO_HEAD``: there is none;
    a VerifyError: the head file is not a head signed with this key)."""
    prefix = chain_of(paths[0]) if paths else name
    if prefix is None or chain_files(directory, prefix)[-1:] != paths[-1:]:
        return None  # not the chain's newest file: its head says nothing about it
    path = head_path(directory, prefix)
    try:
        head = read_head(path, signer)
    except BadHead as error:
        return VerifyError(ALTERED, str(error), path)
    if head is not None and head.chain != prefix:
        return VerifyError(
            ALTERED, f"{path.name} is the head of chain {head.chain}: heads were swapped", path
        )
    return _NO_HEAD if head is None else head


def _heads_in(directory: Path) -> list[str]:
    """The chains that have a head in ``directory``."""
    return [p.name[: -len(HEAD_SUFFIX)] for p in directory.glob(f"*{HEAD_SUFFIX}") if p.is_file()]


def _rosters_in(directory: Path) -> list[str]:
    """The prefixes that have a roster in ``directory``."""
    return [p.name[: -len(ROSTER_SUFFIX)] for p in directory.glob(f"*{ROSTER_SUFFIX}")]


def _check_rosters(
    directory: Path, checkers: dict[str, _ChainChecker], signer: Signer
) -> VerifyError | None:
    """Every chain its roster lists or another chain vouches for must still be there, every
    chain enrolled must be listed and written in this directory, and a roster started again
    over enrolled chains means one was deleted."""
    bases = {base_of(name) for name in checkers} | set(_rosters_in(directory))
    for base in sorted(bases):
        path = roster_path(directory, base)
        try:
            roster = read_roster(path, signer)
        except BadRoster as error:
            return VerifyError(ALTERED, str(error), path)
        ours = {name: c for name, c in checkers.items() if base_of(name) == base}
        enrolled = sorted(name for name, c in ours.items() if c.roster is not None)
        if roster is None:
            if enrolled:
                return VerifyError(
                    MISSING,
                    f"the roster {path.name} is missing (deleted?) while chain {enrolled[0]} "
                    "is enrolled in it: whole chains deleted with it cannot be told",
                    path,
                )
            continue  # logs from before rosters
        for name, checker in ours.items():
            for seq, found, where, number in checker.roster_missing:
                deleted = [c for c, end in found.items() if _enrolled_by(ours.get(c), end)]
                if deleted:
                    return VerifyError(
                        MISSING,
                        f"chain {name} found no roster at seq {seq} although chain "
                        f"{deleted[0]} had been enrolled in one: the roster was deleted, and "
                        "whole chains deleted with it cannot be told",
                        where,
                        number,
                        seq,
                    )
        for name in enrolled:
            # A live writer lists its chain just after its first line: not missing yet.
            if name not in roster.chains and not is_being_written(directory, name):
                return VerifyError(
                    MISSING,
                    f"chain {name} was enrolled in {path.name} but the roster does not list "
                    "it: the roster was replaced (an older copy?), and chains may be missing",
                    path,
                )
            elsewhere = sorted(ours[name].directory_ids - {roster.directory_id})
            if elsewhere:
                return VerifyError(
                    INSERTED,
                    f"chain {name} was written in another directory (id {elsewhere[0]}, this "
                    f"one is {roster.directory_id}): its files were copied in",
                    path,
                )
        vouched = {c: (name, seq) for name, ck in ours.items() for c, seq in ck.vouches.items()}
        for name in sorted((roster.chains | set(vouched)) - set(checkers)):
            if chain_files(directory, name) or head_path(directory, name).exists():
                continue  # started after the files were listed
            if is_being_written(directory, name):
                continue  # enrolled, first line not written yet
            by = ""
            if name in vouched:
                by = f" (chain {vouched[name][0]} names it at seq {vouched[name][1]})"
            return VerifyError(
                MISSING,
                f"chain {name}{by} is listed in {path.name} but "
                "its files and head are gone (deleted): every event of it is missing"
                if name in roster.chains
                else f"chain {name}{by} is gone, files and head, and the roster no longer "
                "lists it (an older copy put back): every event of it is missing",
                path,
            )
    return None


def _enrolled_by(checker: _ChainChecker | None, seq: int) -> bool:
    """True when the chain says it was enrolled in its roster at or before ``seq``."""
    return checker is not None and checker.enrolled_at is not None and checker.enrolled_at <= seq


def _failed(error: VerifyError) -> VerifyResult:
    return VerifyResult(False, 0, 0, (), error)


def _signer(key: str | bytes | None, directory: Path) -> Signer | None:
    """The signer of the key to check with; None when there is none, or it is empty (an
    empty key file left by a crash must not let an unkeyed log pass)."""
    if key is None:
        key = os.environ.get(AUDIT_KEY_ENV) or read_key_file(directory / "audit.key", create=False)
    if not key:
        return None
    return Signer(key.encode() if isinstance(key, str) else key)


class _ChainChecker:
    """Walks one chain's files in order; raises ``_Broken`` at the first bad line."""

    def __init__(self, signer: Signer, paths: list[Path], whole: bool) -> None:
        self.signer = signer
        self.paths = paths
        self.whole = whole
        self.count = 0
        self.files = 0
        self.expected = 0
        self.prev = ""
        self.first: tuple[Path, int, int] | None = None
        # the first seq kept by each retention purge, and the MAC its event must follow
        self.purged_to: dict[int, str | None] = {}
        self.first_prev: str | None = None
        self.head_seq: int | None = None  # the seq whose MAC the head records
        self.mac_at_head: str | None = None
        self.file_at_head: str | None = None  # the name of the file holding that event
        self.keeps_head: str | None = None  # the head file the chain's own events name
        self.slot_heads = False  # its writers keep two-slot heads (each naming the one before)
        self.end: tuple[Path, int] | None = None  # the last line checked
        self.roster: str | None = None  # the roster the chain's events say it is enrolled in
        self.enrolled_at: int | None = None  # the seq of the first event saying so
        self.directory_ids: set[str] = set()  # the directories its audit.open events name
        self.vouches: dict[str, int] = {}  # chains its events name, and the first seq
        self.opened_as: set[str] = set()  # the chain names its audit.open events give
        # (seq, {chain: its last seq}, file, line) of each audit.open that found no roster
        self.roster_missing: list[tuple[int, dict[str, int], Path, int]] = []

    def run(self) -> None:
        for index, path in enumerate(self.paths):
            self.files += 1
            for number, raw in _numbered_lines(path):
                self._check(index, path, number, raw)
        if self.whole and self.first is not None and self.first[2] != 1:
            path, number, seq = self.first
            follows = self.purged_to.get(seq)
            if seq in self.purged_to and follows is not None and follows != self.first_prev:
                raise _Broken(
                    VerifyError(
                        INSERTED,
                        f"the log starts at seq {seq}, where a retention purge kept the log, "
                        "but not with the event the purge kept (it was put in its place)",
                        path,
                        number,
                        seq,
                    )
                )
            if seq not in self.purged_to:
                raise _Broken(
                    VerifyError(
                        MISSING,
                        f"the log starts at seq {seq} and no retention purge recorded "
                        f"the removal of seq 1 to {seq - 1}",
                        path,
                        number,
                        1,
                        seq - 1,
                    )
                )

    def _check(self, index: int, path: Path, number: int, raw: bytes) -> None:
        def broken(kind: str, message: str, seq: int | None = None) -> _Broken:
            return _Broken(VerifyError(kind, message, path, number, seq))

        if not raw.endswith(b"\n"):
            raise broken(MALFORMED, "the last line is incomplete (torn write or cut file)")
        if not raw.strip():
            raise broken(MALFORMED, "an empty line, which sqlfence never writes, was added")
        if raw.endswith(b"\r\n"):
            raise broken(MALFORMED, "the line ends in CR LF, which sqlfence never writes")
        split = split_line(raw)
        if split is None:
            raise broken(MALFORMED, "the line has no MAC")
        body, mac = split
        if self.signer.mac(body) != mac:  # checked on the raw bytes, before any parsing
            which = f"the event after seq {self.expected - 1}" if self.count else "the first event"
            hint = " (or the key is wrong)" if self.count == 0 else ""
            raise broken(
                ALTERED,
                f"{which} does not match its MAC: it was changed, or written without the key{hint}",
            )
        try:
            event: dict[str, Any] = json.loads(body)
            seq, prev = event["seq"], event["prev"]
        except (ValueError, KeyError, TypeError):
            raise broken(MALFORMED, "the line is signed but is not an audit event") from None
        if not isinstance(seq, int) or not isinstance(prev, str):
            raise broken(MALFORMED, "seq or prev has the wrong type")
        if self.first is None:
            self.first = (path, number, seq)
            self.first_prev = prev
            if seq == 1 and prev != GENESIS:
                raise broken(INSERTED, "seq 1 does not start a chain", seq)
        elif seq != self.expected:
            raise self._diagnose_seq(index, path, number, seq)
        elif prev != self.prev:
            raise broken(
                INSERTED,
                f"event seq {seq} does not follow the previous event (it belongs to another chain)",
                seq,
            )
        event_type = event.get("event_type")
        if event_type in ("audit.open", "audit.purge", "audit.chains"):
            details = event.get("details") or {}
            if isinstance(details, dict):
                self._note_chains(event_type, details, seq)
                if isinstance(details.get("head"), str):
                    self.keeps_head = details["head"]
                if details.get("head_form") == "slots":
                    self.slot_heads = True
                missing = details.get("roster_missing")
                if event_type == "audit.open" and isinstance(missing, dict):
                    ends = {str(c): n for c, n in missing.items() if isinstance(n, int)}
                    self.roster_missing.append((seq, ends, path, number))
                if isinstance(details.get("roster"), str) and self.roster is None:
                    self.roster, self.enrolled_at = details["roster"], seq
                lost = (
                    details.get("head_invalid")
                    or details.get("head_missing")
                    or details.get("head_not_followed")
                    or details.get("roster_invalid")
                    or details.get("chain_lost")
                )
                if event_type == "audit.open" and isinstance(lost, str):
                    # A writer reopened the chain without a head it could trust: whatever
                    # was cut before it cannot be told, so the log cannot verify.
                    raise broken(
                        MISSING,
                        f"the chain was reopened after its head was lost or altered, or with "
                        f"lines past its head that do not follow it ({lost}): events before "
                        f"seq {seq} may have been cut or replaced",
                        seq,
                    )
                first_seq = details.get("first_seq")
                if event_type == "audit.purge" and isinstance(first_seq, int):
                    first_prev = details.get("first_prev")  # older purges did not record it
                    self.purged_to[first_seq] = first_prev if isinstance(first_prev, str) else None
        if seq == self.head_seq:
            self.mac_at_head, self.file_at_head = mac, path.name
        self.count += 1
        self.expected = seq + 1
        self.prev = mac
        self.end = (path, number)

    def _note_chains(self, event_type: str, details: dict[str, Any], seq: int) -> None:
        """What an ``audit.open`` or ``audit.chains`` says about this and other chains."""
        keys = ("roster_chains", "chains_on_disk") if event_type == "audit.open" else ("chains",)
        for key in keys:
            named = details.get(key)
            if isinstance(named, list):
                for chain in named:
                    if isinstance(chain, str):
                        self.vouches.setdefault(chain, seq)
        if event_type == "audit.open":
            if isinstance(details.get("directory_id"), str):
                self.directory_ids.add(details["directory_id"])
            if isinstance(details.get("chain"), str):
                self.opened_as.add(details["chain"])

    def check_name(self, prefix: str | None) -> None:
        """After ``run``: the chain's events must have been written as chain ``prefix``."""
        if prefix is None or not self.opened_as or self.opened_as == {prefix}:
            return
        other = sorted(self.opened_as - {prefix})[0]
        path, number = self.end if self.end is not None else (self.paths[0], 0)
        raise _Broken(
            VerifyError(
                ALTERED,
                f"the files of chain {prefix} hold the events of chain {other}: files were "
                "renamed or swapped",
                path,
                number,
            )
        )

    def check_head(self, head: Head | VerifyError | str | None, required: bool) -> None:
        """After ``run``: the chain must reach its head, and there must be one when the
        chain's events say it keeps one."""
        if head is None:
            return
        if isinstance(head, VerifyError):
            raise _Broken(head)
        if self.end is not None:
            path, number = self.end
        elif self.paths:
            path, number = self.paths[-1], 0
        else:  # no files left, only the head
            path, number = Path(head.file if isinstance(head, Head) else self.keeps_head or ""), 0
        last = self.expected - 1 if self.count else 0
        if isinstance(head, str):
            if required and self.keeps_head is not None:
                raise _Broken(
                    VerifyError(
                        MISSING,
                        f"the head file {self.keeps_head} is missing (deleted?): whether "
                        f"events after seq {last} were cut cannot be told",
                        path,
                        number,
                    )
                )
            return
        if head.prev is None and self.slot_heads:
            raise _Broken(
                VerifyError(
                    ALTERED,
                    f"the head of chain {head.chain} is in the one-line form of older logs, "
                    "which this chain's writers no longer write: it was put back",
                    path,
                    number,
                )
            )
        if head.seq > last:
            count = head.seq - last
            raise _Broken(
                VerifyError(
                    MISSING,
                    f"{f'the log ends at seq {last}' if last else 'the log holds no events'} "
                    f"but its signed head records seq {head.seq} in {head.file}: {count} "
                    "events are missing at the end (cut or lost)",
                    path,
                    number + 1,
                    last + 1,
                    count,
                )
            )
        if self.file_at_head is not None and self.file_at_head != head.file:
            raise _Broken(
                VerifyError(
                    ALTERED,
                    f"event seq {head.seq} is in {self.file_at_head}, but the signed head "
                    f"records it in {head.file}: files were renamed",
                    path,
                    number,
                    head.seq,
                )
            )
        if self.mac_at_head is not None and self.mac_at_head != head.mac:
            raise _Broken(
                VerifyError(
                    ALTERED,
                    f"event seq {head.seq} is not the one the signed head records",
                    path,
                    number,
                    head.seq,
                )
            )

    def _diagnose_seq(self, index: int, path: Path, number: int, seq: int) -> _Broken:
        expected = self.expected
        if seq < expected:
            return _Broken(
                VerifyError(
                    INSERTED,
                    f"event seq {seq} appears again after seq {expected - 1} "
                    "(inserted or duplicated)",
                    path,
                    number,
                    seq,
                )
            )
        for later in self._seqs_after(index, number):
            if later == expected:
                return _Broken(
                    VerifyError(
                        REORDERED,
                        f"event seq {seq} comes before seq {expected}: the events were reordered",
                        path,
                        number,
                        expected,
                    )
                )
        missing = f"seq {expected}" if seq == expected + 1 else f"seq {expected} to {seq - 1}"
        return _Broken(
            VerifyError(
                MISSING,
                f"{missing} missing before event seq {seq} ({seq - expected} events deleted "
                "or lost)",
                path,
                number,
                expected,
                seq - expected,
            )
        )

    def _seqs_after(self, index: int, number: int) -> Iterator[int]:
        for later_index in range(index, len(self.paths)):
            for later_number, raw in _numbered_lines(self.paths[later_index]):
                if later_index == index and later_number <= number:
                    continue
                link = link_of(raw)
                if link is not None:
                    yield link[0]


def _purge_marks(paths: list[Path]) -> set[int]:
    """The ``first_seq`` of every retention purge recorded in ``paths`` (not verified here:
    they only excuse a missing start, and the files holding them are verified on their own)."""
    marks = set()
    for path in paths:
        for _, raw in _numbered_lines(path):
            if b'"event_type":"audit.purge"' in raw:
                split = split_line(raw)
                with contextlib.suppress(ValueError, KeyError, TypeError):
                    first = json.loads(split[0] if split else raw)["details"]["first_seq"]
                    if isinstance(first, int):
                        marks.add(first)
    return marks


def _numbered_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    with path.open("rb") as handle:
        yield from enumerate(handle, 1)

"""The signed head of a chain: where its files ended at the last write, so a cut end shows.

A MAC chain shows every change, deletion and reordering except the loss of its newest
lines. After each write the audit writer replaces ``<prefix>.head`` beside the files (one
of its two sector-sized slots, in turn: see ``HeadFile``) with the last ``seq`` and MAC it
wrote, signed with the
chain key under a label of its own (a head can never pass for an event, nor an event for a
head). The head is written after the lines it names, so it never runs ahead of them: a log
that ends before its head's ``seq`` lost or had cut the difference. What a head cannot
show is a head put back from an older copy together with a log cut to match it; ship events
to a sink elsewhere for that.
"""

from __future__ import annotations

import errno
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from sqlfence.observe.events import json_text
from sqlfence.observe.integrity import Signer
from sqlfence.small_files import replace_small

logger = logging.getLogger("sqlfence.observe")
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
SUFFIX = ".head"
_LABEL = b"sqlfence audit head\n"


class BadHead(ValueError):
    """A head file that is not a head signed with this key."""


@dataclass(frozen=True)
class Head:
    """The end of a chain as last written: its ``seq``, that event's MAC, and its file;
    ``prev``: the signature of the head written before it ("" for a file's first, None for
    heads from before slots), so that the two slots must follow each other."""

    chain: str
    seq: int
    mac: str
    file: str
    prev: str | None = None

    def body(self) -> bytes:
        """The signed bytes (fixed key order)."""
        fields: dict[str, object] = {
            "chain": self.chain,
            "seq": self.seq,
            "mac": self.mac,
            "file": self.file,
        }
        if self.prev is not None:
            fields["prev"] = self.prev
        return json_text(fields).encode("ascii")


def head_path(directory: Path, prefix: str) -> Path:
    """Where the head of chain ``prefix`` is kept."""
    return directory / f"{prefix}{SUFFIX}"


SLOT = 512  # one disk sector: a slot is written whole or not at all


class HeadFile:
    """The head of a chain as its writer keeps it: a file of two sector-sized slots,
    written in turn in place (one ``pwrite``, no rename and no sync), so that replacing the
    head after every write costs next to nothing (a slot is one sector: written whole).
    Each head names the signature of the one before it: the newer slot is the one
    that follows the other, so an older slot copied over the newer one shows."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self._slot = 0
        self._last = ""  # the signature of the head written last

    def write(self, head: Head, signer: Signer) -> None:
        """Replace the head. Raises OSError (the previous head still holds)."""
        head = replace(head, prev=self._last if self._fd is not None else "")
        line, signature = _signed(head, signer)
        if len(line) > SLOT:  # very long chain or file names: the whole-file replacement
            self.close()
            replace_small(self.path, line)
            return
        slot = line[:-1].ljust(SLOT - 1, b" ") + b"\n"
        if self._fd is None:
            # A file's first head fills both slots (prev ""), replacing any older form.
            replace_small(self.path, slot + slot)
            self._fd = os.open(self.path, os.O_WRONLY | _CLOEXEC)
            self._slot = 1
        elif os.pwrite(self._fd, slot, self._slot * SLOT) != SLOT:
            raise OSError(errno.ENOSPC, "short write of the audit head")
        else:
            self._slot ^= 1
        self._last = signature

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)


def write_head(path: Path, head: Head, signer: Signer) -> None:
    """Replace the head at ``path`` (for one-off writes; a writer keeps a HeadFile)."""
    writer = HeadFile(path)
    try:
        writer.write(head, signer)
    finally:
        writer.close()


def _signed(head: Head, signer: Signer) -> tuple[bytes, str]:
    body = head.body()
    signature = signer.mac(_LABEL + body)
    return b'%s,"sig":"%s"}\n' % (body[:-1], signature.encode("ascii")), signature


def read_head(path: Path, signer: Signer) -> Head | None:
    """The head at ``path``; None when there is none. Raises BadHead when it is not one
    signed with ``signer``'s key (altered, forged, or another key), when its two slots do
    not follow each other (one was put back over the other), or when it is one slot taken
    out of a two-slot head."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    if len(raw) == 2 * SLOT:
        (first, first_sig), (second, second_sig) = (
            _parse(path, raw[:SLOT], signer),
            _parse(path, raw[SLOT:], signer),
        )
        if raw[:SLOT] == raw[SLOT:] and first.prev == "":
            return first  # the file's first head, in both slots
        if second.prev is not None and second.prev == first_sig:
            return second
        if first.prev is not None and first.prev == second_sig:
            return first
        raise BadHead(f"{path}: its two slots do not follow each other (one was put back)")
    head, _ = _parse(path, raw, signer)  # the one-line form (written before slots, or long)
    if head.prev is not None and len(raw) <= SLOT:
        raise BadHead(f"{path} is one slot taken out of a two-slot head")
    return head


def _parse(path: Path, raw: bytes, signer: Signer) -> tuple[Head, str]:
    try:
        data = json.loads(raw)
        prev = data.get("prev")
        head = Head(str(data["chain"]), data["seq"], str(data["mac"]), str(data["file"]), prev)
        signature = data["sig"]
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise BadHead(f"{path} is not an audit head ({error})") from None
    valid = isinstance(head.seq, int) and (prev is None or isinstance(prev, str))
    if not valid or signer.mac(_LABEL + head.body()) != signature:
        raise BadHead(f"{path} is not signed with this key (altered, forged or another key)")
    return head, str(signature)


def continue_after_head(
    path: Path,
    signer: Signer,
    seq: int,
    mac: str,
    details: dict[str, Any],
    follows: Callable[[int, str], str | None],
) -> tuple[int, str]:
    """Where a reopened chain goes on: after its last line (``seq``, ``mac``) when the files
    hold the head's event and every line after it follows it (``follows`` says why not);
    else after its head, so that the next event leaves a gap ``verify`` reports. What was
    found goes into ``details`` (of the ``audit.open`` event)."""
    try:
        head = read_head(path, signer)
    except BadHead as error:
        details["head_invalid"] = str(error)
        logger.error("audit: %s; the chain continues from its files", error)
        return seq, mac
    if head is None:
        if seq > 0:  # events on disk but no head: it was deleted (or never written)
            details["head_missing"] = f"{path} is missing while the chain holds events"
            logger.error("audit: %s is missing; events after seq %d may have been cut", path, seq)
        return seq, mac
    if head.seq <= seq:
        why = follows(head.seq, head.mac)
        if why is None:
            return seq, mac
        details["head_not_followed"] = why
        logger.error("audit chain %s: %s; the chain continues after its head", head.chain, why)
        return head.seq, head.mac
    missing = head.seq - seq
    details["missing_at_end"] = {"from_seq": seq + 1, "to_seq": head.seq, "count": missing}
    logger.error(
        "audit chain %s ends at seq %d but its head records seq %d: %d events were lost or "
        "cut; the chain continues after the head, so verify shows the gap",
        head.chain,
        seq,
        head.seq,
        missing,
    )
    return head.seq, head.mac

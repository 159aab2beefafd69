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
from dataclasses import dataclass
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
    """The end of a chain as last written: its ``seq``, that event's MAC, and its file."""

    chain: str
    seq: int
    mac: str
    file: str

    def body(self) -> bytes:
        """The signed bytes (fixed key order)."""
        fields = {"chain": self.chain, "seq": self.seq, "mac": self.mac, "file": self.file}
        return json_text(fields).encode("ascii")


def head_path(directory: Path, prefix: str) -> Path:
    """Where the head of chain ``prefix`` is kept."""
    return directory / f"{prefix}{SUFFIX}"


SLOT = 512  # one disk sector: a slot is written whole or not at all


class HeadFile:
    """The head of a chain as its writer keeps it: a file of two sector-sized slots,
    written in turn in place (one ``pwrite``, no rename and no sync), so that replacing the
    head after every write costs next to nothing and a crash mid-write leaves the other
    slot. The head is the valid slot with the higher ``seq``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self._slot = 0

    def write(self, head: Head, signer: Signer) -> None:
        """Replace the head. Raises OSError (the previous head still holds)."""
        line = _signed(head, signer)
        if len(line) >= SLOT:  # very long chain or file names: the whole-file replacement
            self.close()
            replace_small(self.path, line)
            return
        slot = line[:-1].ljust(SLOT - 1, b" ") + b"\n"
        if self._fd is None:
            # A new head (or one in the older one-line form) is made whole first.
            replace_small(self.path, slot + slot)
            self._fd = os.open(self.path, os.O_WRONLY | _CLOEXEC)
            self._slot = 1
            return
        if os.pwrite(self._fd, slot, self._slot * SLOT) != SLOT:
            raise OSError(errno.ENOSPC, "short write of the audit head")
        self._slot ^= 1

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


def _signed(head: Head, signer: Signer) -> bytes:
    body = head.body()
    return b'%s,"sig":"%s"}\n' % (body[:-1], signer.mac(_LABEL + body).encode("ascii"))


def read_head(path: Path, signer: Signer) -> Head | None:
    """The head at ``path``; None when there is none. Raises BadHead when it is not one
    signed with ``signer``'s key (altered, forged, or another key): in the two-slot form
    both slots must be heads of this key (a slot is written whole, so a bad one was
    changed); the head is the one with the higher ``seq``."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    if len(raw) == 2 * SLOT:
        heads = [_parse(path, raw[:SLOT], signer), _parse(path, raw[SLOT:], signer)]
        return max(heads, key=lambda head: head.seq)
    return _parse(path, raw, signer)  # the one-line form (written before slots, or long)


def _parse(path: Path, raw: bytes, signer: Signer) -> Head:
    try:
        data = json.loads(raw)
        head = Head(str(data["chain"]), data["seq"], str(data["mac"]), str(data["file"]))
        signature = data["sig"]
    except (ValueError, KeyError, TypeError) as error:
        raise BadHead(f"{path} is not an audit head ({error})") from None
    if not isinstance(head.seq, int) or signer.mac(_LABEL + head.body()) != signature:
        raise BadHead(f"{path} is not signed with this key (altered, forged or another key)")
    return head


def continue_after_head(
    path: Path, signer: Signer, seq: int, mac: str, details: dict[str, Any]
) -> tuple[int, str]:
    """Where a reopened chain goes on: after its last line (``seq``, ``mac``), or after its
    head when the files end before it, so that the next event leaves a gap ``verify``
    reports. What was found goes into ``details`` (of the ``audit.open`` event)."""
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
        return seq, mac
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

"""The signed head of a chain: where its files ended at the last write, so a cut end shows.

A MAC chain shows every change, deletion and reordering except the loss of its newest
lines. After each write the audit writer replaces ``<prefix>.head`` beside the files (a
temporary file renamed over it) with the last ``seq`` and MAC it wrote, signed with the
chain key under a label of its own (a head can never pass for an event, nor an event for a
head). The head is written after the lines it names, so it never runs ahead of them: a log
that ends before its head's ``seq`` lost or had cut the difference. What a head cannot
show is a head put back from an older copy together with a log cut to match it; ship events
to a sink elsewhere for that.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlfence.observe.events import json_text
from sqlfence.observe.integrity import Signer

logger = logging.getLogger("sqlfence.observe")
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


def write_head(path: Path, head: Head, signer: Signer) -> None:
    """Replace the head at ``path`` atomically. Raises OSError (the old head stays)."""
    body = head.body()
    line = b'%s,"sig":"%s"}\n' % (body[:-1], signer.mac(_LABEL + body).encode("ascii"))
    temporary = path.with_name(path.name + ".tmp")
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            if os.write(fd, line) != len(line):  # a few hundred bytes: short only on a full disk
                raise OSError(errno.ENOSPC, "short write of the audit head")
        finally:
            os.close(fd)
        os.replace(temporary, path)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def read_head(path: Path, signer: Signer) -> Head | None:
    """The head at ``path``; None when there is none. Raises BadHead when it is not one
    signed with ``signer``'s key (altered, forged, or another key)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
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

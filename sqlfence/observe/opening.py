"""Opening a chain: its files, where it ended, its roster and its head.

Where the chain goes on is its last line when that line is the head's event or follows it,
else its head (the next event then follows the head, so the gap or the lines put past it
show). What was found (a torn line cut, a
lost head, a missing roster) goes into the details of the chain's ``audit.open`` event.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlfence.errors import AuditError
from sqlfence.observe.filesink import FileSink, chain_ends
from sqlfence.observe.head import continue_after_head, head_path
from sqlfence.observe.integrity import GENESIS, Signer
from sqlfence.observe.roster import enroll
from sqlfence.observe.settings import AuditSettings


def open_chain(
    settings: AuditSettings, signer: Signer, sync: bool, details: dict[str, Any]
) -> tuple[FileSink, int, str, Path]:
    """The chain's file sink, the ``seq`` and MAC it goes on from, and its head's path.
    Raises AuditError when the directory refuses the files or the roster."""
    sink: FileSink | None = None
    try:
        sink = FileSink(
            settings.directory,
            settings.prefix,
            max_bytes=settings.max_file_bytes,
            rotate_daily=settings.rotate_daily,
            sync=sync,
        )
        resumed = sink.resume()
        head = head_path(settings.directory, sink.prefix)
        fresh = (resumed is None or not resumed.seq) and not head.exists()
        ends = chain_ends(settings.directory)
        details.update(enroll(settings.directory, sink.prefix, signer, ends, fresh=fresh))
    except OSError as error:
        if sink is not None:
            sink.close()
        raise AuditError(
            f"cannot open the audit log in {settings.directory}: {error}", cause=str(error)
        ) from error
    seq, prev = 0, GENESIS
    if resumed is not None:
        if resumed.torn_bytes:
            details["torn_bytes_cut"] = resumed.torn_bytes
        if resumed.seq:
            seq, prev = resumed.seq, resumed.mac
    details["head"] = head.name
    details["head_form"] = "slots"  # from now on a one-line head without prev is a fake
    seq, prev = continue_after_head(
        head, signer, seq, prev, details, lambda at, mac: sink.follows(at, mac, signer)
    )
    return sink, seq, prev, head

"""``Outbox``: signed audit lines on their way to the files and the other sinks.

The audit writer signs a batch and puts its lines here. The outbox writes them to the file
sink whole (a refused write leaves the file as it was), then replaces the chain's signed
head and hands the lines to the other sinks. Lines the disk refused stay, in chain order,
and are written first when the disk takes writes again, so the chain goes on unbroken;
until then retries back off from 0.1 s to 2 s and ``failure`` says why writes fail.

Producers in ``sync`` durability wait here for their item's number: ``wait`` returns once
the batch holding it is on disk, or says why it is not. Every method but ``wait`` runs
under the audit writer's lock.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlfence.observe.filesink import link_of
from sqlfence.observe.head import Head, HeadFile
from sqlfence.observe.sinks import Sink, decode

if TYPE_CHECKING:
    from sqlfence.observe.filesink import FileSink
    from sqlfence.observe.integrity import Signer

logger = logging.getLogger("sqlfence.observe")
_FIRST_RETRY_S = 0.1
_LAST_RETRY_S = 2.0


@dataclass
class Failure:
    """Why the files refuse writes, since when, and how often it was tried."""

    error: OSError
    since: float  # time.time()
    attempts: int = 1

    def describe(self) -> str:
        """The cause as a person reads it: ``[Errno 28] No space left on device``."""
        return str(self.error)

    def details(self) -> dict[str, object]:
        """The failure for an audit event."""
        return {
            "error": self.describe(),
            "errno": self.error.errno,
            "failed_for_s": round(time.time() - self.since, 3),
            "attempts": self.attempts,
        }


class Outbox:
    """Delivers signed lines: the file first (whole lines, kept and retried when refused),
    then the chain's head, then the other sinks (counted when they fail, never retried).

    The head is replaced after every write (one ``pwrite`` of a slot), or at most every
    ``head_interval`` seconds and at the writer's next idle wake-up and at close.
    """

    def __init__(
        self,
        file: FileSink | None,
        sinks: list[Sink],
        *,
        signer: Signer,
        head: Path | None,
        capacity: int,
        sync: bool,
        head_interval: float,
        sink_failures: dict[str, int],
    ) -> None:
        self._file = file
        self._sinks = sinks
        self._wants_events = any(sink.wants_events for sink in sinks)
        self._signer = signer
        self._head = HeadFile(head) if head is not None else None
        self._head_interval = head_interval
        self._head_written = 0.0  # monotonic time of the last head written
        self._head_stale = False  # lines were written since
        self._capacity = capacity
        self._sync = sync
        self.sink_failures = sink_failures
        self._lines: list[bytes] = []
        self._end = (0, "")  # seq and MAC of the newest line taken
        self._written_end = (0, "", "")  # and of the newest line written, with its file
        self._upto = 0  # items whose lines were taken (the producers' numbers)
        self.failure: Failure | None = None
        self.recovered: Failure | None = None  # a failure that just ended, to be recorded
        self._next_try = 0.0
        self._done = threading.Condition(threading.Lock())
        self._durable = 0
        self._tried = 0
        self._holes: list[tuple[int, int]] = []  # items numbered but dropped, newest last

    @property
    def pending(self) -> int:
        """Lines taken and not yet written."""
        return len(self._lines)

    @property
    def written_seq(self) -> int:
        """The ``seq`` of the newest line written to the file (0 before any)."""
        return self._written_end[0]

    @property
    def head_stale(self) -> bool:
        """True when lines were written since the head was last replaced."""
        return self._head_stale

    @property
    def full(self) -> bool:
        """True while writes fail and the lines kept fill the capacity (take no more)."""
        return self.failure is not None and len(self._lines) >= self._capacity

    # -- the writer's side ----------------------------------------------------------------

    def put(self, lines: list[bytes], seq: int, mac: str, upto: int) -> bool:
        """Take ``lines`` (the chain now ends at ``seq``/``mac``; they complete the items
        numbered up to ``upto``) and write, unless a failing disk is not due for a retry.

        True when the write started a new file (a chance to purge).
        """
        if lines:
            self._lines.extend(lines)
            self._end = (seq, mac)
        self._upto = upto
        if self.failure is not None and time.monotonic() < self._next_try:
            self._settle(durable=False)
            return False
        return self._write()

    def dropped(self, first: int, last: int) -> None:
        """Items ``first`` to ``last`` were dropped unsigned (the kept lines were full)."""
        if not self._sync:
            return
        with self._done:
            holes = self._holes
            if holes and holes[-1][1] == first - 1:
                holes[-1] = (holes[-1][0], last)
            else:
                holes.append((first, last))
                del holes[:-64]  # producers wait seconds, not hours: old holes are moot

    def retry_due(self) -> bool:
        """True when lines wait for a disk that failed and it is time to try again."""
        return self.failure is not None and time.monotonic() >= self._next_try

    def retry(self) -> bool:
        """Try the kept lines again now (from the writer's idle wake-ups and from close)."""
        if not self._lines:
            return False
        return self._write()

    def give_up(self) -> int:
        """Drop the kept lines (the log is closing); how many were lost."""
        lost = len(self._lines)
        self._lines = []
        self._settle(durable=False)
        return lost

    def _write(self) -> bool:
        lines = self._lines
        rotated = False
        if lines and self._file is not None:
            try:
                rotated = self._file.write(lines)
            except OSError as error:
                if not self._write_what_fits(error):
                    return False
            self._written_end = (*self._end, self._file.current)
            self._head_stale = True
            if time.monotonic() - self._head_written >= self._head_interval:
                self.write_head()
        self._lines = []
        if self.failure is not None:
            self._recover(len(lines))
        if lines:
            self._to_sinks(lines)
        self._settle(durable=True)
        return rotated

    def _write_what_fits(self, error: OSError) -> bool:
        """The file refused the kept lines whole: write the oldest of them in halving
        pieces, so that a disk with room for some takes those (in chain order) and only
        the rest is kept for the next try. True when all of them went in after all."""
        assert self._file is not None
        self._failed(error)  # counted, and the next try scheduled, whatever goes in now
        lines, written, step = self._lines, 0, len(self._lines) // 2
        while step and written < len(lines):
            piece = lines[written : written + step]
            try:
                self._file.write(piece)
            except OSError as refused:
                error, step = refused, step // 2
                continue
            written += len(piece)
        if written == len(lines):
            return True
        if written:
            link = link_of(lines[written - 1])
            assert link is not None  # every kept line is one the chain signed
            self._written_end = (*link, self._file.current)
            self._head_stale = True
            self._lines = lines[written:]
            self._to_sinks(lines[:written])
        assert self.failure is not None
        self.failure.error = error
        self._settle(durable=False)
        return False

    def _failed(self, error: OSError) -> None:
        failure = self.failure
        if failure is None:
            failure = self.failure = Failure(error, time.time())
            logger.error(
                "audit log in %s: writes fail (%s); %d lines kept and retried",
                self._where(),
                error,
                len(self._lines),
            )
        else:
            failure.error = error
            failure.attempts += 1
        count = self.sink_failures.get("file", 0) + 1
        self.sink_failures["file"] = count
        delay = min(_FIRST_RETRY_S * 2 ** (failure.attempts - 1), _LAST_RETRY_S)
        self._next_try = time.monotonic() + delay

    def _recover(self, written: int) -> None:
        failure, self.failure = self.failure, None
        self.recovered = failure
        assert failure is not None
        logger.warning(
            "audit log in %s: writes work again after %.1f s (%d attempts); %d kept lines written",
            self._where(),
            time.time() - failure.since,
            failure.attempts,
            written,
        )

    def write_head(self) -> None:
        """Replace the head with the end of what was written (done at most every
        ``head_interval`` while writing, and from idle wake-ups and close when stale)."""
        if self._head is None or self._file is None or not self._head_stale:
            return
        self._head_written = time.monotonic()
        self._head_stale = False
        seq, mac, name = self._written_end
        try:
            self._head.write(Head(self._file.prefix, seq, mac, name), self._signer)
        except OSError:  # the old head still holds: it is behind, never ahead, of the lines
            self._head_stale = True
            count = self.sink_failures.get("head", 0) + 1
            self.sink_failures["head"] = count
            if count == 1 or count % 100 == 0:
                logger.exception("audit head %s not replaced (%d times)", self._head.path, count)

    def close_head(self) -> None:
        """Close the head's file (the log is releasing its files)."""
        if self._head is not None:
            self._head.close()

    def _to_sinks(self, lines: list[bytes]) -> None:
        events = decode(lines) if self._wants_events else None
        for sink in self._sinks:
            try:
                sink.write(lines, events)
            except Exception:  # another sink's failure never stops the files or the others
                failures = self.sink_failures.get(sink.name, 0) + 1
                self.sink_failures[sink.name] = failures
                if failures == 1 or failures % 1000 == 0:
                    logger.exception("audit sink %s failed (%d times)", sink.name, failures)

    def _where(self) -> str:
        return str(self._file.directory) if self._file is not None else "(no file)"

    def _settle(self, *, durable: bool) -> None:
        if not self._sync:
            return
        with self._done:
            self._tried = self._upto
            if durable:
                self._durable = self._upto
            self._done.notify_all()

    # -- the producers' side (sync durability) --------------------------------------------

    def wait(self, number: int, timeout: float) -> str | None:
        """Wait until item ``number`` is on disk: None then, else why it is not (its write
        failed, or did not finish within ``timeout`` seconds)."""
        deadline = time.monotonic() + timeout
        with self._done:
            while True:
                if any(first <= number <= last for first, last in self._holes):
                    return "the event was dropped: the log refused writes and kept too many"
                if self._durable >= number:
                    return None
                if self._tried >= number:
                    failure = self.failure
                    if failure is not None:
                        return failure.describe()
                    return "the event was dropped: the log refused writes"
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return f"the event was not written within {timeout:g} s"
                self._done.wait(remaining)

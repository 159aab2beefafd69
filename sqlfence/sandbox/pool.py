"""``SandboxPool``: warm sandboxes handed to agents without waiting for a database to start.

A background replenisher keeps ``size`` sandboxes idle and ready (never more than
``max_size`` in all) and health-checks the idle ones, replacing any that died. Each pooled
sandbox carries a golden snapshot (empty, or ``snapshot`` loaded); on release it is reset
to it, or destroyed and replaced when the reset fails, so no agent sees another's data.
When no sandbox is idle, ``acquire`` waits up to its timeout (``on_empty="wait"``) or makes
one cold (``on_empty="cold"``).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from sqlfence.errors import ConfigurationError, PoolTimeout, SandboxError
from sqlfence.sandbox.options import SANDBOX_OPTIONS, SandboxOptions, observing
from sqlfence.sandbox.runtimes.base import Runtime
from sqlfence.sandbox.sandbox import AgentSandbox

if TYPE_CHECKING:  # typing.Unpack is Python 3.11's
    from typing_extensions import Unpack

GOLDEN = "pool-golden"
POOL_AGENT = "pool"


class Lease:
    """One acquired sandbox; a context manager that releases it to the pool on exit.

    The pool gives the same sandbox to the next agent, under that agent's identity: once
    released, neither ``lease.sandbox`` nor the handle ``with`` gave is usable (SandboxError),
    so a handle kept by mistake cannot act as the next agent."""

    def __init__(self, pool: SandboxPool, sandbox: AgentSandbox) -> None:
        self.pool = pool
        self._sandbox = sandbox
        self.released = False

    @property
    def sandbox(self) -> AgentSandbox:
        """The leased sandbox (SandboxError once the lease is released)."""
        if self.released:
            raise SandboxError(
                "this lease was released: its sandbox may now serve another agent; acquire again"
            )
        return self._sandbox

    def release(self) -> None:
        """Give the sandbox back (idempotent)."""
        if not self.released:
            self.pool.release(self)

    def __enter__(self) -> AgentSandbox:
        return LeasedSandbox(self)

    def __exit__(self, exc_type: object, exc: object, traceback: object) -> None:
        self.release()


class LeasedSandbox(AgentSandbox):
    """The handle of one lease: an AgentSandbox whose every attribute is the leased
    sandbox's while the lease lasts, and a SandboxError after it was released. It holds no
    state of its own (AgentSandbox.__init__ is not run): it only stands for the lease."""

    def __init__(self, lease: Lease) -> None:
        object.__setattr__(self, "_sqlfence_lease", lease)

    def __getattribute__(self, name: str) -> Any:
        lease: Lease = object.__getattribute__(self, "_sqlfence_lease")
        if name == "_sqlfence_lease":
            return lease
        return getattr(lease.sandbox, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(object.__getattribute__(self, "_sqlfence_lease").sandbox, name, value)

    def __repr__(self) -> str:
        lease: Lease = object.__getattribute__(self, "_sqlfence_lease")
        state = "released" if lease.released else "leased"
        return f"<LeasedSandbox {state} {lease._sandbox!r}>"


class SandboxPool:
    """Warm sandboxes of one kind. ``close()`` (or ``with``) removes every one of them.

    ``sandbox_options`` go to ``AgentSandbox.create`` for each sandbox (``SandboxOptions``:
    ``limits``, ``access_policy``, ``audit``, ``monitoring`` ...). They are checked here, so
    that a misspelt or wrong one raises (TypeError, or ConfigurationError for invalid
    settings) instead of every sandbox failing in the background.
    """

    def __init__(
        self,
        size: int = 5,
        backend: str = "sqlite",
        runtime: str | Runtime | None = None,
        placement: str | None = None,
        warmup: bool = True,
        snapshot: str | Path | None = None,
        max_size: int | None = None,
        acquire_timeout: float = 30.0,
        on_empty: Literal["wait", "cold"] = "wait",
        *,
        image: str | None = None,
        server_url: str | None = None,
        root: str | Path | None = None,
        health_interval: float = 5.0,
        check_on_acquire: bool = False,
        reset: Literal["snapshot", "destroy"] = "snapshot",
        **sandbox_options: Unpack[SandboxOptions],
    ) -> None:
        unknown = sorted(set(sandbox_options) - set(SANDBOX_OPTIONS))
        if unknown:
            raise TypeError(
                f"SandboxPool() got unexpected keyword arguments: {', '.join(unknown)} (the "
                f"options it passes to each sandbox are: {', '.join(SANDBOX_OPTIONS)})"
            )
        observing(  # now: the replenisher would only count each sandbox's failure
            sandbox_options.get("audit"),
            sandbox_options.get("monitoring"),
            sandbox_options.get("audit_log"),
        )
        if size < 0 or (max_size is not None and max_size < max(size, 1)):
            raise ConfigurationError(f"need 0 <= size <= max_size, got {size} and {max_size}")
        if on_empty not in ("wait", "cold"):
            raise ConfigurationError(f"on_empty must be 'wait' or 'cold', not {on_empty!r}")
        self.size = size
        self.max_size = max_size if max_size is not None else max(size, 1) * 2
        self.acquire_timeout = acquire_timeout
        self.on_empty = on_empty
        self.health_interval = health_interval
        self.check_on_acquire = check_on_acquire
        self.reset = reset
        self._options: dict[str, Any] = {
            "backend": backend,
            "runtime": runtime,
            "placement": placement,
            "image": image,
            "server_url": server_url,
            "root": root,
            **sandbox_options,
        }
        self._snapshot = snapshot
        self._idle: deque[AgentSandbox] = deque()
        self._leased: set[AgentSandbox] = set()
        self._leases: dict[AgentSandbox, Lease] = {}  # the live lease of each leased sandbox
        self._creating = 0
        self._closed = False
        # One lock, two conditions: acquirers wait on ``_cond`` for a ready sandbox, the
        # replenisher on ``_refill`` for work. Each is woken only when there is something for
        # it: a replenisher woken for nothing would take the lock and the GIL while an
        # acquire runs.
        lock = threading.RLock()
        self._cond = threading.Condition(lock)
        self._refill = threading.Condition(lock)
        self._metrics: dict[str, Any] = dict.fromkeys(
            ("hits", "misses", "waits", "timeouts", "cold_starts", "created", "destroyed",
             "resets", "reset_failures", "replaced_unhealthy", "create_failures"), 0
        )  # fmt: skip
        self._replenish_s: deque[float] = deque(maxlen=1000)
        self._reset_s: deque[float] = deque(maxlen=1000)
        self._last_error: str | None = None
        self._last_create_error: tuple[str, float] | None = None  # message, epoch seconds
        self._discarding: list[threading.Thread] = []
        # A runtime with warm servers of its own (Kubernetes: a SandboxWarmPool) keeps as
        # many as the pool does, and reports how many are ready.
        keep_warm = getattr(runtime, "keep_warm", None)
        if callable(keep_warm):
            keep_warm(size)
        self._runtime_status = getattr(runtime, "warm_status", None)
        self._thread = threading.Thread(target=self._run, name="sqlfence-pool", daemon=True)
        if warmup:
            self._fill_now()
        self._thread.start()

    # -- acquire / release -------------------------------------------------------------

    def acquire(
        self, agent_id: str, tenant: str | None = None, timeout: float | None = None
    ) -> Lease:
        """A ready sandbox for ``agent_id``, as a ``Lease`` (``with pool.acquire(...) as sb``).

        Raises PoolTimeout (an OperationalError) when none is free within ``timeout``
        (default ``acquire_timeout``), and SandboxError when the pool is closed.
        """
        deadline = time.monotonic() + (self.acquire_timeout if timeout is None else timeout)
        sandbox = self._take(deadline)
        sandbox.assign(agent_id, tenant)
        lease = Lease(self, sandbox)
        with self._cond:
            self._leases[sandbox] = lease
            # Only now, so that its refill does not compete with this acquire for the GIL.
            self._wake_replenisher()  # it tops the pool up
        return lease

    def release(self, sandbox: AgentSandbox | Lease) -> None:
        """Reset ``sandbox`` to its golden snapshot and make it idle again (idempotent).

        A sandbox that cannot be reset, or is unhealthy, is destroyed and replaced.
        """
        if isinstance(sandbox, LeasedSandbox):
            sandbox = object.__getattribute__(sandbox, "_sqlfence_lease")
        if isinstance(sandbox, Lease):
            sandbox = sandbox._sandbox
        with self._cond:
            if sandbox not in self._leased:
                return
            self._leased.discard(sandbox)
            lease = self._leases.pop(sandbox, None)
            if lease is not None:
                lease.released = True
        if not self._closed and self.reset == "snapshot" and self._reset(sandbox):
            with self._cond:
                # Total sandboxes are bounded by max_size already: keep it warm.
                if not self._closed:
                    self._idle.append(sandbox)
                    self._cond.notify_all()
                    return
        self._discard(sandbox)
        with self._cond:
            self._cond.notify_all()  # room for a cold start
            self._wake_replenisher()

    def _take(self, deadline: float) -> AgentSandbox:
        waited = False
        with self._cond:
            while True:
                self._check_open()
                while self._idle:
                    sandbox = self._idle.popleft()
                    if self._ready(sandbox):
                        self._leased.add(sandbox)
                        self._metrics["waits" if waited else "hits"] += 1
                        return sandbox
                    self._metrics["replaced_unhealthy"] += 1
                    self._discard_later(sandbox)
                    self._wake_replenisher()
                if self.on_empty == "cold" and self._total() < self.max_size:
                    self._metrics["misses"] += 1
                    self._metrics["cold_starts"] += 1
                    self._creating += 1
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self._metrics["timeouts"] += 1
                    raise PoolTimeout(
                        f"no sandbox free within the acquire timeout ({len(self._leased)} in "
                        f"use, max_size={self.max_size}); last error: {self._last_error}"
                    )
                if not waited:
                    self._metrics["misses"] += 1
                    waited = True
                self._wake_replenisher()
                self._cond.wait(remaining)
        try:
            sandbox = self._create()
        except BaseException:
            with self._cond:
                self._creating -= 1
                self._wake_replenisher()
            raise
        with self._cond:  # in one step: the replenisher never sees it counted nowhere
            self._creating -= 1
            self._leased.add(sandbox)
        return sandbox

    def _wake_replenisher(self) -> None:
        """Wake the replenisher when it has a sandbox to make (the caller holds the lock)."""
        if self._closed or self._wanted() > 0:
            self._refill.notify()

    def _count(self, key: str) -> None:
        """Add one to a counter from a thread that does not hold the pool's lock."""
        with self._cond:
            self._metrics[key] += 1

    def _ready(self, sandbox: AgentSandbox) -> bool:
        return sandbox.healthy(probe=self.check_on_acquire)

    # -- making, resetting, discarding -----------------------------------------------------

    def _create(self) -> AgentSandbox:
        started = time.perf_counter()
        try:
            sandbox = AgentSandbox.create(agent_id=POOL_AGENT, **self._options)
        except Exception as error:
            self._last_error = str(error)
            self._last_create_error = (str(error), time.time())
            self._count("create_failures")
            raise
        try:
            if self._snapshot is not None:
                sandbox.load_snapshot(self._snapshot)
            sandbox.create_snapshot(GOLDEN)
        except BaseException:
            sandbox.destroy()
            raise
        self._count("created")
        self._replenish_s.append(time.perf_counter() - started)
        return sandbox

    def _reset(self, sandbox: AgentSandbox) -> bool:
        started = time.perf_counter()
        try:
            sandbox.close_connections()
            if sandbox.state == "paused":
                sandbox.resume()
            if not sandbox.healthy(probe=False):
                return False
            sandbox.restore_snapshot(GOLDEN)
            sandbox.assign(POOL_AGENT, None)
        except Exception as error:
            self._last_error = str(error)
            self._count("reset_failures")
            return False
        self._count("resets")
        self._reset_s.append(time.perf_counter() - started)
        return True

    def _discard(self, sandbox: AgentSandbox) -> None:
        with contextlib.suppress(Exception):
            sandbox.destroy()
        self._count("destroyed")

    def _discard_later(self, sandbox: AgentSandbox) -> None:
        # Called with the lock held: destroying can be slow, so a thread does it.
        thread = threading.Thread(target=self._discard, args=(sandbox,), daemon=True)
        self._discarding = [t for t in self._discarding if t.is_alive()] + [thread]
        thread.start()

    # -- the replenisher -------------------------------------------------------------------

    def _total(self) -> int:
        return len(self._idle) + len(self._leased) + self._creating

    def _wanted(self) -> int:
        return max(0, min(self.size - len(self._idle) - self._creating,
                          self.max_size - self._total()))  # fmt: skip

    def _fill_now(self) -> None:
        with self._cond:
            wanted = self._wanted()
        for _ in range(wanted):
            self._add_one()

    def _add_one(self) -> None:
        with self._cond:
            if self._closed or self._wanted() <= 0:
                return
            self._creating += 1
        try:
            sandbox = self._create()
        except BaseException as error:
            with self._cond:
                self._creating -= 1
            if isinstance(error, Exception):
                return  # counted, and kept as the last error, by _create
            raise
        with self._cond:
            self._creating -= 1
            keep = not self._closed
            if keep:
                self._idle.append(sandbox)
                self._cond.notify_all()
        if not keep:
            self._discard(sandbox)

    def _run(self) -> None:
        next_check = time.monotonic() + self.health_interval
        while True:
            with self._cond:
                if self._closed:
                    return
                if self._wanted() <= 0:
                    self._refill.wait(max(0.0, next_check - time.monotonic()))
                if self._closed:
                    return
                wanted = self._wanted()
            if wanted > 0:
                before = self._metrics["create_failures"]
                self._add_one()
                if self._metrics["create_failures"] > before:
                    with self._cond:  # back off a little before trying again
                        self._refill.wait(1.0)
            if time.monotonic() >= next_check:
                self.check_health()
                next_check = time.monotonic() + self.health_interval

    def check_health(self) -> int:
        """Probe every idle sandbox; destroy and replace the unhealthy. Returns how many."""
        with self._cond:
            idle = list(self._idle)
        bad = [sandbox for sandbox in idle if not sandbox.healthy(probe=True)]
        with self._cond:
            for sandbox in bad:
                if sandbox in self._idle:
                    self._idle.remove(sandbox)
                    self._metrics["replaced_unhealthy"] += 1
            self._wake_replenisher()
        for sandbox in bad:
            self._discard(sandbox)
        return len(bad)

    # -- the rest --------------------------------------------------------------------------

    def metrics(self) -> dict[str, Any]:
        """Counters (hits, misses, waits, ...), sizes, replenish / reset times in ms, and the
        last create error (``last_create_error``, its message, ``last_create_error_at``, when:
        epoch seconds), so a pool that cannot refill says why; None for both until one fails."""
        with self._cond:
            counts = dict(self._metrics)
            counts.update(idle=len(self._idle), leased=len(self._leased),
                          creating=self._creating)  # fmt: skip
        failed = self._last_create_error
        if callable(self._runtime_status):
            counts["runtime"] = self._runtime_status()
        return {
            **counts,
            "last_create_error": failed[0] if failed else None,
            "last_create_error_at": failed[1] if failed else None,
            **_summary("replenish_ms", list(self._replenish_s)),
            **_summary("reset_ms", list(self._reset_s)),
        }

    def close(self) -> None:
        """Destroy every sandbox of the pool, idle or leased (idempotent)."""
        with self._cond:
            self._closed = True
            sandboxes = list(self._idle) + list(self._leased)
            self._idle.clear()
            self._leased.clear()
            for lease in self._leases.values():
                lease.released = True
            self._leases.clear()
            self._cond.notify_all()
            self._refill.notify_all()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join()
        for sandbox in sandboxes:
            self._discard(sandbox)
        for thread in self._discarding:
            thread.join()

    def _check_open(self) -> None:
        if self._closed:
            raise SandboxError("the sandbox pool is closed")

    def __enter__(self) -> SandboxPool:
        return self

    def __exit__(self, exc_type: object, exc: object, traceback: object) -> None:
        self.close()

    def __repr__(self) -> str:
        backend = self._options["backend"]
        return f"<SandboxPool {backend} size={self.size} idle={len(self._idle)}>"


def _summary(prefix: str, seconds: list[float]) -> dict[str, float]:
    if not seconds:
        return {}
    ordered = sorted(seconds)
    return {
        f"{prefix}_mean": round(sum(ordered) / len(ordered) * 1000, 3),
        f"{prefix}_p99": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000, 3),
    }

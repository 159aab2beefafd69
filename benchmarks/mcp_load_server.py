"""The server side of ``benchmarks/mcp_load.py``: ``sqlfence mcp --transport http`` as a child
process, its resource usage, and the CPU the machine has to give."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import NamedTuple

from common import REPO_ROOT, rss_bytes

from tests.integrations.mcp_helpers import free_port


class Usage(NamedTuple):
    """A process's CPU time so far (every thread), resident memory and open descriptors."""

    cpu_s: float
    rss_mb: float
    fds: int


NOTHING = Usage(0.0, 0.0, 0)  # not measured


class ServerProcess:
    """``sqlfence mcp --transport http`` (the working tree's) on a free loopback port, its
    output in a log file. Leaving the ``with`` block stops it: SIGTERM, then SIGKILL if it
    has not exited within 10 s, or at once when the block raised."""

    def __init__(self, workdir: Path, database: Path, *options: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/mcp"
        self.log = workdir / f"server-{self.port}.log"
        self.stop_s = float("nan")
        command = [
            sys.executable, "-m", "sqlfence.integrations.mcp", "--transport", "http",
            "--port", str(self.port), "--policy", "policy.yaml", *options,
            f"sqlite:///{database}",
        ]  # fmt: skip
        environment = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                command, cwd=workdir, env=environment, stdout=log, stderr=subprocess.STDOUT
            )

    def __enter__(self) -> ServerProcess:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and self.process.poll() is None:
            with socket.socket() as attempt:
                if attempt.connect_ex(("127.0.0.1", self.port)) == 0:
                    return self
            time.sleep(0.1)
        self.stop(grace=0)
        tail = " | ".join(self.log.read_text(errors="replace").splitlines()[-5:])
        raise RuntimeError(f"the server did not start (status {self.process.returncode}): {tail}")

    def __exit__(self, kind: object, *_: object) -> None:
        self.stop(grace=10 if kind is None else 0)

    def stop(self, grace: float) -> None:
        """SIGTERM, and SIGKILL after ``grace`` seconds. Idempotent."""
        if self.process.poll() is None:
            began = time.monotonic()
            self.process.terminate()
            try:
                self.process.wait(timeout=grace or 0.5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.stop_s = time.monotonic() - began

    def problems(self) -> list[str]:
        """Log lines that say something went wrong (the SDK logs each denial at INFO)."""
        marks = ("Traceback", "ERROR", "Exception", "CRITICAL")
        lines = self.log.read_text(errors="replace").splitlines()
        return [line.strip() for line in lines if any(mark in line for mark in marks)]

    def usage(self) -> Usage:
        proc = Path(f"/proc/{self.process.pid}")
        fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()  # utime, stime: 11, 12
        return Usage(
            (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"),
            rss_bytes(self.process.pid) / 2**20,
            len(os.listdir(proc / "fd")),
        )


# -- the machine ---------------------------------------------------------------------------


def _spin(start: float, seconds: float) -> float:
    """The CPU time a busy loop gets from ``start`` for ``seconds`` of wall time."""
    time.sleep(max(0.0, start - time.perf_counter()))
    cpu = time.process_time()
    while time.perf_counter() < start + seconds:
        pass
    return time.process_time() - cpu


def cpu_capacity(seconds: float = 1.0) -> float:
    """The cores the machine gives two busy processes at once (on a shared virtual machine,
    maybe fewer than it has). Forked, so that both spin from the same moment."""
    start = time.perf_counter() + 0.3
    with ProcessPoolExecutor(2, mp_context=get_context("fork")) as pool:
        return sum(pool.map(_spin, [start] * 2, [seconds] * 2)) / seconds


def cpu_pressure_us() -> int:
    """Microseconds so far in which some task waited for a CPU (Linux PSI; 0 without it)."""
    try:
        some = Path("/proc/pressure/cpu").read_text().splitlines()[0]
    except OSError:
        return 0
    return int(some.rsplit("total=", 1)[1])

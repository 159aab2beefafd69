"""What the Docker runtime runs: an engine spec per database kind, how to tell that its
server answers, and the limit and stats arithmetic (REFERENCE.md's formulas for CPU percent
and memory used)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlfence import databases
from sqlfence.databases import DatabaseProfile, DockerImage
from sqlfence.errors import ConfigurationError
from sqlfence.sandbox.limits import Limits

PGDATA = "/var/lib/postgresql/data"
Answer = Literal["ok", "busy", "no"]  # logged in; refused for want of capacity; anything else


@dataclass(frozen=True)
class EngineSpec:
    """How to run one database kind in a container.

    Ready means every ``ready_logs`` line has appeared in the log, in that order, and then
    ``probe`` logs in with the admin URL (``ok``), tried every ``probe_every`` seconds until
    the runtime's deadline. Healthy means the probe answers ``ok`` or ``busy``: a server that
    refuses a login because it is full still runs.
    """

    database: DatabaseProfile  # its image, port and admin login
    admin_url: Callable[[str, int, str, str], str]  # (host, port, user, password) -> URL
    probe: Callable[[str, float], Answer]  # (admin URL, timeout in seconds) -> answer
    ready_logs: tuple[str, ...] = ()
    probe_every: float = 0.0
    extra_environment: tuple[tuple[str, str], ...] = ()  # set on every container of the kind
    command: Callable[[Limits], list[str]] = field(default=lambda limits: [])
    tmpfs: tuple[str, ...] = ()  # scratch directories when the root is read-only
    data_dir: str | None = None  # an anonymous volume (removed with the container)
    read_only_root: bool = False
    files: tuple[tuple[str, str], ...] = ()  # (path, text) written before start (IRIS merge)

    def __post_init__(self) -> None:
        if self.database.image is None or self.database.default_port is None:
            raise ConfigurationError(f"{self.database.name} has no server image to run")

    @property
    def kind(self) -> str:
        """The database kind (``postgres``, ``iris``)."""
        return self.database.name

    @property
    def image(self) -> str:
        """The image servers run from unless the runtime is given another."""
        return self._image.name

    @property
    def port(self) -> int:
        """The port the server listens on inside the container."""
        assert self.database.default_port is not None  # __post_init__
        return self.database.default_port

    @property
    def user(self) -> str:
        """The admin login the image makes."""
        return self._image.user

    @property
    def user_env(self) -> str:
        """The variable that gives the image the admin login's name."""
        return self._image.user_env

    @property
    def password_env(self) -> str:
        """The variable that gives the image the admin password (and tells a container of
        this kind from its environment)."""
        return self._image.password_env

    def environment(self, user: str, password: str) -> dict[str, str]:
        """The container's environment for an admin login ``user`` with ``password``."""
        image = self._image
        return {image.user_env: user, image.password_env: password, **dict(self.extra_environment)}

    @property
    def _image(self) -> DockerImage:
        assert self.database.image is not None  # __post_init__
        return self.database.image


def _postgres_command(limits: Limits) -> list[str]:
    # The sandbox's data is disposable: durability knobs off make it start and clone fast.
    args = ["postgres", "-c", "fsync=off", "-c", "synchronous_commit=off",
            "-c", "full_page_writes=off"]  # fmt: skip
    memory = memory_bytes(limits.memory)
    if memory is not None:
        # The default 128 MB of shared buffers would eat a small cgroup whole.
        buffers = max(16, min(128, memory // (8 * 1024 * 1024)))
        args += ["-c", f"shared_buffers={buffers}MB"]
    return args


def _postgres_probe(url: str, timeout: float) -> Answer:
    import psycopg

    try:
        psycopg.connect(url, connect_timeout=max(1, math.ceil(timeout))).close()
    except psycopg.Error:
        return "no"
    return "ok"


def iris_probe(url: str, timeout: float) -> Answer:
    """A DB-API login to IRIS at ``url`` and out again (``iris_admin.probe``)."""
    from sqlfence.sandbox.backends.iris_admin import probe

    return probe(url, timeout)


def ready_logs_missing(log: str, lines: tuple[str, ...]) -> tuple[str, ...]:
    """The ``lines`` not yet seen in ``log`` in their order: each must appear after the one
    before it (an earlier line logged again later does not count for the next)."""
    position = 0
    for index, line in enumerate(lines):
        found = log.find(line, position)
        if found < 0:
            return lines[index:]
        position = found + len(line)
    return ()


POSTGRES = EngineSpec(
    database=databases.POSTGRES,
    admin_url=lambda host, port, user, password: (
        f"postgresql://{user}:{password}@{host}:{port}/postgres"
    ),
    probe=_postgres_probe,
    command=_postgres_command,
    tmpfs=("/var/run/postgresql", "/tmp"),
    data_dir=PGDATA,
    read_only_root=True,
)

# Written against InterSystems' documentation and the public testcontainers IRIS modules; no
# IRIS container can run on these machines. The image applies IRIS_USERNAME / IRIS_PASSWORD
# in a hook that runs after "Enabling logons" and logs "executed command" when done (the
# testcontainers modules wait for that line on intersystemsdc images), so readiness waits
# for both lines, then for a login with the new password. Logins are tried 2 s apart: IRIS
# counts failed logins against its invalid-login limit. The CPF merge file clears the
# forced first-login password change (SQLCODE -853).
_IRIS_MERGE = "/tmp/sqlfence-merge.cpf"
IRIS = EngineSpec(
    database=databases.IRIS,
    extra_environment=(("ISC_CPF_MERGE_FILE", _IRIS_MERGE),),
    admin_url=lambda host, port, user, password: f"iris://{user}:{password}@{host}:{port}/USER",
    probe=iris_probe,
    ready_logs=("Enabling logons", "executed command"),
    probe_every=2.0,
    files=(
        (
            _IRIS_MERGE,
            "[Actions]\nModifyUser:Name=_SYSTEM,ChangePassword=0,PasswordNeverExpires=1\n"
            "ModifyUser:Name=SuperUser,ChangePassword=0,PasswordNeverExpires=1\n",
        ),
    ),
)

# Every name of a database with a server image: SPECS["postgresql"] is the postgres spec
SPECS = {name: spec for spec in (POSTGRES, IRIS) for name in databases.profile(spec.kind).names}


def spec_for(kind: str) -> EngineSpec:
    """The spec of database ``kind`` (any of its names). Raises ConfigurationError for SQLite
    (no server) and unknown kinds."""
    database = databases.find(kind)
    spec = SPECS.get(database.name) if database is not None else None
    if spec is not None:
        return spec
    if database is not None:
        raise ConfigurationError(f"{database.title} has no server: use runtime='embedded'")
    known = ", ".join(dict.fromkeys(each.kind for each in SPECS.values()))
    raise ConfigurationError(f"no container spec for backend {kind!r} ({known})")


def spec_of_container(environment: Mapping[str, str]) -> EngineSpec:
    """The spec of a server container sqlfence started, told from its environment: the
    kind whose admin password variable is set (PostgreSQL when none is)."""
    return next((spec for spec in (IRIS, POSTGRES) if spec.password_env in environment), POSTGRES)


def memory_bytes(value: str | None) -> int | None:
    """``512M``, ``1g``, ``128MB`` or a byte count as bytes; None stays None."""
    if value is None:
        return None
    text = str(value).strip().upper().removesuffix("B").removesuffix("I")
    units = {"K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
    try:
        if text and text[-1] in units:
            return int(float(text[:-1]) * units[text[-1]])
        return int(float(text))
    except ValueError as error:
        raise ConfigurationError(f"memory limit {value!r} is not a size such as 512M") from error


def nano_cpus(value: str | float | None) -> int | None:
    """``"0.5"`` CPUs as docker's nano-CPUs."""
    if value is None:
        return None
    try:
        cpus = float(value)
    except ValueError as error:
        raise ConfigurationError(f"cpu limit {value!r} is not a number of CPUs") from error
    if cpus <= 0:
        raise ConfigurationError(f"cpu limit must be positive, not {value!r}")
    return int(cpus * 1e9)


def cpu_percent(stats: dict[str, Any]) -> float:
    """delta(container CPU) / delta(system CPU) x online CPUs x 100 (docker stats' formula)."""
    cpu, pre = stats.get("cpu_stats", {}), stats.get("precpu_stats", {})
    used = cpu.get("cpu_usage", {}).get("total_usage", 0) - pre.get("cpu_usage", {}).get(
        "total_usage", 0
    )
    system = cpu.get("system_cpu_usage", 0) - pre.get("system_cpu_usage", 0)
    online = cpu.get("online_cpus") or len(cpu.get("cpu_usage", {}).get("percpu_usage") or [1])
    return used / system * online * 100.0 if used > 0 and system > 0 else 0.0


def memory_used(stats: dict[str, Any]) -> int:
    """Memory usage minus the inactive file cache (cgroup v2 ``inactive_file``)."""
    memory = stats.get("memory_stats", {})
    detail = memory.get("stats", {})
    cache = detail.get("inactive_file", detail.get("total_inactive_file", 0))
    return int(max(0, memory.get("usage", 0) - cache))

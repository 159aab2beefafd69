"""Where sandbox servers run: ``embedded``, ``external`` and ``docker`` (kubernetes: later)."""

from __future__ import annotations

from sqlfence.errors import ConfigurationError
from sqlfence.sandbox.runtimes.base import Runtime


def runtime_for(
    name: str | Runtime | None,
    backend: str,
    server_url: str | None,
    *,
    placement: str | None = None,
    image: str | None = None,
) -> Runtime:
    """The runtime called ``name`` (default: embedded for SQLite, external otherwise).

    A ``Runtime`` object is used as given. ``placement`` and ``image`` are for ``docker``.
    """
    from sqlfence.sandbox.runtimes.embedded import EmbeddedRuntime
    from sqlfence.sandbox.runtimes.external import ExternalRuntime

    if name is not None and not isinstance(name, str):
        return name
    if backend not in ("sqlite", "postgres", "iris"):
        raise ConfigurationError(f"unknown backend {backend!r} (known: sqlite, postgres, iris)")
    chosen = name or ("embedded" if backend == "sqlite" else "external")
    if chosen != "docker" and (placement is not None or image is not None):
        raise ConfigurationError(f"placement= and image= need runtime='docker', not {chosen!r}")
    if chosen == "embedded":
        return EmbeddedRuntime()
    if chosen == "external":
        return ExternalRuntime(server_url)
    if chosen == "docker":
        from sqlfence.sandbox.runtimes.docker import DockerRuntime

        return DockerRuntime(placement=placement or "shared", image=image)
    raise ConfigurationError(f"runtime {chosen!r} is not available (embedded, external, docker)")

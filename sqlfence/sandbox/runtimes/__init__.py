"""Where sandbox servers run, by name: ``embedded``, ``external``, ``docker``, ``kubernetes``.

A runtime is one file here implementing ``runtimes.base.Runtime`` and one line in
``RUNTIMES``; the sandbox, the pool and the reaper reach it only through that protocol.
"""

from __future__ import annotations

import importlib
from typing import cast

from sqlfence.errors import ConfigurationError
from sqlfence.sandbox.runtimes.base import Runtime, RuntimeOptions

# Imported on first use: a runtime's module may need an optional package (docker).
RUNTIMES = {
    "embedded": "sqlfence.sandbox.runtimes.embedded:EmbeddedRuntime",
    "external": "sqlfence.sandbox.runtimes.external:ExternalRuntime",
    "docker": "sqlfence.sandbox.runtimes.docker:DockerRuntime",
    "kubernetes": "sqlfence.sandbox.runtimes.kubernetes_runtime:KubernetesRuntime",
}
# Records written before runtimes were recorded held embedded or external sandboxes, which
# reopen the same way: by the record's server address.
_UNRECORDED = "external"


def runtime_type(name: str | None) -> type[Runtime]:
    """The runtime class registered as ``name`` (None: a record that names none).

    Raises ConfigurationError for a name not registered.
    """
    where = RUNTIMES.get(name or _UNRECORDED)
    if where is None:
        raise ConfigurationError(f"runtime {name!r} is not available ({', '.join(RUNTIMES)})")
    module, _, attribute = where.partition(":")
    return cast("type[Runtime]", getattr(importlib.import_module(module), attribute))


def runtime_types() -> list[type[Runtime]]:
    """Every registered runtime (the reaper sweeps each)."""
    return [runtime_type(name) for name in RUNTIMES]


def runtime_for(name: str | Runtime | None, backend: str, options: RuntimeOptions) -> Runtime:
    """The runtime called ``name`` (default: embedded for SQLite, external otherwise), made
    from ``options``, checked to run ``backend``. A ``Runtime`` object is used as given;
    ``"auto"`` picks one (``_automatic``).

    Raises ConfigurationError.
    """
    if name == "auto":
        name = _automatic(backend)
    if name is None or isinstance(name, str):
        chosen = runtime_type(name or ("embedded" if backend == "sqlite" else "external"))
        runtime = chosen.from_options(options)
    else:
        runtime = name
    runtime.check(backend)
    return runtime


def _automatic(backend: str) -> str:
    """``runtime="auto"``: embedded for SQLite; else Kubernetes when running in a cluster or
    configured for one (``SQLFENCE_K8S_CONTEXT``/``_NAMESPACE``) and it serves agent-sandbox
    ``v1beta1``; else Docker when an engine answers; else a ConfigurationError saying why
    neither. A kubeconfig alone (kubectl on a laptop) is not a choice of Kubernetes."""
    if backend == "sqlite":
        return "embedded"
    from sqlfence.errors import SandboxError
    from sqlfence.sandbox.runtimes import kubernetes

    reasons = []
    wanted = kubernetes.choose()
    if wanted is not None:
        try:
            kubernetes.Cluster()
        except (SandboxError, ConfigurationError) as error:
            reasons.append(f"kubernetes ({wanted}): {error}")
        else:
            return "kubernetes"
    else:
        reasons.append("kubernetes: not in a cluster and none configured")
    from sqlfence.sandbox.runtimes.docker import client

    try:
        client()
    except SandboxError as error:
        reasons.append(f"docker: {error}")
    else:
        return "docker"
    raise ConfigurationError(f"runtime='auto' found no place to run servers ({'; '.join(reasons)})")

"""Checks a manifest as a Kubernetes API server would on create, without a server.

- agent-sandbox objects against the ``v1beta1`` OpenAPI schema of the real CRDs (read from
  ``../shared/reference/agent-sandbox``), with unknown fields rejected as the server's strict
  field validation does (``x-kubernetes-preserve-unknown-fields`` keeps a part open);
- their metadata, and every core object (Secret, ConfigMap, NetworkPolicy, and the pod a
  template makes), against the ``kubernetes`` client's models, which forbid unknown fields
  and check types; plus the name and label syntax the server enforces on ``ObjectMeta``.

``problems(manifest)`` is empty for an object the server would accept.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]  # no stubs: types-jsonschema is not a dev dependency
import pytest
import yaml

_CHECKOUT = Path(__file__).resolve().parents[2]
# ``../shared/reference/agent-sandbox`` beside the checkout (or beside a folder holding it).
REFERENCE = next(
    (
        place / "shared" / "reference" / "agent-sandbox"
        for place in _CHECKOUT.parents
        if (place / "shared" / "reference" / "agent-sandbox").is_dir()
    ),
    _CHECKOUT.parent / "shared" / "reference" / "agent-sandbox",
)
CRDS = {
    ("agents.x-k8s.io", "Sandbox"): "agents.x-k8s.io_sandboxes.yaml",
    ("extensions.agents.x-k8s.io", "SandboxTemplate"): (
        "extensions.agents.x-k8s.io_sandboxtemplates.yaml"
    ),
    ("extensions.agents.x-k8s.io", "SandboxWarmPool"): (
        "extensions.agents.x-k8s.io_sandboxwarmpools.yaml"
    ),
    ("extensions.agents.x-k8s.io", "SandboxClaim"): "extensions.agents.x-k8s.io_sandboxclaims.yaml",
}
SERVED = "v1beta1"
CORE = {
    ("v1", "Secret"): "V1Secret",
    ("v1", "ConfigMap"): "V1ConfigMap",
    ("networking.k8s.io/v1", "NetworkPolicy"): "V1NetworkPolicy",
}
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_QUALIFIED = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?")


def require_reference() -> None:
    """Skip when the CRDs are not beside the checkout (they are reference data read from
    ``shared/``, not part of the project; a clone on its own has none to check against)."""
    if not REFERENCE.is_dir():
        pytest.skip(f"the agent-sandbox CRDs are not at {REFERENCE}")


def problems(manifest: dict[str, Any]) -> list[str]:
    """What an API server would refuse in ``manifest`` (empty: it would be created)."""
    api, kind = manifest.get("apiVersion", ""), manifest.get("kind", "")
    group, _, version = str(api).rpartition("/")
    found = _metadata_problems(manifest.get("metadata"))
    if (group, kind) in CRDS:
        served = _served_versions(group, kind)
        if version != SERVED:
            return [f"{api} {kind}: not served (agent-sandbox 1.0 serves only {SERVED}; "
                    f"the CRD lists {', '.join(served)})", *found]  # fmt: skip
        found += _schema_problems(group, kind, manifest)
        template = _pod_template(kind, manifest)
        if template is not None:
            found += _model_problems("V1PodSpec", template.get("spec"), "spec.podTemplate.spec")
            found += _pod_problems(template.get("spec") or {})
        return found
    model = CORE.get((api, kind))
    if model is None:
        return [f"no API serves kind {kind!r} in {api!r}", *found]
    found += _model_problems(model, manifest, "")
    if kind == "NetworkPolicy":
        found += _selector_problems(manifest.get("spec", {}).get("podSelector"))
    return found


@functools.cache
def _crd(group: str, kind: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((REFERENCE / CRDS[(group, kind)]).read_text())
    return loaded


def _served_versions(group: str, kind: str) -> list[str]:
    return [v["name"] for v in _crd(group, kind)["spec"]["versions"] if v.get("served")]


@functools.cache
def _validator(group: str, kind: str) -> jsonschema.Draft7Validator:
    version = next(v for v in _crd(group, kind)["spec"]["versions"] if v["name"] == SERVED)
    schema = _strict(version["schema"]["openAPIV3Schema"])
    return jsonschema.Draft7Validator(schema)


def _strict(schema: Any) -> Any:
    """The schema with unknown fields refused wherever the CRD lists the fields."""
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    strict = {key: _strict(value) for key, value in schema.items()}
    open_ended = schema.get("x-kubernetes-preserve-unknown-fields") is True
    if "properties" in schema and "additionalProperties" not in schema and not open_ended:
        strict["additionalProperties"] = False
    return strict


def _schema_problems(group: str, kind: str, manifest: dict[str, Any]) -> list[str]:
    errors = sorted(_validator(group, kind).iter_errors(manifest), key=lambda e: list(e.path))
    return [f"{'.'.join(str(p) for p in error.path) or kind}: {error.message}" for error in errors]


def _pod_template(kind: str, manifest: dict[str, Any]) -> dict[str, Any] | None:
    if kind not in ("Sandbox", "SandboxTemplate"):
        return None
    template = manifest.get("spec", {}).get("podTemplate")
    return template if isinstance(template, dict) else None


def _model_problems(model: str, data: Any, where: str) -> list[str]:
    from kubernetes import client
    from pydantic import ValidationError

    try:
        getattr(client, model).model_validate(data)
    except ValidationError as error:
        return [
            f"{'.'.join(p for p in (where, *map(str, e['loc'])) if p)}: {e['msg']}"
            for e in error.errors()
        ]
    return []


def _metadata_problems(metadata: Any) -> list[str]:
    if not isinstance(metadata, dict):
        return ["metadata: required"]
    found = _model_problems("V1ObjectMeta", metadata, "metadata")
    name = metadata.get("name")
    if not isinstance(name, str) or len(name) > 253 or not _DNS_SUBDOMAIN.fullmatch(name):
        found.append(f"metadata.name: {name!r} is not a DNS subdomain")
    namespace = metadata.get("namespace")
    if namespace is not None and not _is_label(namespace):
        found.append(f"metadata.namespace: {namespace!r} is not a DNS label")
    found += _labels_problems(metadata.get("labels") or {}, "metadata.labels")
    for key in metadata.get("annotations") or {}:
        if not _is_key(key):
            found.append(f"metadata.annotations: key {key!r} is not a qualified name")
    return found


def _labels_problems(labels: dict[str, Any], where: str) -> list[str]:
    found = []
    for key, value in labels.items():
        if not _is_key(key):
            found.append(f"{where}: key {key!r} is not a qualified name")
        if (
            not isinstance(value, str)
            or len(value) > 63
            or not re.fullmatch(r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?", value)
        ):
            found.append(f"{where}: value {value!r} of {key!r} is not a label value")
    return found


def _selector_problems(selector: Any) -> list[str]:
    if not isinstance(selector, dict):
        return ["spec.podSelector: required"]
    return _labels_problems(selector.get("matchLabels") or {}, "spec.podSelector.matchLabels")


def _pod_problems(spec: dict[str, Any]) -> list[str]:
    """What the API server checks of a pod beyond its types (the controller's pod would fail)."""
    found = []
    volumes = {v.get("name") for v in spec.get("volumes") or []}
    for container in [*(spec.get("containers") or []), *(spec.get("initContainers") or [])]:
        name = container.get("name")
        if not _is_label(name):
            found.append(f"container name {name!r} is not a DNS label")
        for port in container.get("ports") or []:
            if not 0 < int(port.get("containerPort", 0)) < 65536:
                found.append(f"container {name}: port {port.get('containerPort')} out of range")
        for mount in container.get("volumeMounts") or []:
            if mount.get("name") not in volumes:
                found.append(f"container {name}: mount of unknown volume {mount.get('name')!r}")
        for probe in ("readinessProbe", "startupProbe", "livenessProbe"):
            threshold = (container.get(probe) or {}).get("failureThreshold", 1)
            if threshold < 1:
                found.append(f"container {name}: {probe}.failureThreshold must be >= 1")
    for volume in spec.get("volumes") or []:
        if not _is_label(volume.get("name")):
            found.append(f"volume name {volume.get('name')!r} is not a DNS label")
    return found


def _is_label(text: Any) -> bool:
    return isinstance(text, str) and len(text) <= 63 and bool(_DNS_LABEL.fullmatch(text))


def _is_key(key: Any) -> bool:
    """A label or annotation key: ``[prefix/]name``, the prefix a DNS subdomain."""
    if not isinstance(key, str):
        return False
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not _DNS_SUBDOMAIN.fullmatch(prefix)):
        return False
    return len(name) <= 63 and bool(_QUALIFIED.fullmatch(name))

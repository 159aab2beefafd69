"""Names a package exports but imports on first use (PEP 562), so that importing it is cheap."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def exports(
    package: str, namespace: dict[str, Any], later: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of ``package``: ``later`` maps a name to its module.

    A name, once imported, becomes an ordinary global of the package (later lookups do not
    come back here). A name not in ``later`` is an ``AttributeError``, as it would be anyway.
    """

    def attribute(name: str) -> Any:
        module = later.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    def names() -> list[str]:
        return sorted(set(namespace) | set(later))

    return attribute, names

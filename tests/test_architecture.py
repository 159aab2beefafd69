"""The import direction of docs/architecture.md: each layer imports only the layers before it.

Every import counts, also those inside functions and under TYPE_CHECKING: an upward lazy
import is a cycle in disguise.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "sqlfence"
DOCS = PACKAGE.parent / "docs" / "architecture.md"
# Layer of each top-level part of the package, as docs/architecture.md lists them.
LAYERS = {
    "errors": 0,
    "small_files": 0,
    "databases": 0,
    "lazy": 0,
    "exits": 0,
    "arguments": 0,
    "sql": 1,
    "policies": 2,
    "observe": 3,
    "proxy": 4,
    "__init__": 5,
    "sandbox": 6,
    "integrations": 7,
    "cli": 8,
    "__main__": 9,
}


def _part(module: str) -> str:
    """``sqlfence.sql.names`` -> ``sql``; ``sqlfence`` -> ``__init__``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every sqlfence module ``path`` imports."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "sqlfence":  # from sqlfence import errors: the module itself
                found += [(node.lineno, f"sqlfence.{alias.name}") for alias in node.names]
            else:
                found.append((node.lineno, node.module))
    return [(line, module) for line, module in found if module.split(".")[0] == "sqlfence"]


def _own_part(path: Path) -> str:
    relative = path.relative_to(PACKAGE)
    return relative.parts[0] if len(relative.parts) > 1 else relative.stem


MODULES = sorted(PACKAGE.rglob("*.py"))


def test_every_part_of_the_package_has_a_layer() -> None:
    assert {_own_part(path) for path in MODULES} <= set(LAYERS)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_down_the_layers(path: Path) -> None:
    own = _own_part(path)
    for line, module in _imports(path):
        target = _part(module)
        if target not in LAYERS:  # a name from the facade (from sqlfence import connect)
            target = "__init__"
        if target in (own, "errors"):  # every part may raise the PEP 249 errors
            continue
        assert LAYERS[target] < LAYERS[own], (
            f"{path.relative_to(PACKAGE.parent)}:{line} imports {module}: layer "
            f"{own} ({LAYERS[own]}) may not import {target} ({LAYERS[target]})"
        )


def test_the_document_lists_the_same_layers() -> None:
    """docs/architecture.md's table gives each part the layer the test checks."""
    table = re.findall(r"^\| (\d) \| (.+?) \|", DOCS.read_text(), re.MULTILINE)
    documented = {}
    for layer, parts in table:
        for name in re.findall(r"`([a-z_]+)(?:/|\.py)?`", parts):
            documented["__init__" if name == "sqlfence" else name] = int(layer)
    assert documented == {k: v for k, v in LAYERS.items() if k != "__main__"}

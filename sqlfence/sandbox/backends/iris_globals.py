"""IRIS globals to and from a portable file, through the Native API.

A snapshot of an IRIS sandbox is every node of every global in its namespace's own
databases: table rows, indexes, class definitions and compiled code alike, since an IRIS
table lives entirely in globals. Walking uses ``isDefined`` / ``nextSubscript`` /
``getBytes`` (``$DATA`` / ``$ORDER`` / the raw value), loading uses ``set`` and ``kill``:
the documented methods of ``iris.IRIS`` (``iris.createIRIS(connection)``).

The file is gzip-compressed JSON Lines, one node per line: ``[global, [subscripts], value]``
with the value in base64 (values are kept as bytes, so ``$LIST`` data survives unchanged).
Subscripts keep their type: JSON integers and strings as themselves, and tagged objects
``{"f": "1.5"}`` (float), ``{"d": "1.50"}`` (decimal), ``{"b": "..."}`` (bytes).
``read_nodes`` decodes the whole file before anything is changed, so a damaged file is
refused with the line it broke on.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import json
from collections.abc import Iterable, Iterator
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from sqlfence.sandbox import private_files
from sqlfence.sandbox.snapshots import SnapshotCorrupt

FILE = "globals.jsonl.gz"
Subscript = str | int | float | Decimal | bytes
Node = tuple[str, tuple[Subscript, ...], bytes]

_HAS_VALUE = (1, 11)  # $DATA: 1 value, 10 children, 11 both
_HAS_CHILDREN = (10, 11)


def encode(node: Node) -> str:
    """One node as one line of JSON (no newline)."""
    name, subscripts, value = node
    return json.dumps(
        [name, [_encode_subscript(s) for s in subscripts], base64.b64encode(value).decode()],
        separators=(",", ":"),
        ensure_ascii=False,
    )


def decode(line: str, where: str) -> Node:
    """The node of one line; SnapshotCorrupt naming ``where`` when the line is not one."""
    try:
        name, subscripts, value = json.loads(line)
        if not isinstance(name, str) or not name or not isinstance(subscripts, list):
            raise ValueError("expected [global, [subscripts], value]")
        return (
            name,
            tuple(_decode_subscript(s) for s in subscripts),
            base64.b64decode(value, validate=True),
        )
    except (ValueError, TypeError, KeyError, InvalidOperation, binascii.Error) as error:
        raise SnapshotCorrupt(f"{where}: not a global node ({error})") from None


def write_nodes(path: Path, nodes: Iterable[Node]) -> int:
    """Write ``nodes`` to ``path``; return how many. No name or time in the gzip header, so
    the same nodes always give the same bytes (and the same checksum)."""
    count = 0
    with (
        private_files.create(path) as raw,
        gzip.GzipFile(filename="", fileobj=raw, mode="wb", mtime=0) as out,
    ):
        for node in nodes:
            out.write(encode(node).encode() + b"\n")
            count += 1
    return count


def read_nodes(path: Path) -> list[Node]:
    """Every node of ``path``, decoded and checked before the caller changes anything."""
    try:
        with gzip.open(path, "rt", encoding="utf-8") as lines:
            return [
                decode(line, f"{path.name}:{number}")
                for number, line in enumerate(lines, 1)
                if line.strip()
            ]
    except (OSError, EOFError, UnicodeDecodeError) as error:
        raise SnapshotCorrupt(f"{path.name}: unreadable ({error})") from None


def walk(native: Any, name: str) -> Iterator[Node]:
    """Every node of global ``name`` with a value, in collation order (depth first)."""
    pending: list[tuple[Subscript, ...]] = [()]
    while pending:
        subscripts = pending.pop()
        state = native.isDefined(name, *subscripts)
        if state in _HAS_VALUE:
            yield name, subscripts, bytes(native.getBytes(name, *subscripts) or b"")
        if state in _HAS_CHILDREN:
            children = []
            child = native.nextSubscript(False, name, *subscripts, "")
            while child is not None and child != "":
                children.append((*subscripts, child))
                child = native.nextSubscript(False, name, *subscripts, child)
            pending.extend(reversed(children))  # the first child is visited next


def load(native: Any, nodes: Iterable[Node]) -> int:
    """Set every node; returns how many."""
    count = 0
    for name, subscripts, value in nodes:
        native.set(value, name, *subscripts)
        count += 1
    return count


def _encode_subscript(subscript: Subscript) -> Any:
    if isinstance(subscript, bool):
        return int(subscript)
    if isinstance(subscript, (int, str)):
        return subscript
    if isinstance(subscript, float):
        return {"f": repr(subscript)}
    if isinstance(subscript, Decimal):
        return {"d": str(subscript)}
    if isinstance(subscript, (bytes, bytearray)):
        return {"b": base64.b64encode(bytes(subscript)).decode()}
    raise TypeError(f"cannot store a subscript of type {type(subscript).__name__}")


def _decode_subscript(value: Any) -> Subscript:
    if isinstance(value, bool):
        raise ValueError("a subscript is never a JSON boolean")
    if isinstance(value, (int, str)):
        return value
    if isinstance(value, dict) and len(value) == 1:
        ((tag, text),) = value.items()
        if tag == "f":
            return float(text)
        if tag == "d":
            return Decimal(text)
        if tag == "b":
            return base64.b64decode(text, validate=True)
    raise ValueError(f"unknown subscript {value!r}")

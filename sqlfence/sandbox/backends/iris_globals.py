"""IRIS globals to and from a portable file, through the Native API.

A snapshot of an IRIS sandbox is every node of every global in its namespace's own
databases: table rows, indexes, class definitions and compiled code alike, since an IRIS
table lives entirely in globals. Walking uses ``isDefined`` / ``nextSubscript`` / ``get``
(``$DATA`` / ``$ORDER`` / the typed value), loading uses ``set`` and ``kill``: the
documented methods of ``iris.IRIS`` (``iris.createIRIS(connection)``).

Values keep their type, because the type is part of the value: ``get`` gives a ``str`` for
an 8-bit or a 16-bit ("wide") string, ``int``, ``float`` for a ``$DOUBLE``, ``Decimal`` for
a decimal number, and ``set`` stores each back as the same IRIS type (a ``str`` whose
characters all fit in 8 bits as an 8-bit string, any other as a wide one). Raw bytes are not
a faithful form: ``getBytes`` gives a wide string's UTF-16LE code units and a ``$DOUBLE``'s
decimal text, and ``set(bytes)`` always stores an 8-bit string.

The file is gzip-compressed JSON Lines (ASCII, so any string survives), one node per line:
``[global, [subscripts], value]``. Subscripts are JSON integers and strings as themselves,
or tagged objects ``{"f": "1.5"}`` (float), ``{"d": "1.50"}`` (decimal), ``{"b": "<base64>"}``
(bytes); values the same, except that a string value is tagged ``{"s": "..."}``: a bare JSON
string value is base64 bytes, the format of snapshots written before values kept their type,
which still load as they were saved.
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

from sqlfence.errors import SnapshotCorrupt
from sqlfence.sandbox import private_files

FILE = "globals.jsonl.gz"
Subscript = str | int | float | Decimal | bytes
Value = str | int | float | Decimal | bytes
Node = tuple[str, tuple[Subscript, ...], Value]

_HAS_VALUE = (1, 11)  # $DATA: 1 value, 10 children, 11 both
_HAS_CHILDREN = (10, 11)


def encode(node: Node) -> str:
    """One node as one line of JSON (no newline)."""
    name, subscripts, value = node
    return json.dumps(
        [name, [_encode_typed(s, "subscript") for s in subscripts], _encode_value(value)],
        separators=(",", ":"),
    )


def decode(line: str, where: str) -> Node:
    """The node of one line; SnapshotCorrupt naming ``where`` when the line is not one."""
    try:
        name, subscripts, value = json.loads(line)
        if not isinstance(name, str) or not name or not isinstance(subscripts, list):
            raise ValueError("expected [global, [subscripts], value]")
        return name, tuple(_decode_typed(s) for s in subscripts), _decode_value(value)
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
            value = native.get(name, *subscripts)
            if value is not None:  # killed since isDefined looked
                yield name, subscripts, value
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


def _encode_value(value: Value) -> Any:
    if isinstance(value, str):
        return {"s": value}  # a bare JSON string is the legacy base64 form
    return _encode_typed(value, "value")


def _decode_value(value: Any) -> Value:
    if isinstance(value, str):  # written before values kept their type: raw bytes
        return base64.b64decode(value, validate=True)
    if isinstance(value, dict) and len(value) == 1 and "s" in value:
        text = value["s"]
        if isinstance(text, str):
            return text
    return _decode_typed(value)


def _encode_typed(item: Subscript, what: str) -> Any:
    if isinstance(item, bool):
        return int(item)
    if isinstance(item, (int, str)):
        return item
    if isinstance(item, float):
        return {"f": repr(item)}
    if isinstance(item, Decimal):
        return {"d": str(item)}
    if isinstance(item, (bytes, bytearray)):
        return {"b": base64.b64encode(bytes(item)).decode()}
    raise TypeError(f"cannot store a {what} of type {type(item).__name__}")


def _decode_typed(item: Any) -> Subscript:
    if isinstance(item, bool):
        raise ValueError("a subscript or value is never a JSON boolean")
    if isinstance(item, (int, str)):
        return item
    if isinstance(item, dict) and len(item) == 1:
        ((tag, text),) = item.items()
        if isinstance(text, str):
            if tag == "f":
                return float(text)
            if tag == "d":
                return Decimal(text)
            if tag == "b":
                return base64.b64decode(text, validate=True)
    raise ValueError(f"unknown subscript or value {item!r}")

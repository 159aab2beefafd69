"""The IRIS snapshot file format and the names of a sandbox's IRIS security objects.

Pure functions and the driver's offline pieces (``iris.IRISList``, the encoding the Native
API ships values in), no server: the walk and load against a real IRIS are in
test_iris_live.py.
"""

from __future__ import annotations

import base64
import gzip
import json
from decimal import Decimal
from pathlib import Path

import iris
import pytest

from sqlfence.sandbox import SnapshotCorrupt, naming
from sqlfence.sandbox.backends import iris_admin, iris_globals
from sqlfence.sandbox.backends.iris_globals import Node, Value

NODES: list[Node] = [
    ("Ebnm.EKUy.1", (), 10),
    ("Ebnm.EKUy.1", (1,), "\x07\x01Alice\x03\x04\x1e"),  # a $LIST, as get() gives it
    ("Ebnm.EKUy.1", (-12,), ""),
    ("Ebnm.EKUy.2", (" ALICE", 1), ""),
    ("oddDEF", ("User.Person", "a", "Name", 27), "Name \u00e9\u4e2d"),  # a wide string
    ("G", (1.5, Decimal("2.50"), b"\x00\xff"), 0.1),  # a $DOUBLE
    ("G", (2,), Decimal("2.50")),
    ("G", (3,), b"\x00\xffraw"),
    ("G", (4,), "\ud800 lone surrogate"),
    ("G", ("", "[1]", '{"f": "1"}'), '{"s": "look-alikes are strings"}'),
]
# What the Native API's get() returns, one of each IRIS type: wide and 8-bit strings (a $LIST
# is an 8-bit string), integers, $DOUBLE, decimals.
TYPED: list[Value] = [
    "\u4e2d\u6587 wide",
    "caf\u00e9",
    "\x07\x01Alice\x03\x04\x1e",
    "",
    "12",
    12,
    -7,
    1.5,
    0.1,
    float("inf"),
    Decimal("2.50"),
    Decimal("1E+3"),
]


@pytest.mark.parametrize("node", NODES, ids=[repr(n[1]) for n in NODES])
def test_a_node_survives_a_line(node: Node) -> None:
    """Names, typed subscripts and raw value bytes come back exactly, types included."""
    line = iris_globals.encode(node)
    assert "\n" not in line
    back = iris_globals.decode(line, "here")
    assert back == node
    assert [type(s) for s in back[1]] == [type(s) for s in node[1]]
    assert type(back[2]) is type(node[2])


def _wire(value: Value) -> bytes:
    """The bytes the driver ships ``value`` in (the list-item encoding set() and get() use)."""
    item = iris.IRISList()
    item.add(value)
    return bytes(item.getBuffer())


@pytest.mark.parametrize("value", TYPED, ids=[repr(v) for v in TYPED])
def test_a_value_goes_back_to_iris_as_the_same_type(value: Value) -> None:
    """A value read through the driver and saved comes back in the same IRIS encoding."""
    read = iris.IRISList(_wire(value)).get(1)  # what the driver decodes
    back = iris_globals.decode(iris_globals.encode(("G", (), read)), "here")[2]
    assert _wire(back) == _wire(value)


@pytest.mark.parametrize("value", ["\u4e2d\u6587 wide", 1.5, 12], ids=["wide", "double", "int"])
def test_raw_bytes_are_not_a_faithful_form(value: Value) -> None:
    """Why values keep their type: getBytes() then set(bytes) changes wide strings and numbers."""
    raw = iris.IRISList(_wire(value)).getBytes(1)
    assert _wire(raw) != _wire(value)


def test_snapshots_written_with_raw_values_still_load(tmp_path: Path) -> None:
    """A file of the older format (every value base64 bytes) loads as those bytes."""
    path = tmp_path / iris_globals.FILE
    lines = [
        json.dumps(["Ebnm.EKUy.1", [1], base64.b64encode(b"\x07\x01Alice").decode()]),
        json.dumps(["oddDEF", ["User.Person", {"f": "1.5"}], base64.b64encode(b"").decode()]),
    ]
    path.write_bytes(gzip.compress("\n".join(lines).encode()))
    assert iris_globals.read_nodes(path) == [
        ("Ebnm.EKUy.1", (1,), b"\x07\x01Alice"),
        ("oddDEF", ("User.Person", 1.5), b""),
    ]


def test_the_file_is_ascii_whatever_the_strings() -> None:
    """Wide characters and lone surrogates are escaped: every line encodes as ASCII."""
    for node in NODES:
        iris_globals.encode(node).encode("ascii")


def test_file_round_trip_is_reproducible(tmp_path: Path) -> None:
    """Same nodes, same bytes (no timestamp in the gzip header): checksums are stable."""
    first, second = tmp_path / "a.gz", tmp_path / "b.gz"
    assert iris_globals.write_nodes(first, NODES) == len(NODES)
    iris_globals.write_nodes(second, iter(NODES))
    assert first.read_bytes() == second.read_bytes()
    assert iris_globals.read_nodes(first) == NODES


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("not json", "Expecting value"),
        ('["G", [1]]', "not enough values"),
        ('["", [], ""]', "expected"),
        ('["G", [true], ""]', "boolean"),
        ('["G", [{"x": 1}], ""]', "unknown subscript"),
        ('["G", [], {"s": 1}]', "unknown subscript or value"),
        ('["G", [], [1]]', "unknown subscript or value"),
        ('["G", [], "***"]', "base64"),
        ('["G", [{"d": "abc"}], ""]', "ConversionSyntax|InvalidOperation|class"),
    ],
)
def test_a_damaged_line_is_refused_with_its_place(line: str, problem: str) -> None:
    """A line that is not a node is SnapshotCorrupt naming its place and what is wrong."""
    with pytest.raises(SnapshotCorrupt, match=r"globals\.jsonl\.gz:7: not a global node"):
        iris_globals.decode(line, "globals.jsonl.gz:7")
    with pytest.raises(SnapshotCorrupt, match=problem):
        iris_globals.decode(line, "x")


def test_a_damaged_file_is_refused_before_anything_is_loaded(tmp_path: Path) -> None:
    """A truncated gzip stream or a bad line in the middle fails the whole read."""
    path = tmp_path / iris_globals.FILE
    iris_globals.write_nodes(path, NODES)
    path.write_bytes(path.read_bytes()[:-9])
    with pytest.raises(SnapshotCorrupt, match="unreadable"):
        iris_globals.read_nodes(path)
    lines = [iris_globals.encode(n) for n in NODES]
    lines[3] = lines[3][:-3]
    path.write_bytes(gzip.compress("\n".join(lines).encode()))
    with pytest.raises(SnapshotCorrupt, match=rf"{iris_globals.FILE}:4:"):
        iris_globals.read_nodes(path)


def test_unknown_subscript_types_are_not_written() -> None:
    """A subscript the format cannot tag back is refused when writing, not lost."""
    with pytest.raises(TypeError, match="subscript of type list"):
        iris_globals.encode(("G", ([1],), b""))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="value of type NoneType"):
        iris_globals.encode(("G", (), None))  # type: ignore[arg-type]


def test_security_names_fit_and_stay_distinct() -> None:
    """Resources start with %DB_ and fit 63 characters; long sandbox names stay apart."""
    short = "AGENT_A1_20261126_130000_AB12"
    assert iris_admin.resource_names(short) == (f"%DB_{short}_DATA", f"%DB_{short}_CODE")
    assert iris_admin.role_name(short) == f"{short}__ROLE"
    long_a = naming.fit("TENANT_" + "X" * 80 + "_A")
    long_b = naming.fit("TENANT_" + "X" * 80 + "_B")
    names = {*iris_admin.resource_names(long_a), *iris_admin.resource_names(long_b)}
    assert len(names) == 4
    assert all(n.startswith("%DB_") and len(n) <= naming.MAX_LENGTH for n in names)


@pytest.mark.parametrize(
    ("read_only", "data"), [(False, "RW"), (True, "R")], ids=["writable", "read-only"]
)
def test_the_role_holds_its_own_databases_and_sql_only(read_only: bool, data: str) -> None:
    """The role holds its two database resources and SQL only; read-only means R on its data."""
    name = "AGENT_A1"
    assert iris_admin.role_resources(name, read_only) == (
        f"%DB_{name}_DATA:{data},%DB_{name}_CODE:RW,%Service_SQL:U"
    )


@pytest.mark.parametrize(
    ("status", "ok"), [(1, True), ("1", True), (b"1", True), (0, False), (b"0 \x01error", False)]
)
def test_status_values(status: object, ok: bool) -> None:
    """Only the Native API's forms of 1 are an OK %Status."""
    assert iris_admin.is_ok(status) is ok

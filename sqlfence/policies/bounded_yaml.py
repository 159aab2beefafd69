"""Policy YAML read and composed within fixed limits, so a hostile file fails fast.

Every limit is checked while reading or composing, before anything is built from the text:
a file that breaks one is a ``PolicyError`` naming the file (and the line where one is
known), never a raw exception, a hang on a special file or an unbounded allocation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from yaml import YAMLError
from yaml.composer import Composer
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.events import AliasEvent, Event
from yaml.nodes import Node, ScalarNode
from yaml.parser import Parser
from yaml.reader import Reader
from yaml.resolver import Resolver
from yaml.scanner import Scanner

from sqlfence.errors import PolicyError
from sqlfence.small_files import NotReadable, read_small

MAX_FILE_BYTES = 1 << 20  # a policy file is a few kilobytes; 1 MiB leaves room for allowlists
MAX_DEPTH = 64  # a policy nests six levels: tenants, t, agents, a, key, list
MAX_NODES = 20_000  # keys, values and items, counting what aliases repeat: bounds all work
MAX_NUMBER_LENGTH = 100  # YAML 1.1 ints like 1:2:3 cost quadratic time to convert

_LIMIT = ", the limit for a policy file"
_CORE = "tag:yaml.org,2002:"
# The core schema, plus what PyYAML resolves `<<` and `=` keys to. Timestamps, binary, sets,
# omap and pairs are refused: no policy key takes one, and the core schema has none.
_ALLOWED_TAGS = frozenset(
    _CORE + kind for kind in ("str", "int", "float", "bool", "null", "seq", "map", "merge", "value")
)
_NUMBER_TAGS = frozenset({_CORE + "int", _CORE + "float"})


def read_file(path: Path) -> str:
    """The text of a policy file; reads at most ``MAX_FILE_BYTES + 1`` bytes.

    Raises PolicyError when the file is missing, unreadable, too large or not UTF-8.
    """
    try:
        data = read_small(path, MAX_FILE_BYTES)
    except FileNotFoundError:
        raise PolicyError(f"policy file {path} does not exist") from None
    except NotReadable as error:
        raise PolicyError(f"policy file {path} cannot be read: {error}") from None
    except OSError as error:
        raise PolicyError(f"policy file {path} cannot be read: {error.strerror}") from None
    if len(data) > MAX_FILE_BYTES:
        raise PolicyError(f"{path.name}: {_too_large()}")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        byte = data[error.start]
        raise PolicyError(
            f"{path.name}:{line}: not UTF-8 (byte 0x{byte:02x} at offset {error.start})"
        ) from None


@dataclass(frozen=True)
class Composed:
    """One composed YAML document: its node tree, and the data built from it on demand."""

    node: Node | None
    name: str
    _loader: _BoundedLoader

    def construct(self) -> Any:
        """The data; merge keys (``<<``) rewrite ``node`` in place, so read the tree first.

        Raises PolicyError for a value its tag cannot hold (``!!int x``) or a bad merge.
        """
        if self.node is None:
            return None
        with _as_policy_error(self.name):
            return self._loader.construct_document(self.node)


def compose(text: str, name: str) -> Composed:
    """The node tree of the one YAML document in ``text``, composed within the limits.

    Raises PolicyError naming ``name`` and the line for text over the size limit, nesting
    deeper than ``MAX_DEPTH``, more than ``MAX_NODES`` nodes (aliases count what they
    repeat, so an alias bomb stops early), a tag outside the core schema, an over-long
    number or malformed YAML.
    """
    if len(text) > MAX_FILE_BYTES or len(text.encode("utf-8", "surrogatepass")) > MAX_FILE_BYTES:
        raise PolicyError(f"{name}: {_too_large()}")
    bad = Reader.NON_PRINTABLE.search(text)  # libyaml refuses the same; found here for the line
    if bad is not None:
        line = text.count("\n", 0, bad.start()) + 1
        raise PolicyError(f"{name}:{line}: character U+{ord(bad.group()):04X} is not allowed")
    loader = _Loader(text, name)
    with _as_policy_error(name):
        return Composed(loader.get_single_node(), name, loader)


@contextmanager
def _as_policy_error(name: str) -> Iterator[None]:
    try:
        yield
    except YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{name}:{mark.line + 1}" if mark is not None else name
        parts = (getattr(error, "context", None), getattr(error, "problem", None))
        problem = ", ".join(part for part in parts if part) or str(error).splitlines()[0]
        raise PolicyError(f"{where}: invalid YAML: {problem}") from None


def _too_large() -> str:
    return f"larger than {MAX_FILE_BYTES >> 20} MiB ({MAX_FILE_BYTES:,} bytes){_LIMIT}"


class _CoreResolver(Resolver):
    """PyYAML's resolver without implicit timestamps: `2024-01-01` stays a string."""

    yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag != _CORE + "timestamp"]
        for first, resolvers in Resolver.yaml_implicit_resolvers.items()
    }


class _BoundedComposer(Composer):
    """PyYAML's composer, refusing while it composes what a policy file never needs.

    Depth and size count what aliases stand for: an alias is as deep and as large as the
    node it repeats, so the tree a consumer walks is bounded, not just the text.
    """

    if TYPE_CHECKING:  # provided by the parser mixed in beside; not defined here at run time

        def peek_event(self) -> Event: ...

    def __init__(self, name: str) -> None:
        Composer.__init__(self)
        self._name = name
        self._depth = 0  # of the node being composed, counting through aliases
        self._reach = 0  # deepest level reached inside the current anchored node
        self._nodes = 0  # nodes composed so far, counting what aliases repeat
        self._shapes: dict[str, tuple[int, int]] = {}  # anchor: (nodes, height) once complete

    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        event = self.peek_event()
        line = event.start_mark.line + 1 if event.start_mark is not None else 1
        if isinstance(event, AliasEvent):
            self._expand(event, line)
            return super().compose_node(parent, index)
        tag = getattr(event, "tag", None)
        if tag not in (None, "!") and tag not in _ALLOWED_TAGS:
            shown = str(tag).replace(_CORE, "!!", 1)
            raise self._refuse(line, f"tag {shown} is not allowed in a policy file")
        if self._depth >= MAX_DEPTH:
            raise self._over_limit(line, f"nested deeper than {MAX_DEPTH} levels")
        anchor = getattr(event, "anchor", None)
        nodes, outer_reach = self._nodes, self._reach
        self._depth += 1
        self._nodes += 1
        self._reach = self._depth
        if self._nodes > MAX_NODES:
            raise self._over_limit(line, f"more than {MAX_NODES:,} keys and values")
        node = super().compose_node(parent, index)
        if (
            isinstance(node, ScalarNode)
            and node.tag in _NUMBER_TAGS
            and len(node.value) > MAX_NUMBER_LENGTH
        ):
            raise self._over_limit(line, f"a number longer than {MAX_NUMBER_LENGTH} characters")
        if anchor is not None:
            self._shapes[anchor] = (self._nodes - nodes, self._reach - self._depth + 1)
        self._depth -= 1
        self._reach = max(outer_reach, self._reach)
        return node

    def _expand(self, alias: AliasEvent, line: int) -> None:
        """Count what the alias repeats; PyYAML itself reports an undefined alias."""
        shape = self._shapes.get(str(alias.anchor))
        if shape is None:
            if alias.anchor in self.anchors:
                raise self._refuse(line, f"alias *{alias.anchor} is inside its own anchor")
            return
        nodes, height = shape
        self._nodes += nodes
        if self._nodes > MAX_NODES:
            problem = f"more than {MAX_NODES:,} keys and values counting what aliases repeat"
            raise self._over_limit(line, problem)
        if self._depth + height > MAX_DEPTH:
            raise self._over_limit(line, f"nested deeper than {MAX_DEPTH} levels through aliases")
        self._reach = max(self._reach, self._depth + height)

    def _refuse(self, line: int, problem: str) -> PolicyError:
        return PolicyError(f"{self._name}:{line}: {problem}")

    def _over_limit(self, line: int, problem: str) -> PolicyError:
        return self._refuse(line, problem + _LIMIT)


class _BoundedLoader(_BoundedComposer, SafeConstructor, _CoreResolver):
    """The composer, constructor and resolver; a subclass adds the event source."""

    def __init__(self, name: str) -> None:
        _BoundedComposer.__init__(self, name)
        SafeConstructor.__init__(self)
        _CoreResolver.__init__(self)

    def construct_object(self, node: Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except (LookupError, ValueError):  # `!!bool maybe`, `!!int x`: PyYAML lets these escape
            tag = str(node.tag).replace(_CORE, "!!", 1)
            problem = f"{node.value!r} is not a valid {tag}"
            raise ConstructorError(None, None, problem, node.start_mark) from None


class _PythonLoader(_BoundedLoader, Reader, Scanner, Parser):
    """Events from PyYAML's pure-Python reader, scanner and parser."""

    def __init__(self, text: str, name: str) -> None:
        Reader.__init__(self, text)
        Scanner.__init__(self)
        Parser.__init__(self)
        _BoundedLoader.__init__(self, name)


try:
    from yaml._yaml import CParser
except ImportError:  # PyYAML built without libyaml
    _Loader: Callable[[str, str], _BoundedLoader] = _PythonLoader
else:

    class _LibyamlLoader(_BoundedLoader, CParser):
        """Events from libyaml, composed in Python so the limits apply."""

        def __init__(self, text: str, name: str) -> None:
            CParser.__init__(self, text)
            _BoundedLoader.__init__(self, name)

    _Loader = _LibyamlLoader

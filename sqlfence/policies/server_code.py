"""The database's own code a statement can reach (PostgreSQL), and whether one does.

A PostgreSQL function written in SQL or PL/pgSQL runs with the caller's rights and reads
what it likes: under row filters or masks, reaching one is reading a table whole. A text
can reach one without calling it: through an operator or a cast the function implements, a
domain's CHECK, a view, a trigger, a column default or a rule of a table it writes. The
connection loads, once, every such path from the catalog (``proxy/postgres_code.py``); a
statement is then judged by the names PostgreSQL's own grammar reads in it (functions,
operators, types, identifiers) and the relations it reads and writes. What cannot be told
from names (an overload of a built-in operator, an operator class) makes ``everywhere``
say why no statement is safe on this database under filters or masks.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

from sqlfence.sql.postgres_grammar import EngineReading


@dataclass(frozen=True)
class ServerCode:
    """Every way into the database's own code, by what a statement names.

    ``functions``: names (lower case) of the database's own functions, procedures and
    aggregates. ``row_functions``: those taking one row, which ``t.f`` calls as ``f(t)``.
    ``operators``: operator names backed by one. ``types``: type names whose use runs one (a
    cast's function, a domain's CHECK, input or output). ``reads`` and ``writes``: relation
    -> what runs when it is read or written (a view calling one; a trigger, default, CHECK,
    index expression or rule). ``ddl``: why DDL runs one (an event trigger). ``everywhere``:
    why any statement may run one.
    """

    functions: frozenset[str] = frozenset()
    row_functions: frozenset[str] = frozenset()
    operators: frozenset[str] = frozenset()
    types: frozenset[str] = frozenset()
    reads: Mapping[str, str] = field(default_factory=dict)
    writes: Mapping[str, str] = field(default_factory=dict)
    ddl: str | None = None
    everywhere: str | None = None
    # table -> the tables its foreign keys' ON DELETE / ON UPDATE actions write, closed
    cascades: Mapping[str, frozenset[str]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(
            self.functions
            or self.operators
            or self.types
            or self.reads
            or self.writes
            or self.ddl
            or self.everywhere
            or self.cascades
        )

    def spread(
        self, reaches: Mapping[str, Collection[str]], writes_reach: Collection[tuple[str, str]]
    ) -> ServerCode:
        """The same, with what reaches a relation reaching through it: ``reaches`` maps a
        relation to those a read of it reads (views, rules, partitions, from the catalog);
        ``writes_reach`` holds (written, also written) pairs: a partition, a cascading
        foreign key, a rule's action."""
        reads = dict(self.reads)
        writes = dict(self.writes)
        pairs = [(relation, base) for relation, bases in reaches.items() for base in sorted(bases)]
        changed = True
        while changed:  # to a fixed point: a view over a view, a partition of a partition
            changed = False
            for relation, base in pairs:
                if relation not in reads and base in reads:
                    reads[relation] = f"it reads {base}, where {reads[base]}"
                    changed = True
            for written, also in sorted(writes_reach):
                if written not in writes and also in writes:
                    writes[written] = f"a write of it reaches {also}, where {writes[also]}"
                    changed = True
        return ServerCode(
            self.functions,
            self.row_functions,
            self.operators,
            self.types,
            reads,
            writes,
            self.ddl,
            self.everywhere,
            _closed(self.cascades),
        )

    def reached(
        self,
        engine: EngineReading | None,
        functions: Collection[str],
        read: Collection[str],
        written: Collection[str],
        ddl: bool,
        builtins: Collection[str] = (),
    ) -> str | None:
        """What of the database's own code a statement reaches, or None: ``functions`` it
        calls (the fence's names), relations it ``read`` and ``written``, and PostgreSQL's
        reading of its text for the rest; ``builtins`` are names it calls only as the
        built-in (the maskers' own calls)."""
        if self.everywhere:
            return self.everywhere
        if ddl and self.ddl:
            return self.ddl
        called = {name.lower() for name in functions}
        if engine is not None:
            called.update(name.lower() for name in engine.functions)
        for name in sorted(called.difference(builtins) & self.functions):
            return f"{name}() is a function of the database's own"
        for relation in sorted(written):
            if relation in self.writes:
                return f"writing {relation} runs the database's own code: {self.writes[relation]}"
        for relation in sorted(read):
            if ddl and relation in self.writes:  # LIKE, INHERITS, PARTITION OF copy its code
                return (
                    f"DDL on {relation} may copy the database's own code: {self.writes[relation]}"
                )
            if relation in self.reads:
                return f"reading {relation} runs the database's own code: {self.reads[relation]}"
        if engine is None:
            return None
        if self.operators:
            for name in sorted(engine.operators() & self.operators):
                return f"the operator {name} is the database's own code"
        if self.types:
            for name in sorted({n.lower() for n in engine.type_names()} & self.types):
                return f"the type {name} runs the database's own code (a cast, CHECK or input)"
        if self.row_functions:
            named = {name.lower() for name in engine.identifiers()}
            for name in sorted(named & self.row_functions):
                return f"{name} may be read as {name}(row), a function of the database's own"
        return None


def _closed(edges: Mapping[str, frozenset[str]]) -> dict[str, frozenset[str]]:
    """Each table -> every table reached from it through the edges, to any depth."""
    closed: dict[str, frozenset[str]] = {}
    for start in edges:
        seen: set[str] = set()
        todo = list(edges[start])
        while todo:
            table = todo.pop()
            if table not in seen:
                seen.add(table)
                todo.extend(edges.get(table, ()))
        closed[start] = frozenset(seen)
    return closed

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

# PostgreSQL statements (its grammar's node names) that make the database run code where no
# later text names it, or that change what the catalog read at connect says about it.
_DEFINING_CODE = frozenset(
    {
        "AlterDomainStmt",
        "AlterEventTrigStmt",
        "AlterExtensionContentsStmt",
        "AlterExtensionStmt",
        "AlterFdwStmt",
        "AlterForeignServerStmt",
        "AlterFunctionStmt",
        "AlterOpFamilyStmt",
        "AlterOperatorStmt",
        "AlterPolicyStmt",
        "AlterTypeStmt",
        "AlterUserMappingStmt",
        "CreateCastStmt",
        "CreateConversionStmt",
        "CreateDomainStmt",
        "CreateEventTrigStmt",
        "CreateExtensionStmt",
        "CreateFdwStmt",
        "CreateForeignServerStmt",
        "CreateForeignTableStmt",
        "CreateFunctionStmt",
        "CreateOpClassStmt",
        "CreateOpFamilyStmt",
        "CreatePLangStmt",
        "CreatePolicyStmt",
        "CreateRangeStmt",
        "CreateTransformStmt",
        "CreateTrigStmt",
        "DefineStmt",
        "DoStmt",
        "DropOwnedStmt",
        "ImportForeignSchemaStmt",
        "LoadStmt",
        "ReassignOwnedStmt",
        "RuleStmt",
    }
)


def defines_code(engine: EngineReading) -> str | None:
    """Why a statement may not run under row filters or masks because of what it makes the
    database do later or at once: define code no later text names, or drop by CASCADE."""
    defining = sorted(set(engine.kinds) & _DEFINING_CODE)
    if defining:
        return (
            f"{defining[0]} defines code (a function, operator, cast, type, trigger, rule, "
            "extension, foreign table ...) that PostgreSQL would run where no statement names "
            "it: under row filters or masks the catalog read at connect must stay whole"
        )
    if '"behavior":"DROP_CASCADE"' in engine.tree:
        return (
            "CASCADE is not allowed under row filters or masks: it drops or empties whatever "
            "depends on the object, a filtered or masked table or its tenant column among them"
        )
    return None


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
        relation to those a read of it reads (views, rules, partitions, from the catalog; a
        write of an updatable view writes its base table too); ``writes_reach`` holds
        (written, also written) pairs: a partition, a rule's action. ``cascades`` (foreign
        keys' actions) are followed from every relation a write reaches."""
        plain: dict[str, set[str]] = {}
        for relation, bases in reaches.items():
            plain.setdefault(relation, set()).update(bases)
        for written, also in writes_reach:
            plain.setdefault(written, set()).add(also)
        every: dict[str, set[str]] = {key: set(value) for key, value in plain.items()}
        for parent, children in self.cascades.items():
            every.setdefault(parent, set()).update(children)
        reads = dict(self.reads)
        writes = dict(self.writes)
        changed = True
        while changed:  # to a fixed point: a view over a view, a partition of a partition
            changed = False
            for relation, bases in reaches.items():
                for base in sorted(bases):
                    if relation not in reads and base in reads:
                        reads[relation] = f"it reads {base}, where {reads[base]}"
                        changed = True
            for written, also_written in every.items():
                for also in sorted(also_written):
                    if written not in writes and also in writes:
                        writes[written] = f"a write of it reaches {also}, where {writes[also]}"
                        changed = True
        cascades: dict[str, frozenset[str]] = {}
        for start in plain.keys() | self.cascades.keys():
            hit: set[str] = set()
            for written in reached_from(start, plain) | {start}:
                for child in self.cascades.get(written, ()):
                    hit |= reached_from(child, every) | {child}
            if hit:
                cascades[start] = frozenset(hit)
        return ServerCode(
            self.functions,
            self.row_functions,
            self.operators,
            self.types,
            reads,
            writes,
            self.ddl,
            self.everywhere,
            cascades,
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
            if ddl and relation in self.cascades:  # a view made now: the catalog never sees it
                return (
                    f"DDL on {relation}, whose writes make the database write other tables (a "
                    "foreign key's action), could hide those writes from the fence"
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


def reached_from(start: str, edges: Mapping[str, Collection[str]]) -> set[str]:
    """Every relation reached from ``start`` through ``edges``, to any depth (not itself
    unless a cycle comes back to it)."""
    seen: set[str] = set()
    todo = list(edges.get(start, ()))
    while todo:
        relation = todo.pop()
        if relation not in seen:
            seen.add(relation)
            todo.extend(edges.get(relation, ()))
    return seen

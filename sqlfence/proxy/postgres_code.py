"""Every path into a PostgreSQL database's own code, from its catalog.

The database's own code: functions outside the system schemas, except the C functions of
extensions (a SQL or PL/pgSQL function an extension holds reads what it likes as well, and
one can be added to an extension later), and except SQL functions whose body PostgreSQL's
grammar reads as one SELECT of no table, calling none of the rest (citext's ``replace``,
a wrapper like ``upper(int)``): those compute from their arguments alone.

What reaches the rest, besides a call by name: an operator whose function, or a type whose
input, output or cast function, is one; a domain whose CHECK calls one; a view or rule
depending on any of these; a trigger, column default, generated column, CHECK constraint or
index expression of a table written; a column whose type runs one; a foreign table (another
server's rows). What no name gives away (an operator class built on one, an overload of a
built-in operator or cast, which can take the place of the ``=`` in a row filter) is
``everywhere``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping
from typing import Any

from sqlfence.policies.server_code import ServerCode
from sqlfence.sql.functions import builtin_denied, canonical
from sqlfence.sql.postgres_grammar import read_body

_QUERY = r"""
WITH RECURSIVE
own AS (
  SELECT p.oid, p.proname, p.proname = ANY (%(reaching)s::text[]) AS reaching,
         p.pronargs = 1 AND EXISTS (
           SELECT 1 FROM pg_type t WHERE t.oid = p.proargtypes[0] AND t.typtype = 'c'
         ) AS takes_row
  FROM pg_proc p
  WHERE (
      -- made after initdb, in whatever schema (pg_catalog too), not an extension's C code
      p.oid >= 16384
      AND (%(own)s::oid[] IS NULL OR p.oid = ANY (%(own)s::oid[]))
      AND NOT (
        p.prolang IN (SELECT l.oid FROM pg_language l WHERE l.lanname IN ('c', 'internal'))
        AND EXISTS (
          SELECT 1 FROM pg_depend e
          WHERE e.classid = 'pg_proc'::regclass AND e.objid = p.oid AND e.deptype = 'e'
        )
      )
    )
    -- or a built-in that reaches past its arguments (runs SQL text, reads files): in a
    -- view or a default it is the owner's text, which the function deny list never sees
    OR p.proname = ANY (%(reaching)s::text[])
),
-- PostgreSQL records no dependency on a built-in (it is pinned): a view calling
-- query_to_xml('SELECT ... FROM orders') shows only in its stored expression tree
reaching AS (
  SELECT p.oid FROM pg_proc p WHERE p.oid < 16384 AND p.proname = ANY (%(reaching)s::text[])
),
trees(classid, objid, tree) AS (
  SELECT 'pg_rewrite'::regclass, w.oid, w.ev_action::text || coalesce(w.ev_qual::text, '')
  FROM pg_rewrite w WHERE w.ev_class >= 16384
  UNION ALL SELECT 'pg_attrdef'::regclass, a.oid, a.adbin::text FROM pg_attrdef a
  UNION ALL SELECT 'pg_constraint'::regclass, k.oid, k.conbin::text
  FROM pg_constraint k WHERE k.conbin IS NOT NULL
  UNION ALL SELECT 'pg_class'::regclass, x.indexrelid,
    coalesce(x.indexprs::text, '') || coalesce(x.indpred::text, '')
  FROM pg_index x WHERE x.indexrelid >= 16384
  UNION ALL SELECT 'pg_trigger'::regclass, g.oid, g.tgqual::text
  FROM pg_trigger g WHERE g.tgqual IS NOT NULL
  UNION ALL SELECT 'pg_policy'::regclass, y.oid,
    coalesce(y.polqual::text, '') || coalesce(y.polwithcheck::text, '')
  FROM pg_policy y
  UNION ALL SELECT 'pg_class'::regclass, t.partrelid, t.partexprs::text
  FROM pg_partitioned_table t WHERE t.partexprs IS NOT NULL
  UNION ALL SELECT 'pg_type'::regclass, t.oid, t.typdefaultbin::text
  FROM pg_type t WHERE t.typdefaultbin IS NOT NULL
),
calls_reaching AS (
  SELECT t.classid, t.objid FROM trees t
  WHERE EXISTS (
    SELECT 1 FROM regexp_matches(t.tree, ':(?:funcid|aggfnoid|winfnoid) (\d+)', 'g') m
    WHERE m[1]::oid IN (SELECT oid FROM reaching)
  )
),
ops AS (
  SELECT o.oid, o.oprname, n.nspname, o.oprleft, o.oprright, o.oprcode::oid AS code
  FROM pg_operator o JOIN pg_namespace n ON n.oid = o.oprnamespace
  WHERE o.oprcode::oid IN (SELECT oid FROM own)
     OR o.oprrest::oid IN (SELECT oid FROM own)
     OR o.oprjoin::oid IN (SELECT oid FROM own)
),
-- types whose values pass through it when read or compared (input, output, implicit casts)
read_types AS (
  SELECT t.oid FROM pg_type t
  WHERE t.typinput::oid IN (SELECT oid FROM own) OR t.typoutput::oid IN (SELECT oid FROM own)
     OR t.typreceive::oid IN (SELECT oid FROM own) OR t.typsend::oid IN (SELECT oid FROM own)
     OR t.typmodin::oid IN (SELECT oid FROM own) OR t.typmodout::oid IN (SELECT oid FROM own)
     OR t.typanalyze::oid IN (SELECT oid FROM own)
  UNION
  -- a range type's subtype_diff and canonical run as the planner estimates a condition
  SELECT r.rngtypid FROM pg_range r
  WHERE r.rngsubdiff::oid IN (SELECT oid FROM own) OR r.rngcanonical::oid IN (SELECT oid FROM own)
  UNION
  SELECT t.oid FROM pg_cast c
  JOIN pg_type t ON t.oid IN (c.castsource, c.casttarget)
  WHERE c.castfunc IN (SELECT oid FROM own) AND c.castcontext IN ('i', 'a')
    AND t.typnamespace <> 'pg_catalog'::regnamespace
),
-- domains whose CHECK calls it (run when a value is cast to the domain or written)
checked AS (
  SELECT k.contypid AS oid FROM pg_constraint k
  JOIN pg_depend d ON d.classid = 'pg_constraint'::regclass AND d.objid = k.oid
  WHERE k.contypid <> 0
    AND ((d.refclassid = 'pg_proc'::regclass AND d.refobjid IN (SELECT oid FROM own))
      OR (d.refclassid = 'pg_operator'::regclass AND d.refobjid IN (SELECT oid FROM ops))
      OR (d.refclassid = 'pg_type'::regclass AND d.refobjid IN (SELECT oid FROM read_types)))
  UNION
  SELECT k.contypid FROM pg_constraint k
  WHERE k.contypid <> 0
    AND k.oid IN (SELECT objid FROM calls_reaching WHERE classid = 'pg_constraint'::regclass)
  UNION
  SELECT objid FROM calls_reaching WHERE classid = 'pg_type'::regclass
  UNION
  -- and domains whose DEFAULT calls it (run when a row is written without the column)
  SELECT d.objid FROM pg_depend d JOIN pg_type t ON t.oid = d.objid AND t.typtype = 'd'
  WHERE d.classid = 'pg_type'::regclass
    AND ((d.refclassid = 'pg_proc'::regclass AND d.refobjid IN (SELECT oid FROM own))
      OR (d.refclassid = 'pg_operator'::regclass AND d.refobjid IN (SELECT oid FROM ops)))
),
types(oid, on_read) AS (
  SELECT oid, true FROM read_types
  UNION SELECT oid, false FROM checked
  -- what holds such a type: a domain over it, an array of it, a composite or row type
  UNION SELECT t.oid, s.on_read FROM pg_type t JOIN types s
    ON t.typbasetype = s.oid OR t.typelem = s.oid
    OR (t.typrelid <> 0 AND EXISTS (
      SELECT 1 FROM pg_attribute a
      WHERE a.attrelid = t.typrelid AND a.atttypid = s.oid AND a.attnum > 0
    ))
),
-- every object depending on it (views' and rules' rewrites, defaults, constraints, indexes)
users AS (
  SELECT d.classid, d.objid, d.objsubid FROM pg_depend d
  WHERE (d.refclassid = 'pg_proc'::regclass AND d.refobjid IN (SELECT oid FROM own))
     OR (d.refclassid = 'pg_operator'::regclass AND d.refobjid IN (SELECT oid FROM ops))
     OR (d.refclassid = 'pg_type'::regclass AND d.refobjid IN (SELECT oid FROM types))
  UNION
  SELECT classid, objid, 0 FROM calls_reaching
),
relations AS (
  SELECT c.oid, c.relkind, n.nspname || '.' || c.relname AS name
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE c.oid >= 16384
)
SELECT 'function', o.proname, CASE WHEN o.reaching THEN 'reaching' ELSE o.takes_row::text END,
       o.oid::text
FROM own o
UNION ALL
SELECT 'operator', o.oprname,
       o.nspname || '.' || o.oprname || '(' || coalesce(format_type(o.oprleft, NULL), 'none')
         || ', ' || coalesce(format_type(o.oprright, NULL), 'none') || ')',
       o.code::regproc::text
FROM ops o
UNION ALL
SELECT 'overload', o.oprname,
       o.nspname || '.' || o.oprname || '(' || coalesce(format_type(o.oprleft, NULL), 'none')
         || ', ' || coalesce(format_type(o.oprright, NULL), 'none') || ')',
       o.code::regproc::text
FROM ops o
WHERE EXISTS (
  SELECT 1 FROM pg_operator b
  WHERE b.oprname = o.oprname AND b.oprnamespace = 'pg_catalog'::regnamespace
)
UNION ALL
SELECT 'type', t.typname, s.on_read::text, format_type(t.oid, NULL)
FROM types s JOIN pg_type t ON t.oid = s.oid
UNION ALL
SELECT 'type', t.typname, 'false', format_type(t.oid, NULL)
FROM pg_cast c JOIN pg_type t ON t.oid = c.casttarget
WHERE c.castfunc IN (SELECT oid FROM own)
UNION ALL
SELECT 'cast', format_type(c.castsource, NULL), format_type(c.casttarget, NULL),
       c.castfunc::regproc::text
FROM pg_cast c
WHERE c.castfunc IN (SELECT oid FROM own)
  AND c.castsource IN (SELECT oid FROM pg_type WHERE typnamespace = 'pg_catalog'::regnamespace)
  AND c.casttarget IN (SELECT oid FROM pg_type WHERE typnamespace = 'pg_catalog'::regnamespace)
UNION ALL
SELECT CASE WHEN w.ev_type = '1' THEN 'read' ELSE 'write' END, r.name,
       CASE WHEN w.ev_type = '1' THEN 'its view definition calls it'
            ELSE 'its rule ' || w.rulename || ' calls it' END, ''
FROM pg_rewrite w JOIN relations r ON r.oid = w.ev_class
WHERE w.oid IN (SELECT objid FROM users WHERE classid = 'pg_rewrite'::regclass)
  AND r.relkind <> 'm'  -- a materialized view runs its query when refreshed, not read
UNION ALL
SELECT 'write', r.name, 'the default of column ' || a.attname || ' calls it', ''
FROM pg_attrdef ad JOIN relations r ON r.oid = ad.adrelid
JOIN pg_attribute a ON a.attrelid = ad.adrelid AND a.attnum = ad.adnum
WHERE ad.oid IN (SELECT objid FROM users WHERE classid = 'pg_attrdef'::regclass)
UNION ALL
SELECT 'write', r.name, 'its constraint ' || k.conname || ' calls it', ''
FROM pg_constraint k JOIN relations r ON r.oid = k.conrelid
WHERE k.oid IN (SELECT objid FROM users WHERE classid = 'pg_constraint'::regclass)
UNION ALL
-- the planner folds an index's expressions and predicate as it plans a read, too
SELECT 'read', r.name, 'its index ' || i.relname || ' calls it', ''
FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN relations r ON r.oid = x.indrelid
WHERE x.indexrelid IN (SELECT objid FROM users WHERE classid = 'pg_class'::regclass)
UNION ALL
SELECT 'read', r.name, 'its partition key calls it', ''
FROM relations r
WHERE r.relkind = 'p'
  AND r.oid IN (SELECT objid FROM users WHERE classid = 'pg_class'::regclass AND objsubid = 0)
UNION ALL
SELECT 'read', r.name, 'its statistics object ' || x.stxname || ' calls it', ''
FROM pg_statistic_ext x JOIN relations r ON r.oid = x.stxrelid
WHERE x.oid IN (SELECT objid FROM users WHERE classid = 'pg_statistic_ext'::regclass)
UNION ALL
SELECT 'read', r.name, 'its row security policy ' || y.polname || ' calls it', ''
FROM pg_policy y JOIN relations r ON r.oid = y.polrelid
WHERE y.oid IN (SELECT objid FROM users WHERE classid = 'pg_policy'::regclass)
UNION ALL
-- every trigger but the built-in ones: an extension's C trigger runs SQL too (refint)
SELECT 'write', r.name, 'its trigger ' || g.tgname || ' runs ' || g.tgfoid::regproc::text, ''
FROM pg_trigger g JOIN relations r ON r.oid = g.tgrelid
WHERE NOT g.tgisinternal
  AND (g.tgfoid IN (SELECT oid FROM own)
    -- contrib's C triggers that only set the row's own columns are not counted
    OR (g.tgfoid >= 16384 AND g.tgfoid::regproc::text NOT IN (
      'moddatetime', 'public.moddatetime', 'insert_username', 'public.insert_username',
      'autoinc', 'public.autoinc'))
    OR g.oid IN (SELECT objid FROM users WHERE classid = 'pg_trigger'::regclass))
UNION ALL
SELECT CASE WHEN s.on_read THEN 'read' ELSE 'write' END, r.name,
       'its column ' || a.attname || ' is of type ' || format_type(a.atttypid, NULL), ''
FROM pg_attribute a JOIN relations r ON r.oid = a.attrelid JOIN types s ON s.oid = a.atttypid
WHERE a.attnum > 0 AND NOT a.attisdropped
UNION ALL
SELECT 'read', r.name, 'it is a foreign table, whose rows another server gives', ''
FROM relations r WHERE r.relkind = 'f'
UNION ALL
SELECT 'ddl', e.evtname, e.evtfoid::regproc::text, ''
FROM pg_event_trigger e WHERE e.evtfoid IN (SELECT oid FROM own) AND e.evtenabled <> 'D'
UNION ALL
SELECT 'class', f.opfname, 'its operator ' || p.amopopr::regoperator::text, ''
FROM pg_amop p JOIN pg_opfamily f ON f.oid = p.amopfamily
WHERE p.amopopr IN (SELECT oid FROM ops)
UNION ALL
SELECT 'class', f.opfname, 'its support function ' || p.amproc::regproc::text, ''
FROM pg_amproc p JOIN pg_opfamily f ON f.oid = p.amprocfamily
WHERE p.amproc::oid IN (SELECT oid FROM own)
UNION ALL
-- what a write reaches: partitions and children, cascading foreign keys, rules' actions
SELECT 'reach', p.name, c.name, '' FROM pg_inherits i
JOIN relations p ON p.oid = i.inhparent JOIN relations c ON c.oid = i.inhrelid
UNION ALL
SELECT 'cascade', p.name, c.name, k.conname FROM pg_constraint k
JOIN relations p ON p.oid = k.confrelid JOIN relations c ON c.oid = k.conrelid
WHERE k.contype = 'f' AND (k.confdeltype IN ('c', 'n', 'd') OR k.confupdtype IN ('c', 'n', 'd'))
UNION ALL
SELECT DISTINCT 'reach', r.name, t.name, '' FROM pg_rewrite w
JOIN relations r ON r.oid = w.ev_class
JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = w.oid
  AND d.refclassid = 'pg_class'::regclass
JOIN relations t ON t.oid = d.refobjid
WHERE w.ev_type <> '1' AND t.oid <> w.ev_class
"""
# The bodies of SQL functions among them.
_BODIES = """
SELECT p.oid, p.proname, p.prosrc,
       ARRAY(
         SELECT t.typname FROM pg_type t
         WHERE t.oid = p.prorettype
            OR t.oid = ANY (p.proargtypes::oid[] || coalesce(p.proallargtypes, '{}'))
       )
FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
WHERE l.lanname = 'sql' AND p.pronargdefaults = 0 AND p.oid = ANY (%(own)s::oid[])
"""
# Built-ins that reach past their arguments: run SQL text, read files, pages or large
# objects, other databases, settings. The deny list's others (sequences, sleeps, advisory
# locks, notifications) do not read rows: a serial column's nextval() default is harmless.
_ELSEWHERE = re.compile(
    r"(nextval|setval|currval|lastval|pg_sleep.*|pg_(try_)?advisory.*|pg_notify|txid_.*"
    r"|pg_current_xact_id.*|pg_cancel_backend|pg_terminate_backend)"
)
_REACHING = frozenset(name for name in builtin_denied("postgres") if not _ELSEWHERE.fullmatch(name))

_ROUNDS = 4  # a pure function's domain made its caller look impure: so many times at most
Rows = Callable[[str, Mapping[str, Any]], list[Any]]


def load_server_code(rows: Rows, reaches: Mapping[str, Collection[str]]) -> ServerCode:
    """The database's own code and every path into it: ``rows`` runs a catalog query with
    its parameters, ``reaches`` maps each view (rule, parent table) to the relations a read
    of it reads."""
    code, names = _code(rows(_QUERY, _parameters(None)), reaches)
    if not names:
        return code
    bodies = rows(_BODIES, {"own": sorted(names)})
    own = set(names)
    for _ in range(_ROUNDS):  # pure functions' types and operators are harmless too: again
        still = own - _pure_functions(bodies, names, code)
        if still == own:
            break
        own = still
        code = _code(rows(_QUERY, _parameters(sorted(own))), reaches)[0]
    return code


def _parameters(own: list[int] | None) -> dict[str, Any]:
    """``_QUERY``'s parameters: the functions that still count (None: all of them)."""
    return {"own": own, "reaching": sorted(_REACHING)}


def _pure_functions(bodies: list[Any], names: Mapping[int, str], code: ServerCode) -> set[int]:
    """The SQL functions that compute from their arguments alone: one SELECT of no table,
    calling no built-in that reaches further, no operator, type or row function of the
    database's own, and no other function of its own unless that one is pure too."""
    calls: dict[int, set[str]] = {}
    for oid, _, body, signature in bodies:
        if {name.lower() for name in signature} & code.types:
            continue  # a domain among its arguments or its result: its CHECK runs
        reading = read_body(body or "", None)
        if reading.error is not None or reading.kinds != ("select",) or reading.tables:
            continue
        called = {call.lower() for call in reading.functions}
        if (
            not {canonical(call) for call in called} & _REACHING
            and not reading.operators() & code.operators
            and not {t.lower() for t in reading.type_names()} & code.types
            and not {i.lower() for i in reading.identifiers()} & code.row_functions
        ):
            calls[int(oid)] = called
    # A call by name may reach any function of that name: pure only while all of them are.
    impure = {name for oid, name in names.items() if oid not in calls}
    changed = True
    while changed:
        changed = False
        for oid, called in list(calls.items()):
            if called & impure:
                del calls[oid]
                impure.add(names[oid])
                changed = True
    return set(calls)


def _code(
    found: list[Any], reaches: Mapping[str, Collection[str]]
) -> tuple[ServerCode, dict[int, str]]:
    """The rows of ``_QUERY`` as a ``ServerCode``, and its functions' names by oid."""
    oids: dict[int, str] = {}
    functions: set[str] = set()
    row_functions: set[str] = set()
    operators: set[str] = set()
    types: set[str] = set()
    reads: dict[str, str] = {}
    writes: dict[str, str] = {}
    write_reach: set[tuple[str, str]] = set()
    cascades: dict[str, set[str]] = {}
    ddl: str | None = None
    everywhere: str | None = None
    for kind, name, detail, more in found:
        if kind == "function" and detail == "reaching":
            continue  # a built-in: the function deny list judges a call of it
        if kind == "function":
            oids[int(more)] = name.lower()
            functions.add(name.lower())
            if detail == "true":
                row_functions.add(name.lower())
        elif kind == "operator":
            operators.add(name)
        elif kind == "overload" and everywhere is None:
            everywhere = (
                f"the operator {detail} (function {more}) overloads a built-in operator, so "
                "PostgreSQL may choose it for any comparison, a row filter's own included"
            )
        elif kind == "type":
            types.add(name.lower())
        elif kind == "cast" and everywhere is None:
            everywhere = (
                f"the cast from {name} to {detail} runs {more}, which PostgreSQL may apply "
                "to any value of a built-in type"
            )
        elif kind == "read":
            reads.setdefault(name, detail)
            writes.setdefault(name, detail)
        elif kind == "write":
            writes.setdefault(name, detail)
        elif kind == "ddl" and ddl is None:
            ddl = f"the event trigger {name} runs {detail} on DDL"
        elif kind == "class" and everywhere is None:
            everywhere = (
                f"the operator family {name} is built on the database's own code ({detail}), "
                "which PostgreSQL may run to sort, group or compare any value of its type"
            )
        elif kind == "reach":
            write_reach.add((name, detail))
        elif kind == "cascade":  # a foreign key's action: the database writes the child
            cascades.setdefault(name, set()).add(detail)
    code = ServerCode(
        frozenset(functions),
        frozenset(row_functions),
        frozenset(operators),
        frozenset(types),
        reads,
        writes,
        ddl,
        everywhere,
        {parent: frozenset(children) for parent, children in cascades.items()},
    )
    return code.spread(reaches, write_reach), oids

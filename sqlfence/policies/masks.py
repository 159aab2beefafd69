"""A policy's column masks for one guard: which columns of each table are masked, and how.

Built once per Guard, and only when the policy has ``masked_columns``. The rewrite itself is
``sql/masks.py`` (inside ``sql/row_filters.py``'s derived tables); this module matches keys
(``table.column``, ``schema.table.column``, ``*.column``) to the tables of the catalog, and
carries a mask to what holds or computes the same values: a partition or inheritance child
of a masked table, a generated column computed from a masked one. A table whose columns the
fence does not know cannot be masked, so its reads are refused rather than passed unmasked.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from sqlfence.errors import PolicyError
from sqlfence.policies.model import Policy
from sqlfence.policies.server_code import reached_from
from sqlfence.policies.tables import TableSet
from sqlfence.sql.masks import Mask, MaskError, TableMasks, parse_masker
from sqlfence.sql.names import Namer

_MEMO_LIMIT = 4096  # table names come from agents' texts: the memo must not grow without end


class ColumnMasks:
    """The masks of a policy, matched to tables by name, with each table's columns."""

    def __init__(
        self,
        policy: Policy,
        namer: Namer,
        star_columns: Mapping[str, Collection[str]],
        generated: Mapping[str, Mapping[str, Collection[str]]],
        views: Mapping[str, Collection[str]],
        part_of: Mapping[str, frozenset[str]],
        references: Mapping[str, Collection[tuple[str, str | None]]] | None = None,
        placing: Mapping[str, Collection[str]] | None = None,
    ) -> None:
        self._namer = namer
        self.origin = origin = policy.origin("masked_columns")
        self._named: list[tuple[TableSet, str, Mask]] = []
        self._anywhere: list[tuple[str, Mask]] = []  # *.column: every table with the column
        for key, text in policy.masked_columns.items():
            try:
                mask = parse_masker(key, text)
            except MaskError as error:
                where = f" (policy {origin})" if origin else ""
                raise PolicyError(f"masked_columns[{key!r}]: {error}{where}") from None
            table, _, column = key.rpartition(".")
            name = self._column(column)
            if table.strip() == "*":
                self._anywhere.append((name, mask))
            else:
                parts = tuple(namer.normalize(p, quoted=True) for p in namer.qualify(table))
                pattern = parts if "." in table else ("*", parts[-1])
                self._named.append((TableSet((pattern,)), name, mask))
        self._star = {table: tuple(columns) for table, columns in star_columns.items()}
        self._known = {
            table: frozenset(namer.normalize(c, quoted=True) for c in columns)
            for table, columns in self._star.items()
        }
        self._generated = {
            table: {
                namer.normalize(column, quoted=True): frozenset(
                    namer.normalize(s, quoted=True) for s in sources
                )
                for column, sources in columns.items()
            }
            for table, columns in generated.items()
        }
        self._part_of = part_of
        self._views = views
        # table -> (referenced table, referenced column; None: its primary key) per foreign key
        self._references = references or {}
        self._referenced_by: dict[str, set[str]] = {}
        for referencing, keys in self._references.items():
            for target, _column in keys:
                self._referenced_by.setdefault(target, set()).add(referencing)
        self._read_by: dict[str, set[str]] = {}
        for reader, bases in views.items():
            for base in bases:
                self._read_by.setdefault(base, set()).add(reader)
        # table -> the columns deciding where its rows are kept (a partition key ...)
        self._placing = {
            table: frozenset(namer.normalize(c, quoted=True) for c in columns)
            for table, columns in (placing or {}).items()
        }
        self._parts: dict[str, set[str]] = {}  # table -> its partitions and children, all
        for part, owners in part_of.items():
            for owner in owners:
                self._parts.setdefault(owner, set()).add(part)
        self._memo: dict[str, TableMasks | None] = {}

    def _column(self, written: str) -> str:
        written = written.strip()
        quoted = len(written) > 1 and written[0] == written[-1] == '"'
        return self._namer.normalize(written[1:-1] if quoted else written, quoted=quoted)

    def misspelt(self) -> str | None:
        """A key whose column a table has only in another letter case (PostgreSQL: ssn is
        not "SSN"): it would mask nothing there and leave that column open."""
        for table, columns in sorted(self._star.items()):
            known = self._known[table]
            keys = [(c, m) for names, c, m in self._named if names.matches(table, True)]
            for column, mask in keys + self._anywhere:
                if column in known:
                    continue
                other = next((c for c in columns if c.lower() == column.lower()), None)
                if other is not None:
                    return (
                        f"masked_columns[{mask.key!r}] names the column {column}, which {table} "
                        f"does not have, but it has {other}: write the name as the database "
                        "spells it (a quoted part keeps its case)"
                    )
        return None

    def columns_of(self, table: str) -> frozenset[str] | None:
        """The columns of a qualified table as the database compares them, if known."""
        return self._known.get(table)

    def masks_for(self, table: str) -> TableMasks | None:
        """The masks on a qualified table name (None when it has none)."""
        if table in self._memo:
            return self._memo[table]
        own = self._own(table)
        inherited = self._through(table, {table})
        found = own or inherited
        if own is not None and inherited is not None and inherited.unusable is None:
            # a partition matched by a key of its own keeps its parent's masks as well
            found = self._finish(table, {**inherited.masked, **own.masked}, own.unusable)
        placed = self._placed(table, found) if found is not None else None
        if found is not None and placed is not None:
            found = TableMasks(table, found.columns, found.masked, placed, found.through)
        if len(self._memo) < _MEMO_LIMIT:
            self._memo[table] = found
        return found

    def _placed(self, table: str, masks: TableMasks) -> str | None:
        """Why a masked column decides where ``table``'s rows are kept, or a relative's: a
        scan returns rows in that order (a rowid, a WITHOUT ROWID key), and a partitioned
        table part by part (its key), so the order or the part a row comes from, read by
        row_number() OVER () or from the part itself, would tell the masked value."""
        if masks.unusable is not None:
            return None
        relatives = {table} | self._part_of.get(table, frozenset()) | self._parts.get(table, set())
        for relative in sorted(relatives):
            hit = sorted(self._placing.get(relative, frozenset()) & masks.masked.keys())
            if hit:
                return (
                    f"its masked column {hit[0]} decides where {relative} keeps each row (its "
                    "key or partitioning), so the order or the part a row is read from would "
                    "tell the value"
                )
        return None

    def refusal(self, relation: str) -> str | None:
        """Why reading ``relation`` would show values it does not mask: a view or rule over
        a masked table (it may show a masked value under any name), or a parent over a
        partition or child with masks the parent does not have on the same columns."""
        mine = self.masks_for(relation)
        for base in sorted(self._views.get(relation, ())):
            theirs = self.masks_for(base)
            if theirs is None or theirs.through == relation:
                continue  # no masks, or only those of this relation itself
            part = relation in self._part_of.get(base, ())
            kept = mine.masked if mine is not None and theirs.unusable is None else {}
            if part and all(kept.get(c) == m for c, m in theirs.masked.items()):
                continue
            if part:
                return (
                    f"{relation} holds the rows of {base}, which masks columns {relation} does "
                    f"not mask the same way: mask them on {relation} too, or read {base}"
                )
            return (
                f"{relation} reads {base}, which has masked columns: the fence cannot mask "
                "inside a view; read the table, or mask the view's columns instead of the table's"
            )
        return None

    def references_masked(self, table: str) -> str | None:
        """A masked column that ``table`` references by a foreign key, or None."""
        for referenced, column in sorted(self._references.get(table, ()), key=str):
            masks = self.masks_for(referenced)
            if masks is None:
                continue
            if column is None:  # the referenced table's primary key
                return f"{referenced} (its primary key)"
            name = self._namer.normalize(column, quoted=True)
            if name in masks.masked:
                return f"{referenced}.{column}"
        return None

    def written_through(self, table: str) -> list[str]:
        """``table`` and every relation a write to it may write: an updatable view's base,
        a rule's actions, a parent's partitions and children, and theirs in turn."""
        return [table, *sorted(reached_from(table, self._views) - {table})]

    def referenced_by_masked(self, table: str) -> str | None:
        """A table with masked columns whose foreign key references ``table``, or None."""
        for referencing in sorted(self._referenced_by.get(table, ())):
            if self._own(referencing) is not None:  # a part's keys are its parent's too
                return referencing
        return None

    def _own(self, table: str) -> TableMasks | None:
        known = self._known.get(table)
        masked: dict[str, Mask] = {}
        missing: list[str] = []
        for names, column, mask in self._named:
            if names.matches(table, True):
                masked[column] = mask
                if known is not None and column not in known:
                    missing.append(mask.key)
        for column, mask in self._anywhere:
            if known is None or column in known:
                masked.setdefault(column, mask)
        if not masked and not (self._anywhere and known is None):
            return None
        unusable = None
        if known is None:
            unusable = (
                f"the fence does not know the columns of {table}, so it cannot mask them "
                "(the catalog's columns were not loaded, or the table is newer than the "
                "connection: reconnect)"
            )
        elif missing:
            listed = ", ".join(self._star[table])
            unusable = f"{missing[0]} names no column of {table} (its columns: {listed})"
        return self._finish(table, masked, unusable)

    def _through(self, table: str, seen: set[str]) -> TableMasks | None:
        """The masks of a relation that reads ``table``: a parent's, carried to its partition
        or child when it has the masked columns; else reading ``table`` is refused (its rows
        hold the values the reader masks)."""
        for reader in sorted(self._read_by.get(table, ())):
            if reader in seen:
                continue
            seen.add(reader)
            above = self._own(reader) or self._through(reader, seen)
            if above is None:
                continue
            known = self._known.get(table)
            part = reader in self._part_of.get(table, ())
            origin = above.through or reader  # whose own keys the masks are
            if part and known is not None and set(above.masked) <= known:
                return self._finish(table, dict(above.masked), None, origin)
            why = (
                f"{table} holds values of {reader}, which has masked columns "
                f"({', '.join(above.keys)}): read {reader}, or mask {table}'s columns too"
            )
            return TableMasks(table, self._star.get(table, ()), dict(above.masked), why, origin)
        return None

    def _finish(
        self, table: str, masked: dict[str, Mask], unusable: str | None, through: str | None = None
    ) -> TableMasks:
        # A generated column computed from masked columns is redacted (null if one of them
        # is nulled): any masker of its own would show parts of them (substr(email, 2)).
        for column, sources in sorted(self._generated.get(table, {}).items()):
            hit = [masked[source] for source in sorted(sources & masked.keys())]
            if hit and column not in masked:
                kind = "null" if any(mask.kind == "null" for mask in hit) else "redact"
                masked[column] = Mask(hit[0].key, kind)
        return TableMasks(table, self._star.get(table, ()), masked, unusable, through)

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
        self._read_by: dict[str, set[str]] = {}
        for reader, bases in views.items():
            for base in bases:
                self._read_by.setdefault(base, set()).add(reader)
        self._memo: dict[str, TableMasks | None] = {}

    def _column(self, written: str) -> str:
        written = written.strip()
        quoted = len(written) > 1 and written[0] == written[-1] == '"'
        return self._namer.normalize(written[1:-1] if quoted else written, quoted=quoted)

    def columns_of(self, table: str) -> frozenset[str] | None:
        """The columns of a qualified table as the database compares them, if known."""
        return self._known.get(table)

    def masks_for(self, table: str) -> TableMasks | None:
        """The masks on a qualified table name (None when it has none)."""
        if table in self._memo:
            return self._memo[table]
        found = self._own(table) or self._through(table, {table})
        if len(self._memo) < _MEMO_LIMIT:
            self._memo[table] = found
        return found

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
            if part and known is not None and set(above.masked) <= known:
                return self._finish(table, dict(above.masked), None, reader)
            why = (
                f"{table} holds values of {reader}, which has masked columns "
                f"({', '.join(above.keys)}): read {reader}, or mask {table}'s columns too"
            )
            return TableMasks(table, self._star.get(table, ()), dict(above.masked), why, reader)
        return None

    def _finish(
        self, table: str, masked: dict[str, Mask], unusable: str | None, through: str | None = None
    ) -> TableMasks:
        # a generated column computed from a masked column is masked the same way
        for column, sources in sorted(self._generated.get(table, {}).items()):
            hit = sorted(sources & masked.keys())
            if hit and column not in masked:
                masked[column] = masked[hit[0]]
        return TableMasks(table, self._star.get(table, ()), masked, unusable, through)

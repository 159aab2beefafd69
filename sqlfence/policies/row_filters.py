"""A policy's row filters for one guard: which filters each table has, and the rewrite's check.

Built once per Guard (its identity fixed), and only when the policy has ``row_filters``: a
guard without them never comes here. The rewrite itself is ``sql/row_filters.py``; this
module matches policy keys to tables, binds the identity, and trusts a rewrite only after
reading its text back as the fence reads any statement (and as PostgreSQL's grammar does).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from sqlglot.dialects.dialect import Dialect

from sqlfence.errors import PolicyError
from sqlfence.policies.masks import ColumnMasks
from sqlfence.policies.model import Policy
from sqlfence.policies.rules import Violation
from sqlfence.policies.tables import TableSet, is_catalog_table
from sqlfence.sql.analysis import Analysis
from sqlfence.sql.filter_keys import FilterError, column_key
from sqlfence.sql.masks import MaskRefused
from sqlfence.sql.names import Namer
from sqlfence.sql.row_filter_check import unfiltered
from sqlfence.sql.row_filters import Identity, RowFilter, bind, parse_filter, rewrite
from sqlfence.sql.with_check import Refused

_MEMO_LIMIT = 4096  # table names come from agents' texts: the memo must not grow without end


class RowFilters:
    """The filters of a policy, bound to one identity, matched to tables by name."""

    def __init__(
        self,
        policy: Policy,
        identity: Identity,
        dialect: Dialect,
        namer: Namer,
        table_columns: Mapping[str, frozenset[str]],
        views: Mapping[str, frozenset[str]],
        part_of: Mapping[str, frozenset[str]] | None = None,
        masks: ColumnMasks | None = None,
        generated: Mapping[str, Mapping[str, frozenset[str]]] | None = None,
        star_columns: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        self._dialect = dialect
        self._namer = namer
        self._table_columns = table_columns
        self._views = views
        self._origin = policy.origin("row_filters")
        self._masks = masks
        self._generated = generated or {}
        self._star = star_columns or {}  # counts each ``*`` in the tie-breakers of an order
        self._tables: list[tuple[TableSet, RowFilter]] = []
        self._columns: list[tuple[str, RowFilter]] = []
        for key, text in policy.row_filters.items():
            try:
                condition = parse_filter(text, dialect)
            except FilterError as error:
                where = f" (policy {self._origin})" if self._origin else ""
                raise PolicyError(f"row_filters[{key!r}]: {error}{where}") from None
            bound = bind(key, condition, identity, dialect)
            column = column_key(key)
            if column is not None:
                self._columns.append((column, bound))
            else:
                # A quoted key part keeps its case only where the dialect's quoted names do:
                # SQLite folds "Notes" to notes as it folds Notes (qualify would keep it).
                parts = tuple(namer.normalize(part, quoted=True) for part in namer.qualify(key))
                pattern = parts if "." in key else ("*", parts[-1])
                self._tables.append((TableSet((pattern,)), bound))
        self._memo: dict[str, tuple[RowFilter, ...]] = {}
        # What reads each relation besides itself: the views and rules over it, and the
        # parents of an inheritance child or partition (whose rows a parent's read returns).
        self._read_by: dict[str, set[str]] = {}
        for reader, bases in views.items():
            for base in bases:
                self._read_by.setdefault(base, set()).add(reader)
        # What the rewrite refuses a relation for reading: not a partition or child whose own
        # filters the relation's filters include (the parent's filter covers its rows), so a
        # partitioned table stays readable under a *.column key.
        owners = part_of or {}
        self._views = {
            relation: frozenset(base for base in bases if not self._covered(base, relation, owners))
            for relation, bases in views.items()
        }

    def filters_for(self, table: str) -> tuple[RowFilter, ...]:
        """The filters on a qualified table name (empty when it has none)."""
        known = self._memo.get(table)
        if known is not None:
            return known
        found = self._own(table)
        if not found:
            found = self._through(table)
        result = tuple(found)
        if len(self._memo) < _MEMO_LIMIT:
            self._memo[table] = result
        return result

    def _own(self, table: str) -> list[RowFilter]:
        """The filters a table's own name or columns give it (named and *.column keys)."""
        found = [bound for names, bound in self._tables if names.matches(table, True)]
        if self._columns and not is_catalog_table(self._namer.dialect_name, table):
            # (the system catalog's relations hold no tenant's column: none can be added)
            columns = self._table_columns.get(table)
            for column, bound in self._columns:
                if columns is None:
                    why = (
                        f"the fence does not know the columns of {table}, so it cannot tell "
                        f"whether {bound.key} applies (the catalog's columns were not loaded)"
                    )
                    found.append(RowFilter(bound.key, bound.condition, None, why))
                elif column in columns:
                    found.append(bound)
        return found

    def _covered(self, part: str, relation: str, owners: Mapping[str, frozenset[str]]) -> bool:
        """Is ``part`` a partition or child of ``relation`` whose filters are among its own?"""
        if relation not in owners.get(part, ()):
            return False
        own = {f.key for f in self.filters_for(part) if f.through is None}
        return own <= {f.key for f in self.filters_for(relation)}

    def _through(self, table: str) -> list[RowFilter]:
        """A table with no filter of its own that a filtered relation reads (a partition or
        inheritance child of a filtered parent, a table under a filtered view): read directly,
        it would show every tenant's rows, so its reads are refused (a filter that cannot be
        used); give it a filter of its own, or read the filtered relation."""
        seen, todo = {table}, [table]
        while todo:
            for reader in sorted(self._read_by.get(todo.pop(), ())):
                if reader in seen:
                    continue
                seen.add(reader)
                above = self._own(reader)  # *.column keys too: FTS docs_content has c0, c1
                if above:
                    why = (
                        f"{table} is read through {reader}, which has a row filter "
                        f"({above[0].key}): give {table} a filter of its own, or read {reader}"
                    )
                    return [RowFilter(above[0].key, above[0].condition, None, why, reader)]
                todo.append(reader)
        return []

    def apply(
        self,
        analysis: Analysis,
        analyze: Callable[[str], Analysis],
        engine_check: Callable[[str, Analysis], Violation | None],
    ) -> tuple[Analysis, tuple[str, ...], tuple[str, ...]] | Violation:
        """The statement with its row filters and masks applied, read back, and the filters'
        and masks' keys applied; or the Violation saying why it cannot be (then it is denied)."""
        try:
            text, done = rewrite(
                analysis,
                self._namer,
                self.filters_for,
                self._views,
                self._masks,
                self._generated,
                self._star,
            )
        except Refused as refused:
            return self._violation(str(refused), isinstance(refused, MaskRefused))
        if text is None:
            return analysis, (), ()
        again = analyze(text)
        if again.facts.unparsed or len(again.trees) != len(analysis.trees):
            return self._violation(
                f"the rewritten statement does not read back ({again.facts.unparsed})"
            )
        for tree in again.trees:
            missed = unfiltered(tree, self._namer, self.filters_for, self._dialect, self._masks)
            if missed is not None:
                return self._violation(f"the rewrite could not be verified for {missed}")
        problem = engine_check(text, again)
        if problem is not None:
            return self._violation(f"the rewritten statement: {problem.message}")
        return again, tuple(done.applied), tuple(done.masked)

    def _violation(self, message: str, masks: bool = False) -> Violation:
        if masks or not (self._tables or self._columns):
            origin = self._masks.origin if self._masks is not None else None
            return Violation("masked_columns", f"masked columns: {message}", origin)
        return Violation("row_filters", f"row filter: {message}", self._origin)

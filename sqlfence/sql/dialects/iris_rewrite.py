"""Rewrite IRIS-only token sequences into ones sqlglot's stock parser reads.

Rewrites (IRIS text -> what the parser sees):

- `%` + adjacent word -> one word token (`%ID`, `%EXACT`, `%Library.String`); `%STARTSWITH`
  and the other `%` predicates -> range operators (`PERCENT_PREDICATE_TOKENS`); a class name
  used as a type (`Name %Library.String(MAXLEN=50)`) -> one word; `%SQLUPPER x` ->
  `%SQLUPPER(x)`; a `%` that starts no name -> an unknown token (no IRIS operator).
- `##class(Pkg.Cls).Method` -> one word token, so it parses as a function of that name.
- `TOP n`, `TOP ((n))`, `TOP ?`, `TOP ALL` -> `TOP (...)` with one extra parenthesis, which
  the parser reads in every case; `LIMIT ALL n` -> `LIMIT n` (ALL is a noise word in IRIS).
- `%NOLOCK`-style options after SELECT/INSERT/UPDATE/DELETE and `%INORDER`-style hints after
  FROM -> a hint token after the statement keyword; the parser makes it an `exp.Hint`.
- `CALL p(x)` / `?=CALL p(x)` -> `SELECT p(x)` with a hint marker, made `exp.Execute` later.
- `INSERT OR UPDATE` -> the parser's `INSERT OR REPLACE` slot (any other `INSERT OR` fails).
- `{d '...'}`, `{t '...'}`, `{ts '...'}` -> the typed literals `DATE '...'` etc.
- A function name other than `TYPED_FUNCTIONS` gets `ANONYMOUS_MARKER` appended, so the
  parser keeps it as `exp.Anonymous`, printed back verbatim; sqlglot's typed nodes would
  print some IRIS functions in other dialects' spellings (INSTR as STR_POSITION). Inside
  `{fn ...}` the name gets `ODBC_FN_MARKER` instead, so the escape is printed back.

Only tokens of the types in `_HANDLED` are looked at; the runs between them are copied as
slices, so a statement costs one list comprehension plus work per handled token.
"""

from __future__ import annotations

from sqlglot.parser import Parser
from sqlglot.tokenizer_core import Token, TokenType


class Fix:
    """Bits naming the tree repairs `iris_parsing` runs after parsing rewritten tokens."""

    NONE = 0
    ARROW = 1
    TOP = 2
    LIMIT = 4
    CALL = 8
    INSERT_OR_UPDATE = 16
    PERCENT_PREDICATE = 32
    QUALIFIED_CALL = 64
    ANONYMOUS = 128
    ROW_LIMIT_RULES = 256  # a TOP next to an OFFSET, or a row limit next to a set operation
    MANY_ROW_LIMITS = 512  # row limits may sit below the root: look through the whole tree


ANONYMOUS_MARKER = "\x00"
ODBC_FN_MARKER = "\x01"
"""Marks a function written as an ODBC escape, `{fn CONVERT(x, SQL_VARCHAR)}`, whose meaning
can differ from the bare call (IRIS's bare CONVERT takes the type first)."""
TYPED_FUNCTIONS = frozenset(
    {"COUNT", "SUM", "AVG", "MIN", "MAX", "CAST", "EXTRACT", "POSITION", "SUBSTRING", "TRIM",
     "JSON_OBJECT", "JSON_TABLE"}
)  # fmt: skip
"""Functions that keep sqlglot's typed node: aggregates and those with special syntax."""
_ANONYMOUS_FUNCTIONS = frozenset({*Parser.FUNCTIONS, *Parser.FUNCTION_PARSERS} - TYPED_FUNCTIONS)
# keywords that name functions when a parenthesis follows: REPLACE(x, 'a', 'b'), CHAR(65)
_FUNCTION_KEYWORDS = frozenset(
    {TokenType.VAR, TokenType.TRUNCATE, TokenType.REPLACE, TokenType.CHAR, TokenType.LIST,
     TokenType.FORMAT, TokenType.TEXT, TokenType.LEFT, TokenType.RIGHT}
)  # fmt: skip
# a type follows these, not a function: CAST(x AS CHAR(10)), Name CHAR(10)
_BEFORE_TYPES = frozenset({TokenType.ALIAS, TokenType.VAR, TokenType.IDENTIFIER})

HINT_SEPARATOR = "\x00"
"""Separates the options carried by one hint token (an option may span lines)."""
CALL_MARKER = "CALL"
RETURNING_CALL_MARKER = "?=CALL"

PERCENT_PREDICATE_TOKENS: dict[str, TokenType] = {
    "%STARTSWITH": TokenType.CARET_AT,  # parsed into exp.StartsWith
    # parsed into Glob/SimilarTo/ArrayContainedBy/ArrayContainsAll/Overlaps, then renamed
    "%MATCHES": TokenType.GLOB,
    "%PATTERN": TokenType.SIMILAR_TO,
    "%INLIST": TokenType.LT_AT,
    "%INSET": TokenType.AT_GT,
    "%FIND": TokenType.OVERLAPS,
}
STATEMENT_OPTIONS = frozenset(
    {
        "%NOLOCK", "%NOFPLAN", "%NORUNTIME", "%PROFILE", "%PROFILE_ALL",  # SELECT
        "%NOCHECK", "%NOINDEX", "%NOJOURN", "%NOTRIGGER",  # INSERT, UPDATE, DELETE
    }
)  # fmt: skip
FROM_HINTS = frozenset(
    {
        "%ALLINDEX", "%FIRSTTABLE", "%FULL", "%IGNOREINDEX", "%IGNOREINDICES", "%INORDER",
        "%NOFLATTEN", "%NOMERGE", "%NOREDUCE", "%NOSVSO", "%NOTOPOPT", "%NOUNIONOROPT",
        "%PARALLEL", "%STARTTABLE",
    }
)  # fmt: skip
_HINTS_NAMING_TABLES = frozenset({"%FIRSTTABLE"})
_HINTS_NAMING_INDEXES = frozenset({"%IGNOREINDEX", "%IGNOREINDICES"})
_PERCENT_COMMANDS = frozenset({"%CHECKPRIV", "%INTRANSACTION"})
# collation functions, which IRIS also accepts without parentheses: %SQLUPPER Name
_COLLATION_FUNCTIONS = frozenset(
    {"%ALPHAUP", "%EXACT", "%MINUS", "%MVR", "%PLUS", "%SPACE", "%SQLSTRING", "%SQLUPPER",
     "%STRING", "%TRUNCATE", "%UPPER"}
)  # fmt: skip
_ODBC_LITERALS = {"D": (TokenType.DATE, "DATE"), "T": (TokenType.TIME, "TIME"),
                  "TS": (TokenType.TIMESTAMP, "TIMESTAMP")}  # fmt: skip
_OPTION_STATEMENTS = frozenset(
    {TokenType.SELECT, TokenType.INSERT, TokenType.UPDATE, TokenType.DELETE}
)
_NAME_TOKENS = frozenset({TokenType.VAR, TokenType.IDENTIFIER})
_HANDLED = frozenset(
    {
        TokenType.PERCENT, TokenType.MOD, TokenType.TOP, TokenType.LIMIT, TokenType.L_BRACE,
        TokenType.L_PAREN, TokenType.OR, TokenType.SEMICOLON, TokenType.HASH_ARROW,
        TokenType.OFFSET, TokenType.UNION, TokenType.INTERSECT, TokenType.EXCEPT,
    }
)  # fmt: skip


def rewrite(sql: str, scanned: list[Token]) -> tuple[list[Token], int]:
    """Return the rewritten tokens of `sql` and the `Fix` bits the parsed trees need."""
    handled = _HANDLED
    marks = [i for i, token in enumerate(scanned) if token.token_type in handled]
    first = scanned[0]
    if not marks and first.token_type not in (TokenType.VAR, TokenType.PLACEHOLDER):
        return scanned, Fix.NONE
    rewriter = _Rewriter(sql, scanned)
    return rewriter.run(marks), rewriter.row_limit_fixes()


def _is_hint_name(token: Token, keyword: str) -> bool:
    """A name a FROM hint takes: a (dotted) word, or for the index hints a bare `*` (every
    index of the table: `%IGNOREINDEX [[schema.]table.]*`, the FROM clause reference)."""
    if keyword in _HINTS_NAMING_INDEXES and token.token_type == TokenType.STAR:
        return True
    return _is_word(token)


def _is_word(token: Token) -> bool:
    """A name part: an identifier, or a word the scanner took for a keyword (`String`)."""
    if token.token_type == TokenType.IDENTIFIER:
        return True
    first = token.text[:1]
    return token.token_type != TokenType.STRING and (first.isalpha() or first == "_")


def _token(
    kind: TokenType, text: str, first: Token, last: Token | None = None, synthetic: bool = False
) -> Token:
    """A token spanning `first`..`last` with their comments (none when `synthetic`)."""
    last = last or first
    if synthetic:
        comments: list[str] = []
    elif first is last:
        comments = first.comments
    else:
        comments = [*first.comments, *last.comments]
    return Token(
        kind, text, line=last.line, col=last.col, start=first.start, end=last.end,
        comments=comments,
    )  # fmt: skip


class _Rewriter:
    def __init__(self, sql: str, scanned: list[Token]) -> None:
        self.sql = sql
        self.tokens = scanned
        self.out: list[Token] = []
        self.fixes = Fix.NONE
        # out-index of a statement keyword -> hint texts to insert after it
        self.hints: dict[int, list[str]] = {}
        # row-limit keywords seen (TOP, LIMIT, OFFSET) and set operations, for the repairs
        self.tops = self.limits = self.offsets = self.set_operations = 0

    def row_limit_fixes(self) -> int:
        fixes = self.fixes
        row_limits = self.tops + self.limits
        if (self.tops and self.offsets) or (row_limits and self.set_operations):
            fixes |= Fix.ROW_LIMIT_RULES
        if row_limits > 1 or self.set_operations:
            fixes |= Fix.MANY_ROW_LIMITS
        return fixes

    def run(self, marks: list[int]) -> list[Token]:
        scanned, out = self.tokens, self.out
        i = self._statement_start(0)
        for mark in marks:
            if mark < i:
                continue  # consumed by the previous rewrite
            out.extend(scanned[i:mark])
            i = self._handle(mark)
        out.extend(scanned[i:])
        return self._with_hints() if self.hints else out

    def _handle(self, i: int) -> int:
        token = self.tokens[i]
        kind = token.token_type
        if kind == TokenType.L_PAREN:
            self._before_paren()
        elif kind == TokenType.PERCENT:
            return self._percent(i)
        elif kind == TokenType.SEMICOLON:
            self.out.append(token)
            return self._statement_start(i + 1)
        elif kind == TokenType.MOD and self._type_at(i + 1) == TokenType.MOD:
            return self._class_method(i)
        elif kind == TokenType.TOP:
            return self._top(i)
        elif kind == TokenType.LIMIT:
            self.out.append(token)
            self.fixes |= Fix.LIMIT
            self.limits += 1
            return i + 2 if self._type_at(i + 1) == TokenType.ALL else i + 1
        elif kind == TokenType.OFFSET:
            self.offsets += 1
        elif kind in (TokenType.UNION, TokenType.INTERSECT, TokenType.EXCEPT):
            self.set_operations += 1
        elif kind == TokenType.L_BRACE and self._odbc_literal(i):
            return i + 4
        elif kind == TokenType.HASH_ARROW:
            self.fixes |= Fix.ARROW
        elif kind == TokenType.OR and self.out and self.out[-1].token_type == TokenType.INSERT:
            return self._insert_or(i)
        self.out.append(token)
        return i + 1

    def _with_hints(self) -> list[Token]:
        merged: list[Token] = []
        for index, token in enumerate(self.out):
            merged.append(token)
            texts = self.hints.get(index)
            if texts:
                hint = _token(TokenType.HINT, "", token, synthetic=True)
                hint.comments.append(
                    HINT_SEPARATOR.join(texts)
                )  # the parser reads the hint from here
                merged.append(hint)
        return merged

    def _type_at(self, i: int) -> TokenType | None:
        return self.tokens[i].token_type if i < len(self.tokens) else None

    def _percent_name(self, i: int) -> str | None:
        """The `%name` starting at tokens[i] (a `%`), if a word follows without a space."""
        if i + 1 >= len(self.tokens):
            return None
        word = self.tokens[i + 1]
        first = self.sql[word.start : word.start + 1]
        if word.start != self.tokens[i].end + 1 or not (first.isalpha() or first == "_"):
            return None
        if word.token_type in (TokenType.STRING, TokenType.IDENTIFIER):
            return None
        return "%" + self.sql[word.start : word.end + 1]

    def _after_dotted_name(self, i: int, star: bool = False) -> int:
        """Index after the `.part` repetitions starting at tokens[i] (`.*` too if `star`)."""
        scanned = self.tokens
        while i + 1 < len(scanned) and scanned[i].token_type == TokenType.DOT:
            part = scanned[i + 1]
            if not (_is_word(part) or (star and part.token_type == TokenType.STAR)):
                break
            i += 2
        return i

    def _after_parens(self, i: int) -> int:
        """Index after the parenthesized group opening at tokens[i] (or after tokens[i])."""
        scanned = self.tokens
        depth = 0
        while i < len(scanned):
            kind = scanned[i].token_type
            depth += (kind == TokenType.L_PAREN) - (kind == TokenType.R_PAREN)
            i += 1
            if depth <= 0:
                break
        return i

    # statements ---------------------------------------------------------------------------

    def _statement_start(self, i: int) -> int:
        scanned = self.tokens
        if i >= len(scanned):
            return i
        first = scanned[i]
        if first.token_type == TokenType.PERCENT:
            if (self._percent_name(i) or "").upper() in _PERCENT_COMMANDS:
                return self._percent_command(i)
            return i
        marker = None
        if first.token_type == TokenType.VAR and first.text.upper() == "CALL":
            marker, end = CALL_MARKER, i + 1
        elif (
            first.token_type == TokenType.PLACEHOLDER
            and self._type_at(i + 1) == TokenType.EQ
            and i + 2 < len(scanned)
            and scanned[i + 2].text.upper() == "CALL"
        ):
            marker, end = RETURNING_CALL_MARKER, i + 3
        if marker is None:
            return i
        self.fixes |= Fix.CALL
        self.out.append(_token(TokenType.SELECT, "SELECT", first, scanned[end - 1]))
        self.hints.setdefault(len(self.out) - 1, []).append(marker)
        return end

    def _percent_command(self, i: int) -> int:
        # `%CHECKPRIV ...`: the whole statement becomes one exp.Command
        scanned = self.tokens
        name = (self._percent_name(i) or "").upper()
        self.out.append(_token(TokenType.COMMAND, name, scanned[i], scanned[i + 1]))
        end = i + 2
        while end < len(scanned) and scanned[end].token_type != TokenType.SEMICOLON:
            end += 1
        if end > i + 2:
            text = self.sql[scanned[i + 2].start : scanned[end - 1].end + 1]
            self.out.append(_token(TokenType.STRING, text, scanned[i + 2], scanned[end - 1]))
        return end

    def _insert_or(self, i: int) -> int:
        # INSERT OR UPDATE fills the parser's INSERT OR REPLACE slot; any other INSERT OR ...
        # is not IRIS and must not parse.
        scanned = self.tokens
        or_ = scanned[i]
        if self._type_at(i + 1) != TokenType.UPDATE:
            self.out.append(_token(TokenType.UNKNOWN, or_.text, or_))
            return i + 1
        self.fixes |= Fix.INSERT_OR_UPDATE
        self.out.append(or_)
        self.out.append(_token(TokenType.VAR, "REPLACE", scanned[i + 1]))
        return i + 2

    # functions ----------------------------------------------------------------------------

    def _before_paren(self) -> None:
        out = self.out
        if not out:
            return
        name = out[-1]
        kind = name.token_type
        before = out[-2].token_type if len(out) > 1 else None
        if kind == TokenType.DATABASE:
            out[-1] = _token(TokenType.VAR, name.text, name)  # DATABASE(): the namespace
        elif before == TokenType.DOT:
            if kind in _NAME_TOKENS:
                self.fixes |= Fix.QUALIFIED_CALL
        elif (
            len(out) > 2
            and out[-3].token_type == TokenType.L_BRACE
            and out[-2].text.upper() == "FN"
            and name.text.upper() not in TYPED_FUNCTIONS
        ):
            self.fixes |= Fix.ANONYMOUS
            out[-1] = _token(TokenType.VAR, name.text + ODBC_FN_MARKER, name)
        elif (
            kind in _FUNCTION_KEYWORDS
            and before not in _BEFORE_TYPES
            and name.text.upper() in _ANONYMOUS_FUNCTIONS
        ):
            self.fixes |= Fix.ANONYMOUS
            out[-1] = _token(TokenType.VAR, name.text + ANONYMOUS_MARKER, name)

    def _class_method(self, i: int) -> int:
        # `##class(Pkg.Cls).Method(`: one word, so the parser sees a function of that name
        scanned = self.tokens
        if (
            i + 3 < len(scanned)
            and scanned[i + 2].text.upper() == "CLASS"
            and scanned[i + 3].token_type == TokenType.L_PAREN
        ):
            close = self._after_parens(i + 3) - 1
            if (
                self._type_at(close + 1) == TokenType.DOT
                and close + 2 < len(scanned)
                and _is_word(scanned[close + 2])
            ):
                last = scanned[close + 2]
                text = "##class" + self.sql[scanned[i + 3].start : last.end + 1]
                self.out.append(_token(TokenType.VAR, text, scanned[i], last))
                return close + 3
        self.out.append(scanned[i])
        return i + 1

    def _odbc_literal(self, i: int) -> bool:
        scanned = self.tokens
        if i + 3 >= len(scanned):
            return False
        escape, value, close = scanned[i + 1], scanned[i + 2], scanned[i + 3]
        literal = _ODBC_LITERALS.get(escape.text.upper())
        if (
            literal is None
            or escape.token_type != TokenType.VAR
            or value.token_type != TokenType.STRING
            or close.token_type != TokenType.R_BRACE
        ):
            return False
        self.out.append(_token(literal[0], literal[1], scanned[i], escape))
        self.out.append(_token(TokenType.STRING, value.text, value, close))
        return True

    # row limits ---------------------------------------------------------------------------

    def _top(self, i: int) -> int:
        # The parser reads `TOP n` and `TOP (expr)`; `TOP ALL`, `TOP ?` and a parenthesized
        # count become `TOP (<count>)` with one more parenthesis, which the repair counts
        # and removes with the count's own (TOP ((n)) keeps literals out of IRIS's cache).
        scanned = self.tokens
        top = scanned[i]
        self.tops += 1
        self.out.append(top)
        following = self._type_at(i + 1)
        if following == TokenType.NUMBER:
            return i + 1
        self.fixes |= Fix.TOP
        self.out.append(_token(TokenType.L_PAREN, "(", top, synthetic=True))
        if following == TokenType.ALL:
            self.out.append(_token(TokenType.VAR, "ALL", scanned[i + 1]))
            end = i + 2
        else:
            end = self._after_parens(i + 1)
            self.out.extend(scanned[i + 1 : end])
        self.out.append(_token(TokenType.R_PAREN, ")", scanned[end - 1], synthetic=True))
        return end

    # % names ------------------------------------------------------------------------------

    def _percent(self, i: int) -> int:
        scanned = self.tokens
        name = self._percent_name(i)
        if name is None:
            self.out.append(_token(TokenType.UNKNOWN, "%", scanned[i]))
            return i + 1
        upper = name.upper()
        predicate = PERCENT_PREDICATE_TOKENS.get(upper)
        if predicate is not None:
            if predicate != TokenType.CARET_AT:
                self.fixes |= Fix.PERCENT_PREDICATE
            self.out.append(_token(predicate, upper, scanned[i], scanned[i + 1]))
            return i + 2
        prev = self.out[-1].token_type if self.out else None
        if upper in STATEMENT_OPTIONS:
            keyword = self._statement_keyword_index()
            if keyword is not None:
                self.hints.setdefault(keyword, []).append(upper)
                return i + 2
        if upper in FROM_HINTS and prev == TokenType.FROM:
            return self._from_hints(i)
        if prev in _NAME_TOKENS or prev == TokenType.ALIAS:
            return self._class_type(i)
        self.out.append(_token(TokenType.VAR, name, scanned[i], scanned[i + 1]))
        if upper in _COLLATION_FUNCTIONS and self._type_at(i + 2) != TokenType.L_PAREN:
            return self._parenthesize_operand(i + 2)
        return i + 2

    def _statement_keyword_index(self) -> int | None:
        """out-index of the SELECT/INSERT/UPDATE/DELETE that options just read follow."""
        out = self.out
        index = len(out) - 1
        if index >= 0 and out[index].token_type in _OPTION_STATEMENTS:
            return index
        # INSERT OR UPDATE %NOLOCK: the parser reads the options right after INSERT
        if (
            index >= 2
            and out[index - 1].token_type == TokenType.OR
            and out[index - 2].token_type == TokenType.INSERT
        ):
            return index - 2
        return None

    def _owning_select(self) -> int | None:
        """out-index of the SELECT whose FROM was just emitted (same parenthesis depth)."""
        depth = 0
        for index in range(len(self.out) - 1, -1, -1):
            kind = self.out[index].token_type
            if kind == TokenType.R_PAREN:
                depth += 1
            elif kind == TokenType.L_PAREN:
                if depth == 0:
                    return None
                depth -= 1
            elif depth == 0 and kind == TokenType.SELECT:
                return index
            elif kind == TokenType.SEMICOLON:
                return None
        return None

    def _from_hints(self, i: int) -> int:
        scanned = self.tokens
        texts: list[str] = []
        while i < len(scanned) and scanned[i].token_type == TokenType.PERCENT:
            keyword = (self._percent_name(i) or "").upper()
            if keyword not in FROM_HINTS:
                break
            i += 2
            names: list[str] = []
            while (keyword in _HINTS_NAMING_TABLES or keyword in _HINTS_NAMING_INDEXES) and (
                i < len(scanned) and _is_hint_name(scanned[i], keyword)
            ):
                if scanned[i].token_type == TokenType.STAR:  # every index of the FROM table
                    start, i = i, i + 1
                else:
                    start, i = i, self._after_dotted_name(i + 1, star=True)
                names.append(self.sql[scanned[start].start : scanned[i - 1].end + 1])
                # `%IGNOREINDEX a, b Table`: a comma continues the list of indexes
                if keyword in _HINTS_NAMING_TABLES or self._type_at(i) != TokenType.COMMA:
                    break
                i += 1
            texts.append(f"{keyword} {', '.join(names)}" if names else keyword)
        owner = self._owning_select()
        if owner is None:
            # hints after the FROM of a DELETE: not IRIS, so the parser must reject them
            self.out.append(_token(TokenType.UNKNOWN, texts[0], scanned[i - 1]))
            return i
        self.hints.setdefault(owner, []).extend(texts)
        return i

    def _class_type(self, i: int) -> int:
        # `Name %Library.String(MAXLEN=50)`: a class name as a column type, one word
        scanned = self.tokens
        end = self._after_dotted_name(i + 2)
        if self._type_at(end) == TokenType.L_PAREN:
            end = self._after_parens(end)
        last = scanned[end - 1]
        self.out.append(
            _token(TokenType.VAR, self.sql[scanned[i].start : last.end + 1], scanned[i], last)
        )
        return end

    def _parenthesize_operand(self, i: int) -> int:
        # `%SQLUPPER e.Name` means `%SQLUPPER(e.Name)`
        scanned = self.tokens
        if i >= len(scanned):
            return i
        end = self._after_dotted_name(i + 1) if _is_word(scanned[i]) else i + 1
        self.out.append(_token(TokenType.L_PAREN, "(", scanned[i], synthetic=True))
        self.out.extend(scanned[i:end])
        self.out.append(_token(TokenType.R_PAREN, ")", scanned[end - 1], synthetic=True))
        return end

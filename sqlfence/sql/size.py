"""How much work a text would be to judge, counted before any parsing.

Tokenizing and parsing cost time and memory in proportion to a statement's tokens (a 10 MB
IN-list takes minutes and gigabytes), so a text over the token budget is refused first.
``token_count`` counts words, numbers, quoted strings and symbols with one regular
expression, stopping as soon as the budget is passed: its cost is bounded by the budget,
not by the text.
"""

from __future__ import annotations

import itertools
import re

# A word, a number, a quoted string or name (doubled quotes inside), or any other symbol.
# The quoted forms are unrolled ([^']* runs, then '' pairs): one step per run, not one
# alternation per character, so a 60 MB literal is counted in a fraction of a second.
_LEXEME = re.compile(r"\w+|'[^']*(?:''[^']*)*'|\"[^\"]*(?:\"\"[^\"]*)*\"|\S")


def token_count(sql: str, budget: int) -> int:
    """The tokens of ``sql``, counted up to ``budget + 1`` (more is not needed to refuse).

    A long token (a string, a quoted name) costs as its length does: one more per
    ``_LONG_TOKEN`` characters, so a 50 MB literal is over the budget too.
    """
    count = 0
    for match in itertools.islice(_LEXEME.finditer(sql), budget + 1):
        count += 1 + (match.end() - match.start()) // _LONG_TOKEN
        if count > budget:
            break
    return count


_LONG_TOKEN = 1024

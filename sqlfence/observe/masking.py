"""Literal masking of SQL text: every string, number, hex, boolean and dollar-quoted literal
becomes ``?``, as the OpenTelemetry conventions ask of non-parameterised query text.

It is a tokenizer-level pass (no parse): identifiers in double quotes or brackets and
comments are kept, quotes inside them do not confuse it. Results are cached by text,
so a statement seen before costs a dictionary lookup.
"""

from __future__ import annotations

import re

_TOKENS = re.compile(
    r"""
      (?P<keep>"(?:[^"]|"")*"|`[^`]*`|\[[^\]]*\]|--[^\n]*|/\*.*?\*/)
    | (?P<string>(?<!\w)[Ee]'(?:[^'\\]|''|\\.)*'
        |(?:(?<!\w)[Nn])?'(?:[^']|'')*'
        |(?<!\w)[XxBb]'[^']*'
        |\$(?P<tag>[A-Za-z_]\w*)?\$.*?\$(?P=tag)?\$)
    | (?P<hex>\b0[xX][0-9A-Fa-f]+\b)
    | (?P<number>(?<![\w.$])(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?(?![\w$]))
    | (?P<boolean>\b(?:TRUE|FALSE|true|false|True|False)\b)
    """,
    re.VERBOSE | re.DOTALL,
)
_CACHE_LIMIT = 4096
_cache: dict[str, str] = {}


def _replace(match: re.Match[str]) -> str:
    return match.group(0) if match.lastgroup == "keep" else "?"


def _mask_uncached(sql: str) -> str:
    return _TOKENS.sub(_replace, sql)


def mask_literals(sql: str) -> str:
    """``sql`` with every literal replaced by ``?``. Thread-safe; cached by text."""
    masked = _cache.get(sql)
    if masked is None:
        masked = _mask_uncached(sql)
        if len(_cache) >= _CACHE_LIMIT:
            _cache.clear()  # cheaper than LRU bookkeeping; agents repeat a few statements
        _cache[sql] = masked
    return masked

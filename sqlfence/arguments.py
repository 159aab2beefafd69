"""Argument types the command lines share: ``sqlfence``'s own parser and ``sqlfence mcp``'s.

Each turns one argument's text into its value or raises ``argparse.ArgumentTypeError``, which
argparse reports as a usage error (exit status 2) naming the option.
"""

from __future__ import annotations

import argparse
import re

_CLAIM_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


def positive_float(text: str) -> float:
    """An argument that must be a number above zero."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, not {text}")
    return value


def positive_int(text: str) -> int:
    """An argument that must be a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {text}")
    return value


def claim(text: str) -> tuple[str, str | int]:
    """``name=value``: a claim a row filter's ``:claims.<name>`` takes (a whole number stays
    one, anything else is text)."""
    name, equals, value = text.partition("=")
    if not equals or not _CLAIM_NAME.fullmatch(name):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not name=value (a name of letters, digits and _)"
        )
    return name, int(value) if value.isdigit() and value.isascii() else value

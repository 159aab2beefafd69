"""The argument types both command lines share (sqlfence/arguments.py): what each accepts, and
the usage error naming what was wrong with the rest."""

from __future__ import annotations

import argparse
from collections.abc import Callable

import pytest

from sqlfence.arguments import claim, positive_float, positive_int

# (type, text, its value, or None when refused, and then the message's words)
CASES: list[tuple[Callable[[str], float], str, float | None, str]] = [
    (positive_int, "1", 1, ""),
    (positive_int, " 200 ", 200, ""),
    (positive_int, "0", None, "must be at least 1, not 0"),
    (positive_int, "-3", None, "must be at least 1, not -3"),
    (positive_int, "2.5", None, "'2.5' is not a whole number"),
    (positive_int, "many", None, "'many' is not a whole number"),
    (positive_float, "0.5", 0.5, ""),
    (positive_float, "120", 120.0, ""),
    (positive_float, "0", None, "must be more than 0, not 0"),
    (positive_float, "nan", None, "must be more than 0, not nan"),
    (positive_float, "soon", None, "'soon' is not a number"),
]


@pytest.mark.parametrize(
    ("kind", "text", "value", "message"),
    CASES,
    ids=[f"{kind.__name__}-{text.strip()}" for kind, text, _, _ in CASES],
)
def test_each_argument_type_accepts_or_names_the_problem(
    kind: Callable[[str], float], text: str, value: float | None, message: str
) -> None:
    """A good argument becomes its value; a bad one is an ArgumentTypeError saying why."""
    if value is not None:
        assert kind(text) == value
        return
    with pytest.raises(argparse.ArgumentTypeError) as raised:
        kind(text)
    assert str(raised.value) == message


@pytest.mark.parametrize(
    ("text", "value"),
    [("region=eu", ("region", "eu")), ("level=3", ("level", 3)), ("a_1=x=y", ("a_1", "x=y"))],
)
def test_a_claim_is_a_name_and_a_value(text: str, value: tuple[str, str | int]) -> None:
    assert claim(text) == value


@pytest.mark.parametrize("text", ["region", "=eu", "bad name=x", "1st=x"])
def test_a_claim_without_a_name_is_refused(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="is not name=value"):
        claim(text)


def test_both_command_lines_use_the_same_types() -> None:
    """sqlfence's parser and sqlfence mcp's take their number types from here."""
    from sqlfence.cli import parser
    from sqlfence.integrations import mcp_serve

    # vars(): the modules import these names to use them, not to export them
    assert vars(parser)["positive_int"] is vars(mcp_serve)["positive_int"] is positive_int
    assert vars(parser)["positive_float"] is positive_float

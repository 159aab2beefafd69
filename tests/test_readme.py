"""The README stays true to the code."""

from __future__ import annotations

from pathlib import Path

from sqlfence.policies.reference import markdown_table

README = (Path(__file__).parent.parent / "README.md").read_text()


def test_policy_reference_is_generated_from_the_model() -> None:
    """The README's policy key table is exactly what the model says."""
    assert markdown_table() in README

"""The README stays true to the code."""

from __future__ import annotations

from pathlib import Path

from sqlfence.policies.reference import markdown_table

README = (Path(__file__).parent.parent / "README.md").read_text()


def test_policy_reference_is_generated_from_the_model() -> None:
    """The README's policy key table is exactly what the model says."""
    assert markdown_table() in README


def test_quickstart_guard_example_is_true() -> None:
    """The Guard example prints what the README says, with the repository's example policy."""
    import sqlfence

    root = Path(__file__).parent.parent
    guard = sqlfence.Guard(str(root / "policies" / "analyst.yaml"), dialect="postgres")
    explained = guard.decide("WITH d AS (DELETE FROM orders RETURNING *) SELECT * FROM d").explain()
    assert f"decision.explain()      # '{explained}'" in README

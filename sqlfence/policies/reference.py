"""The policy key reference as Markdown, generated from the model so the README cannot drift."""

from __future__ import annotations

import json

from sqlfence.policies.model import Policy


def markdown_table() -> str:
    """One row per policy key: name, default, meaning."""
    rows = ["| key | default | meaning |", "| --- | --- | --- |"]
    for name, field in Policy.model_fields.items():
        default = field.get_default(call_default_factory=True)
        shown = json.dumps(list(default) if isinstance(default, tuple) else default)
        rows.append(f"| `{name}` | `{shown}` | {field.description or ''} |")
    return "\n".join(rows)

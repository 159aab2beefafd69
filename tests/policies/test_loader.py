"""Loading policies: YAML, mappings, sections, aliases and errors at file:line."""

from __future__ import annotations

from pathlib import Path

import pytest

import sqlfence
from sqlfence import Policy, PolicyError, load_policy

FILES = Path(__file__).parent / "files"


def test_flat_mapping_is_the_default_section() -> None:
    """A mapping of policy keys is the default policy."""
    policy = load_policy({"read_only": False, "max_rows": 7}).resolve()
    assert policy.read_only is False
    assert policy.max_rows == 7


def test_design_report_aliases() -> None:
    """deny_tables and max_row_limit (the design report's names) work as aliases."""
    policy = load_policy({"deny_tables": ["Secrets"], "max_row_limit": 1000}).resolve()
    assert policy.denied_tables == ("Secrets",)
    assert policy.max_rows == 1000


@pytest.mark.parametrize(
    ("text", "said"),
    [
        (
            "denied_tables: [a]\ndeny_tables: [b]\n",
            "'deny_tables' is another name for 'denied_tables'",
        ),
        ("max_rows: 5\nmax_row_limit: 6\n", "'max_row_limit' is another name for 'max_rows'"),
    ],
)
def test_an_alias_beside_its_key_is_named(text: str, said: str) -> None:
    """Giving a key and its alias together says so (not "did you mean" the key itself)."""
    with pytest.raises(PolicyError, match=said):
        load_policy(text)


def test_sections_resolve_per_agent_and_tenant() -> None:
    """default, then tenant, then agent, then the tenant's agent: later wins key by key."""
    policies = load_policy(FILES / "analyst.yaml")
    assert policies.resolve().max_rows == 100
    assert policies.resolve(tenant="acme").max_rows == 10
    assert policies.resolve(agent_id="bot-7", tenant="acme").max_rows == 5
    assert policies.resolve(agent_id="bot-7").max_rows == 100
    loader = policies.resolve(agent_id="loader")
    assert loader.read_only is False
    assert loader.denied_tables == ("secrets", "audit.*")


def test_origins_name_file_and_line() -> None:
    """Each key remembers where it was written, for denial messages."""
    policy = load_policy(FILES / "analyst.yaml").resolve(agent_id="bot-7", tenant="acme")
    assert policy.origin("denied_tables") == "analyst.yaml:4"
    assert policy.origin("max_rows") == "analyst.yaml:14"


def test_misspelt_key_names_file_and_line() -> None:
    """An unknown key is an error naming the file, the line and the key."""
    with pytest.raises(PolicyError, match=r"misspelt.yaml:3: denied_tabels: unknown key"):
        load_policy(FILES / "misspelt.yaml")


def test_bad_value_in_a_section_fails_on_load() -> None:
    """A section is validated when the file loads, not when the tenant first connects."""
    with pytest.raises(PolicyError, match=r"bad_value.yaml:5: max_rows"):
        load_policy(FILES / "bad_value.yaml")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("read_only: [unclosed", "invalid YAML"),
        ("- a\n- b\n", "must be a mapping"),
        ("read_only: true\nread_only: false\n", "duplicate key 'read_only'"),
        ("default: {}\nextra: 1\n", "unknown key 'extra' beside default"),
        ("statements: [select, nuke]\n", "unknown statement kind 'nuke'"),
        ("mode: loud\n", "mode"),
    ],
)
def test_malformed_text(text: str, message: str) -> None:
    """Malformed YAML text is a PolicyError with a readable message."""
    with pytest.raises(PolicyError, match=message):
        load_policy(text)


def test_missing_file() -> None:
    """A policy path that does not exist says so."""
    with pytest.raises(PolicyError, match="does not exist"):
        load_policy("no/such/policy.yaml")


def test_policy_is_immutable() -> None:
    """A Policy cannot be changed after validation."""
    policy = Policy()
    with pytest.raises(Exception, match="frozen"):
        policy.read_only = False  # type: ignore[misc]


def test_safe_default_and_unrestricted() -> None:
    """No policy is read-only with 1,000 rows; unrestricted must be asked for."""
    default = Policy()
    assert default.read_only
    assert default.max_rows == 1000
    assert default.builtin_denied_functions
    open_policy = Policy.unrestricted()
    assert not open_policy.read_only
    assert open_policy.max_rows is None


def test_connect_without_policy_warns(tmp_path: Path) -> None:
    """connect() without a policy works, read-only, and says so with a warning."""
    with pytest.warns(sqlfence.DefaultPolicyWarning):
        conn = sqlfence.connect(f"sqlite:///{tmp_path / 'w.db'}?mode=rwc")
    with pytest.raises(sqlfence.PolicyViolation):
        conn.execute("CREATE TABLE t (a)")
    conn.close()


def test_json_schema_covers_every_key() -> None:
    """The JSON Schema names every policy key and forbids unknown ones."""
    schema = Policy.json_schema()
    properties = schema["$defs"]["Policy"]["properties"]
    assert set(Policy.model_fields) <= set(properties)
    assert schema["$defs"]["Policy"]["additionalProperties"] is False


def test_every_section_problem_is_reported() -> None:
    """Problems in several sections are all reported, each at its file and line."""
    text = "default:\n  deny_table: [x]\nagents:\n  loader:\n    readonly: false\n"
    with pytest.raises(PolicyError) as caught:
        load_policy(text)
    message = str(caught.value)
    assert "<policy text>:2: deny_table: unknown key 'deny_table' (did you mean" in message
    assert (
        "<policy text>:5: readonly: unknown key 'readonly' (did you mean 'read_only'?)" in message
    )

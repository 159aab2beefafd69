"""Server addresses without passwords (cases in data/credentials.yaml), and finding them again."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import pytest
import yaml

from sqlfence.errors import ConfigurationError
from sqlfence.sandbox import CredentialsMissing, Owner, Record
from sqlfence.sandbox import credentials as creds

CASES = yaml.safe_load((Path(__file__).parent / "data" / "credentials.yaml").read_text())
URLS_WITH_PASSWORDS = [c for c in CASES if c["password"] is not None and "://" in c["url"]]
ADDRESS = "postgresql://admin@db.example:5432/postgres"


@pytest.mark.parametrize("case", CASES, ids=[c["url"] for c in CASES])
def test_split(case: dict[str, Any]) -> None:
    """The password leaves the URL, wherever it was written; everything else stays."""
    assert creds.split(case["url"]) == (case["address"], case["password"])


@pytest.mark.parametrize("case", URLS_WITH_PASSWORDS, ids=[c["url"] for c in URLS_WITH_PASSWORDS])
def test_with_password_puts_it_back(case: dict[str, Any]) -> None:
    """A URL's address with its password put back names the same server and password."""
    rebuilt = creds.with_password(case["address"], case["password"])
    assert creds.split(rebuilt) == (case["address"], case["password"])


def test_a_record_never_holds_a_password() -> None:
    """A Record made with an admin URL keeps only the server's address."""
    record = Record("AGENT_x", "postgres", "x", None, Owner.detached(), 0.0, None, "",
                    server="postgresql://admin:s3cret@db.example:5432/postgres")  # fmt: skip
    assert record.server == ADDRESS


def test_a_url_with_its_password_is_used_as_given() -> None:
    """The creating process's own admin URL needs no looking up."""
    url = "postgresql://admin:mine@db.example:5432/postgres"
    assert creds.admin_url("postgres", url, ["postgresql://admin:other@db.example/postgres"]) == url


@pytest.mark.parametrize(
    "given",
    [
        "postgresql://admin:s3cret@db.example:5432/postgres",
        "postgres://admin:s3cret@DB.example/other_database",  # same server, default port
        [
            "postgresql://admin:wrong@elsewhere/postgres",
            "postgresql://admin@db.example/postgres",
            "postgresql://admin@db.example/x?password=s3cret",
        ],
    ],
)
def test_given_credentials_are_matched_by_server_and_user(given: Any) -> None:
    """A passed admin URL of the same scheme, host, port and user gives the password."""
    assert creds.admin_url("postgres", ADDRESS, given) == (
        "postgresql://admin:s3cret@db.example:5432/postgres"
    )


@pytest.mark.parametrize(
    "given",
    [
        "postgresql://other:s3cret@db.example:5432/postgres",
        "postgresql://admin:s3cret@db.example:6543/postgres",
        "postgresql://admin:s3cret@elsewhere:5432/postgres",
    ],
)
def test_credentials_of_another_server_or_user_are_not_used(given: str) -> None:
    """PostgreSQL then gets the bare address: libpq looks for the password itself."""
    assert creds.admin_url("postgres", ADDRESS, given) == ADDRESS


@pytest.mark.parametrize(
    "given",
    [
        "iris://_SYSTEM:s3cret@h/%SYS",  # the default port
        "intersystems://_system:s3cret@H:1972/USER",  # another scheme of IRIS; users ignore case
    ],
)
def test_iris_credentials_match_by_the_profile(given: str) -> None:
    """IRIS servers match by any of its URL schemes, its default port and case-blind users."""
    assert creds.admin_url("iris", "iris://_SYSTEM@h:1972/%SYS", given) == (
        "iris://_SYSTEM:s3cret@h:1972/%SYS"
    )


def test_iris_password_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """IRIS's driver reads no environment: sqlfence reads SQLFENCE_IRIS_PASSWORD for it."""
    monkeypatch.setenv(creds.IRIS_PASSWORD_ENV, "p@ss")
    assert creds.admin_url("iris", "iris://_SYSTEM@h:1972/%SYS") == (
        "iris://_SYSTEM:p%40ss@h:1972/%SYS"
    )


def test_iris_without_a_password_says_how_to_give_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """No password anywhere: an error naming the server and the ways to give it."""
    monkeypatch.delenv(creds.IRIS_PASSWORD_ENV, raising=False)
    with pytest.raises(CredentialsMissing) as caught:
        creds.admin_url("iris", "iris://_SYSTEM@h:1972/%SYS")
    message = str(caught.value)
    assert "iris://_SYSTEM@h:1972/%SYS" in message
    assert creds.IRIS_PASSWORD_ENV in message
    assert "credentials=" in message
    assert caught.value.servers == ("iris://_SYSTEM@h:1972/%SYS",)


def test_missing_credentials_error_names_libpq_sources_and_no_secret() -> None:
    """The PostgreSQL error lists PGPASSWORD, password and service files; shows no password."""
    error = creds.missing("postgres", "postgresql://admin:s3cret@h:5432/postgres")
    message = str(error)
    for source in ("PGPASSWORD", "PGPASSFILE", "~/.pgpass", "PGSERVICE", "credentials="):
        assert source in message
    assert "s3cret" not in message
    assert isinstance(error, ConfigurationError)


def test_missing_credentials_pickles_with_its_fields() -> None:
    """The error crosses process boundaries with its servers and removed names."""
    error = CredentialsMissing("no password", servers=("postgresql://a@h/db",), removed=["X"])
    copy = pickle.loads(pickle.dumps(error))
    assert (str(copy), copy.servers, copy.removed) == ("no password", error.servers, ["X"])

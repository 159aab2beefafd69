"""The sqlfence+sqlite:// and sqlfence+postgresql:// SQLAlchemy dialects, on real databases."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

import sqlfence
from sqlfence import ConfigurationError, PolicyViolation
from sqlfence.integrations import sqlalchemy as fenced
from sqlfence.observe.observer import Observer
from sqlfence.observe.observer import Session as ObservedSession

# The lead registers these as entry points; registering in-process keeps the tests
# independent of how the package was installed.
fenced.register()

WRITER = {
    "read_only": False,
    "statements": ["select", "insert", "update", "delete", "create"],
    "denied_tables": ["secrets"],
    "denied_columns": ["staff.salary"],
}


class Base(DeclarativeBase):
    """Declarative base of the test models."""


class Person(Base):
    """A table the policy allows."""

    __tablename__ = "people"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str]


STAFF = sa.Table(
    "staff",
    Base.metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(40)),
    sa.Column("salary", sa.Integer),
)


class Secret(Base):
    """A table on the policy's deny list."""

    __tablename__ = "secrets"
    id: Mapped[int] = mapped_column(primary_key=True)
    value: Mapped[str]


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sa.Engine]:
    """An engine through the fence on a real database holding ``people`` and ``secrets``."""
    if request.param == "sqlite":
        path = tmp_path / "orm.db"
        setup = sa.create_engine(f"sqlite:///{path}")
        url = f"sqlfence+sqlite:///{path}"
    else:
        pg_url = request.getfixturevalue("pg_url")
        setup = sa.create_engine(pg_url.replace("postgresql://", "postgresql+psycopg://", 1))
        url = pg_url.replace("postgresql://", "sqlfence+postgresql://", 1)
    Base.metadata.create_all(setup)
    secrets = Secret.__table__
    assert isinstance(secrets, sa.Table)  # typed FromClause: a declarative class maps a Table
    with setup.begin() as connection:
        connection.execute(sa.insert(secrets), [{"id": 1, "value": "s3cr3t"}])
    setup.dispose()
    engine = sa.create_engine(
        url, connect_args={"policy": WRITER, "agent_id": "orm-agent", "audit": str(tmp_path)}
    )
    yield engine
    engine.dispose()


def test_orm_round_trip(engine: sa.Engine) -> None:
    """An ORM object written through the fence reads back equal in a new session."""
    with Session(engine) as session:
        session.add(Person(name="Ada"))
        session.commit()
    with Session(engine) as session:
        person = session.scalars(sa.select(Person).where(Person.name == "Ada")).one()
        assert (person.id, person.name) == (1, "Ada")


def test_core_select(engine: sa.Engine) -> None:
    """A Core select runs through the fence and returns the driver's rows."""
    table = Person.__table__
    assert isinstance(table, sa.Table)  # typed FromClause: a declarative class maps a Table
    with engine.begin() as connection:
        connection.execute(sa.insert(table), [{"name": "Ada"}, {"name": "Grace"}])
    with engine.connect() as connection:
        rows = connection.execute(sa.select(table.c.name).order_by(table.c.name)).all()
    assert [row.name for row in rows] == ["Ada", "Grace"]


def test_denied_orm_query_raises_programming_error(engine: sa.Engine) -> None:
    """A denied ORM query is a sqlalchemy ProgrammingError whose orig is the PolicyViolation."""
    with Session(engine) as session, pytest.raises(sa.exc.ProgrammingError) as caught:
        session.scalars(sa.select(Secret)).all()
    violation = caught.value.orig
    assert isinstance(violation, PolicyViolation)
    assert violation.decision is not None
    assert [reason.rule for reason in violation.decision.reasons] == ["denied_tables"]


def test_denied_text_statement(engine: sa.Engine) -> None:
    """The application's own SQL cannot skip the fence: a DROP is denied."""
    with engine.connect() as connection, pytest.raises(sa.exc.ProgrammingError) as caught:
        connection.execute(sa.text("DROP TABLE people"))
    assert isinstance(caught.value.orig, PolicyViolation)


def _capped(tmp_path: Path, **policy: object) -> sa.Engine:
    engine = sa.create_engine(
        f"sqlfence+sqlite:///{tmp_path / 'cap.db'}",
        connect_args={"policy": {"max_rows": 2, "read_only": False, "statements": ["*"], **policy}},
    )
    with engine.begin() as connection:
        connection.execute(sa.text("CREATE TABLE IF NOT EXISTS n (i INTEGER)"))
        connection.execute(sa.text("DELETE FROM n"))
        connection.execute(sa.text("INSERT INTO n VALUES (1), (2), (3)"))
    return engine


def test_a_cut_result_raises_by_default(tmp_path: Path) -> None:
    """An ORM cannot see a cut result: past max_rows the dialect raises RowLimitExceeded
    unless the policy says on_row_limit: truncate; a result within the cap is untouched."""
    engine = _capped(tmp_path)
    with engine.connect() as connection, pytest.raises(sa.exc.DBAPIError) as caught:
        connection.execute(sa.text("SELECT i FROM n")).all()
    assert isinstance(caught.value.orig, sqlfence.RowLimitExceeded)
    with engine.connect() as connection:
        assert len(connection.execute(sa.text("SELECT i FROM n WHERE i < 3")).all()) == 2
    engine.dispose()


def test_a_truncating_policy_cuts(tmp_path: Path) -> None:
    """With on_row_limit: truncate the cap cuts the rows, as for any fence connection."""
    engine = _capped(tmp_path, on_row_limit="truncate")
    with engine.connect() as connection:
        assert len(connection.execute(sa.text("SELECT i FROM n")).all()) == 2
    engine.dispose()


def test_reflection_shows_only_what_the_policy_allows(engine: sa.Engine) -> None:
    """The Inspector sees allowed tables only, and not their denied columns."""
    inspector = sa.inspect(engine)
    assert inspector.get_table_names() == ["people", "staff"]
    assert not inspector.has_table("secrets")
    assert [c["name"] for c in inspector.get_columns("staff")] == ["id", "name"]
    with pytest.raises(sa.exc.NoSuchTableError):
        inspector.get_columns("secrets")


def test_metadata_reflect_skips_hidden_tables(engine: sa.Engine) -> None:
    """MetaData.reflect() builds only the tables the policy lets the agent read."""
    metadata = sa.MetaData()
    metadata.reflect(engine)
    assert sorted(metadata.tables) == ["people", "staff"]
    assert list(metadata.tables["staff"].c.keys()) == ["id", "name"]


def test_agent_sql_cannot_read_the_catalog_under_an_allow_list(tmp_path: Path) -> None:
    """With allowed_tables, the agent's own catalog read is denied while reflection works."""
    path = tmp_path / "allow.db"
    setup = sa.create_engine(f"sqlite:///{path}")
    Base.metadata.create_all(setup)
    setup.dispose()
    engine = sa.create_engine(
        f"sqlfence+sqlite:///{path}", connect_args={"policy": {"allowed_tables": ["people"]}}
    )
    assert sa.inspect(engine).get_table_names() == ["people"]
    with engine.connect() as connection, pytest.raises(sa.exc.ProgrammingError):
        connection.execute(sa.text("SELECT name FROM sqlite_master"))
    engine.dispose()


def test_fence_options_from_url_query(tmp_path: Path) -> None:
    """policy (a file path) and agent_id can be given as URL query parameters."""
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps({"denied_tables": ["secrets"]}))
    path = tmp_path / "query.db"
    setup = sa.create_engine(f"sqlite:///{path}")
    Base.metadata.create_all(setup)
    setup.dispose()
    engine = sa.create_engine(f"sqlfence+sqlite:///{path}?policy={policy}&agent_id=q-agent")
    with engine.connect() as connection:
        assert connection.execute(sa.select(Person.__table__)).all() == []
        fence = connection.connection.dbapi_connection
        assert isinstance(fence, fenced.FencedConnection)
        assert fence.guarded.agent_id == "q-agent"
        with pytest.raises(sa.exc.ProgrammingError):
            connection.execute(sa.select(Secret.__table__))
    engine.dispose()


class Recorder(Observer):
    """An observer of the caller's own: it keeps the SQL it was told ran."""

    def __init__(self) -> None:
        self.statements: list[str] = []

    def started(self, session: ObservedSession, sql: str, decision: Any, params: Any) -> object:
        self.statements.append(sql)
        return None


def test_every_fence_option_of_wrap_comes_from_connect_args(tmp_path: Path) -> None:
    """Each of wrap()'s fence options (FENCE_OPTIONS) in connect_args reaches the fence, not
    the driver: here observer=, the caller's own."""
    observer = Recorder()
    engine = sa.create_engine(
        f"sqlfence+sqlite:///{tmp_path / 'observed.db'}",
        connect_args={"policy": {"read_only": True}, "observer": observer, "telemetry": False},
    )
    with engine.connect() as connection:
        connection.execute(sa.text("SELECT 1"))
        fence = connection.connection.dbapi_connection
        assert isinstance(fence, fenced.FencedConnection)
        assert fence.guarded._observer is observer
    engine.dispose()
    assert "SELECT 1" in observer.statements


def test_a_query_parameter_of_the_wrong_shape_names_its_option(tmp_path: Path) -> None:
    """A URL query value is text: an option that takes no text says so, naming itself (it
    is not handed to the driver, which would ignore it)."""
    engine = sa.create_engine(
        f"sqlfence+sqlite:///{tmp_path / 'q.db'}?telemetry=false",
        connect_args={"policy": {"read_only": True}},
    )
    with pytest.raises(TypeError, match=r"telemetry= takes .*, not str 'false'"):
        engine.connect()
    engine.dispose()


def test_iris_dialect_names_the_missing_extra() -> None:
    """Without sqlalchemy-iris, sqlfence+iris:// fails with an error naming the extra."""
    try:
        import sqlalchemy_iris  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("sqlalchemy-iris is installed")
    with pytest.raises(ConfigurationError, match=f"sqlfence\\[{fenced.IRIS_EXTRA}\\]"):
        sa.create_engine("sqlfence+iris://u:p@localhost:1972/USER")

"""``connect(url, ...)`` and ``wrap(connection, ...)``: the two ways into the fence."""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from sqlfence import databases
from sqlfence.errors import ConfigurationError, DefaultPolicyWarning, PrivilegeWarning
from sqlfence.observe.observer import Observer, Session
from sqlfence.observe.settings import AuditOption, MonitoringOption, TelemetryOption
from sqlfence.policies.engine import Guard
from sqlfence.policies.loader import PolicySource
from sqlfence.proxy import drivers
from sqlfence.proxy.connection import GuardedConnection
from sqlfence.proxy.options import CONNECT_OPTIONS, FenceOptions

DEFAULT_POLICY_WARNING = (
    "sqlfence: no policy given, using the safe default (read-only, at most 1,000 rows, "
    "built-in function deny list); pass policy=... or policy=sqlfence.Policy.unrestricted()"
)


def connect(
    url: str,
    *,
    policy: PolicySource = None,
    agent_id: str | None = None,
    tenant: str | None = None,
    claims: Mapping[str, str | int] | None = None,
    audit: AuditOption = None,
    monitoring: MonitoringOption = None,
    telemetry: TelemetryOption = True,
    observer: Observer | None = None,
    catalog: Mapping[str, str] | None = None,
    sandbox: str | None = None,
    client_name: str | None = None,
    **driver_kwargs: Any,
) -> GuardedConnection:
    """Open a guarded connection to ``url`` (sqlite://, postgresql://, iris://).

    The fence's options are ``FenceOptions``'s (``sqlfence.proxy.options``): ``policy`` is a
    YAML path, YAML text, a mapping, a ``Policy`` or a ``PolicySet``; without one the
    connection is read-only with a 1,000-row limit (and a warning says so). ``audit`` and
    ``monitoring`` switch on the audit log and live metrics/alerts; ``telemetry`` (True by
    default) takes False, a dict or ``TelemetrySettings`` (its own providers, say); what
    each takes is declared in ``sqlfence.observe.settings``. Remaining keyword arguments go
    to the driver's own ``connect``. ``sandbox`` names the sandbox the connection belongs
    to, for the correlation fields of its events; ``client_name`` is the name a client gave
    for itself (recorded, never used to choose a policy). Raises ConfigurationError for an
    unknown scheme, a missing driver or invalid audit, monitoring or telemetry settings
    (TypeError for a shape one does not take), PolicyError for a malformed policy, and the
    driver's connection errors as sqlfence.OperationalError.
    """
    options = FenceOptions(
        policy=policy,
        agent_id=agent_id,
        tenant=tenant,
        claims=claims,
        audit=audit,
        monitoring=monitoring,
        telemetry=telemetry,
        observer=observer,
        catalog=catalog,
    ).resolved()
    parsed = drivers.ConnectionURL.parse(url)
    driver = drivers.for_url(parsed)
    guard = _guard(options, driver)
    try:
        raw = driver.connect(parsed, guard, dict(driver_kwargs))
    except driver.error_class as error:
        raise driver.translate(error) from error
    except TypeError as error:  # a keyword the driver does not take
        known = ", ".join(CONNECT_OPTIONS)
        raise ConfigurationError(
            f"{error} (sqlfence's own options are: {known}; the rest go to the driver)"
        ) from None
    try:
        base, guard = guard, _learn_schema(driver, raw, guard, catalog)
        _refuse_unfilterable(driver, raw, guard)
        before = driver.harden(raw, guard, opened=True)
        privileges = _check_privileges(driver, raw, guard)
    except BaseException:
        raw.close()
        raise
    session = _session(driver.session(parsed, raw), agent_id, tenant, sandbox, privileges)
    if client_name is not None:
        session = replace(session, client_name=client_name)
    try:
        chosen, owned = _observer(options)
    except BaseException:
        raw.close()
        raise
    relearn = _relearning(driver, raw, base, guard, catalog)
    try:
        return GuardedConnection(
            raw, driver, guard, chosen, session, before, owns_observer=owned, relearn=relearn
        )
    except BaseException:  # the connection could not be recorded (an audit log failing closed)
        raw.close()
        if owned:
            chosen.close()
        raise


def wrap(
    connection: Any,
    *,
    dialect: str | None = None,
    policy: PolicySource = None,
    agent_id: str | None = None,
    tenant: str | None = None,
    claims: Mapping[str, str | int] | None = None,
    audit: AuditOption = None,
    monitoring: MonitoringOption = None,
    telemetry: TelemetryOption = True,
    observer: Observer | None = None,
    catalog: Mapping[str, str] | None = None,
    module: Any = None,
) -> GuardedConnection:
    """Put an existing DBAPI connection behind the fence.

    ``dialect`` names the SQL dialect (``sqlite``, ``postgres``, ``iris`` or any sqlglot
    dialect); without it, a sqlite3, psycopg or IRIS connection is recognised by its class.
    ``module`` is the connection's DBAPI module when it is not one sqlfence knows. The
    caller's own statements on ``connection`` are its own: only what goes through the fence
    is judged (the SQLite authorizer leaves the rest alone), though a read-only policy makes
    the session itself read-only (``PRAGMA query_only``, ``default_transaction_read_only``).
    The fence's options are ``connect()``'s and raise as there.
    """
    options = FenceOptions(
        policy=policy,
        agent_id=agent_id,
        tenant=tenant,
        claims=claims,
        audit=audit,
        monitoring=monitoring,
        telemetry=telemetry,
        observer=observer,
        catalog=catalog,
    ).resolved()
    if dialect is None:
        dialect = _recognised_dialect(connection)
    driver = drivers.for_dialect(dialect)
    if module is None and not driver.module_name:
        module = importlib.import_module(type(connection).__module__.split(".")[0])
    if module is not None:
        driver = _adopt(driver, module)
    base = _guard(options, driver)
    guard = _learn_schema(driver, connection, base, catalog)
    _refuse_unfilterable(driver, connection, guard)
    before = driver.harden(connection, guard, opened=False)
    privileges = _check_privileges(driver, connection, guard)
    session = _session(driver.session(None, connection), agent_id, tenant, None, privileges)
    chosen, owned = _observer(options)
    relearn = _relearning(driver, connection, base, guard, catalog)
    return GuardedConnection(
        connection, driver, guard, chosen, session, before, owns_observer=owned, relearn=relearn
    )


_DIALECTS_BY_MODULE = {
    package: database.dialect
    for database in databases.PROFILES
    for package in database.driver_packages
}


def _recognised_dialect(connection: Any) -> str:
    """The dialect of a connection of a driver sqlfence knows, from its class's module."""
    package = type(connection).__module__.split(".")[0]
    dialect = _DIALECTS_BY_MODULE.get(package)
    if dialect is None:
        raise ConfigurationError(
            f"cannot tell the SQL dialect of a {type(connection).__module__}."
            f"{type(connection).__name__} connection: pass dialect= (sqlite, postgres, iris "
            "or any sqlglot dialect)"
        )
    return dialect


def _guard(options: FenceOptions, driver: drivers.Driver) -> Guard:
    if options.policy is None:
        warnings.warn(DEFAULT_POLICY_WARNING, DefaultPolicyWarning, stacklevel=3)
    return Guard(
        options.policy,
        dialect=driver.dialect or "sqlite",
        default_schema=driver.default_schema,
        agent_id=options.agent_id,
        tenant=options.tenant,
        claims=options.claims,
        catalog=options.catalog,
    )


def _session(
    session: Session,
    agent_id: str | None,
    tenant: str | None,
    sandbox: str | None,
    privileges: tuple[str, ...] = (),
) -> Session:
    return replace(
        session, agent_id=agent_id, tenant=tenant, sandbox=sandbox, privileges=privileges
    )


def _check_privileges(driver: drivers.Driver, raw: Any, guard: Guard) -> tuple[str, ...]:
    """Warn about (or refuse) a login that can do more than SQL; returns what it can do."""
    privileges = driver.privileges(raw)
    if not privileges:
        return ()
    what = ", ".join(privileges)
    if guard.policy.privileged_sessions == "refuse":
        raise ConfigurationError(
            f"the database login has privileges beyond SQL ({what}) and the policy refuses "
            "such sessions (privileged_sessions: refuse); connect as a role without them"
        )
    warnings.warn(
        f"sqlfence: the database login has privileges beyond SQL ({what}); the fence judges "
        "SQL, but a role without them is the layer that holds if anything gets past it",
        PrivilegeWarning,
        stacklevel=3,
    )
    return privileges


def _refuse_unfilterable(driver: drivers.Driver, raw: Any, guard: Guard) -> None:
    """A row-filtered table whose definition replaces conflicting rows cannot be filtered:
    one tenant's INSERT or UPDATE would delete another's row. The connection is refused."""
    if not guard.policy.row_filters:
        return
    replacing = sorted(t for t in driver.replacing_tables(raw) if guard.row_filtered(t))
    if replacing:
        raise ConfigurationError(
            f"{', '.join(replacing)} declares ON CONFLICT REPLACE: a write by one tenant would "
            "delete another tenant's conflicting row, which no row filter can prevent; drop "
            "the clause or the table's row filter"
        )


def _relearning(
    driver: drivers.Driver, raw: Any, base: Guard, learnt: Guard, catalog: Mapping[str, str] | None
) -> Callable[[Any], Guard] | None:
    """Under row filters or masks, how the connection learns the catalog again when a
    statement names a relation it did not hold (a partition the owner added since: read
    unfiltered otherwise); the schema stays pinned where it was, the transaction as it is."""
    if not (base.policy.row_filters or base.policy.masked_columns):
        return None

    def relearn(hook: Any) -> Guard:
        with driver.reading_catalog(raw, hook):
            guard = _learn_schema(driver, raw, base, catalog, learnt.namer.default_schema)
        driver.adopt(hook, guard)
        return guard

    return relearn


def _learn_schema(
    driver: drivers.Driver,
    raw: Any,
    guard: Guard,
    catalog: Mapping[str, str] | None,
    pinned: str | None = None,
) -> Guard:
    """The guard learns what the database knows: the schema unqualified names live in (pinned
    there), and, where table, column or catalog rules need it, IRIS reference columns (for
    ``->``, unless a ``catalog`` was given), what each view, rule or parent table reads, the
    columns each view reads, each table's columns (for ``*`` under denied columns) and what
    its generated columns are computed from."""
    policy = guard.policy
    schema = driver.pin_schema(raw) if pinned is None else pinned
    moved = schema is not None and schema != guard.namer.default_schema
    if not (
        guard.policy_has_table_rules or policy.denied_columns or not policy.allow_system_catalog
    ):
        return guard.with_catalog(default_schema=schema) if moved else guard
    found = driver.load_catalog(raw) if catalog is None and guard.policy_has_table_rules else None
    views = driver.load_views(raw)
    masks = bool(policy.masked_columns)
    wanted = guard.patterns.denied_set.patterns or policy.row_filters or masks
    parts = driver.load_parts(raw) if wanted else {}
    columns = driver.load_view_columns(raw) if policy.denied_columns else {}
    # each table's columns: for ``*`` under denied columns, and for ``*.column`` row filters
    wildcard = any(key.startswith("*.") for key in policy.row_filters)
    # (and under row filters, for keys that miss a table only by letter case)
    wanted_tables = policy.denied_columns or wildcard or policy.row_filters
    tables = driver.load_table_columns(raw) if wanted_tables else {}
    rewrites = policy.denied_columns or policy.row_filters or masks
    generated = driver.load_generated_columns(raw) if rewrites else {}
    # masked tables list their columns; under row filters a ``*`` is counted for an order
    star = driver.load_star_columns(raw) if masks or policy.row_filters else {}
    references = driver.load_references(raw) if masks else {}
    placing = driver.load_placing_columns(raw) if masks else {}
    # the database's own code, and the paths into it: none runs under row filters or masks
    code = driver.load_server_code(raw, views) if masks or policy.row_filters else None
    if found or views or columns or moved or tables or generated or parts or star or code:
        return guard.with_catalog(
            found or None,
            views,
            columns,
            default_schema=schema,
            table_columns=tables,
            generated_columns=generated,
            parts=parts,
            star_columns=star,
            references=references,
            placing=placing,
            server_code=code,
        )
    return guard


def _observer(options: FenceOptions) -> tuple[Observer, bool]:
    """The caller's observer, or one built from the (resolved) options; True when the
    connection owns it."""
    if options.observer is not None:
        return options.observer, False
    from sqlfence.observe.fanout import build_observer

    return build_observer(options.audit, options.monitoring, options.telemetry), True


def _adopt(driver: drivers.Driver, module: Any) -> drivers.Driver:
    adopted = type(driver)()
    adopted.dialect = driver.dialect
    adopted.use_module(module)
    return adopted

"""Engines, sessions and the schema-revision guard.

SQLite is tuned for an embedded, mostly single-writer catalog: WAL so readers never block the
writer, a busy timeout so a second writer waits instead of failing at once, and foreign keys on
(SQLite leaves them off by default). Migrations run with foreign keys off, as alembic's batch mode
rebuilds tables by copy-and-rename.
"""

from __future__ import annotations

import math
import random
import sqlite3
import time
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, inspect, text
from sqlalchemy import Table
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.orm import Session

from warehouse.errors import ConfigError, SchemaOutOfDate

SQLITE_BUSY_TIMEOUT_MS = 30_000
# An ingest waits its turn for SQLite's one write lock for this long (many cluster jobs may end at
# once; each holds the lock for its whole transaction).
SQLITE_INGEST_BUSY_TIMEOUT_MS = 600_000
# Execution option that makes a SQLite transaction take the write lock at BEGIN (an ingest): a
# transaction that reads first and writes later fails at once ("database is locked", no wait) when
# another writer committed in between; one that starts with the lock only waits for it.
BEGIN_IMMEDIATE = "warehouse_begin_immediate"


def _sqlite_sqrt(x: float | None) -> float | None:
    if x is None or x < 0:
        return None
    return math.sqrt(x)


def _on_sqlite_connect(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
    # Let SQLAlchemy, not pysqlite, decide where transactions begin, so BEGIN is emitted
    # explicitly and a whole ingest is one transaction (the pysqlite docs' recipe).
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    _set_wal(cur)
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()
    # Some builds of SQLite lack the math functions that our views (and PostgreSQL) have.
    dbapi_conn.create_function("sqrt", 1, _sqlite_sqrt, deterministic=True)


def _set_wal(cur: sqlite3.Cursor) -> None:
    """Put the catalog in WAL mode (a no-op once it is: the mode is kept in the file).

    Switching a new file takes its write lock, and SQLite may answer "database is locked" at
    once, without waiting out the busy timeout, while another process is switching the same
    fresh file (several first uses at once). The switch is then tried again after a short
    random pause, until the busy timeout has passed."""
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cur.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(random.uniform(0.005, 0.05))


def _on_sqlite_begin(conn: Any) -> None:
    if conn.get_execution_options().get(BEGIN_IMMEDIATE):
        conn.exec_driver_sql(f"PRAGMA busy_timeout={SQLITE_INGEST_BUSY_TIMEOUT_MS}")
        try:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        finally:
            conn.exec_driver_sql(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        return
    conn.exec_driver_sql("BEGIN")


def _not_an_interrupt(record: Any) -> bool:
    exc = record.exc_info[1] if record.exc_info else None
    return type(exc).__name__ != "Interrupted"  # ingest.interrupts.Interrupted, not imported here


def _quiet_pool_on_interrupt(engine: Engine) -> Engine:
    """An interrupt (``ingest.interrupts.Interrupted``) that lands while the pool closes or
    resets a connection is logged by the pool with its traceback ("Exception closing connection
    ...") and then raised on: the raise is what the command reports, so that record is dropped."""
    logger = getattr(engine.pool.logger, "logger", engine.pool.logger)  # an echo_pool engine's own
    if _not_an_interrupt not in logger.filters:
        logger.addFilter(_not_an_interrupt)
    return engine


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine for ``url`` with the per-dialect settings above."""
    try:
        parsed = make_url(url)
    except Exception as exc:  # sqlalchemy raises ArgumentError for malformed URLs
        raise ConfigError(f"cannot parse database URL {url!r}: {exc}") from exc
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, **kwargs)
        event.listen(engine, "connect", _on_sqlite_connect)
        event.listen(engine, "begin", _on_sqlite_begin)
        return _quiet_pool_on_interrupt(engine)
    if parsed.get_backend_name() == "postgresql":
        return _quiet_pool_on_interrupt(create_engine(url, pool_pre_ping=True, **kwargs))
    return create_engine(url, **kwargs)


def insert_if_absent(conn: Connection | Session, table: Table) -> Any:
    """``INSERT ... ON CONFLICT DO NOTHING`` for ``conn``'s engine: the one place where a
    get-or-create's insert is written per dialect (both engines have the clause; SQLAlchemy
    has it in each dialect's own ``insert``). A row that a concurrent writer inserted meanwhile
    (committed, or committed while this statement waited for its lock) is left as it is and
    the caller reads it back: "already present", never an error."""
    name = conn.get_bind().dialect.name if isinstance(conn, Session) else conn.dialect.name
    return dialect_insert(name)(table).on_conflict_do_nothing()


def dialect_insert(name: str) -> Any:
    """The ``insert`` of dialect ``name``, the one with ``on_conflict_do_*`` (both engines have
    the clause; SQLAlchemy has it in each dialect's own ``insert``). Imported on first use: the
    other engine's dialect is not imported at all (PostgreSQL's costs ~20 ms)."""
    if name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:
        raise ConfigError(f"the {name} engine is not supported (PostgreSQL or SQLite)")
    return insert


def current_revision(engine: Engine) -> str | None:
    """The alembic revision stamped in the catalog, or None for an empty database.

    Read from alembic's own version table directly: importing alembic costs ~0.2 s of every
    command's start-up, and only migrations need it.
    """
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        versions = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    return ",".join(sorted(versions)) or None


def has_any_table(engine: Engine) -> bool:
    return bool(inspect(engine).get_table_names())


def check_revision(engine: Engine, head: str) -> None:
    """Refuse a catalog whose schema is not at the code's head revision."""
    rev = current_revision(engine)
    if rev == head:
        return
    if rev is None:
        raise SchemaOutOfDate(
            f"the catalog at {engine.url.render_as_string(hide_password=True)} has no schema;"
            " run `warehouse db upgrade`"
        )
    raise SchemaOutOfDate(
        f"the catalog is at schema revision {rev} but this warehouse needs {head};"
        " run `warehouse db upgrade`"
    )

"""Alembic environment: imports only the metadata, takes its engine from the caller."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from warehouse.models import Base

target_metadata = Base.metadata
config = context.config


def run_migrations_online() -> None:
    engine = config.attributes.get("engine")
    if engine is None:
        engine = create_engine(config.get_main_option("sqlalchemy.url"))
    with engine.connect() as connection:
        is_sqlite = connection.dialect.name == "sqlite"
        if is_sqlite:
            # Batch migrations copy tables; foreign keys must be off while they do (SQLite docs).
            # On the DBAPI connection: PRAGMA foreign_keys is a no-op inside a transaction.
            connection.connection.driver_connection.execute("PRAGMA foreign_keys=OFF")
            # Batch mode renames the copied table into place; with views over it (revision 0002)
            # SQLite >= 3.26 rejects that rename unless the legacy ALTER TABLE behaviour is on.
            connection.connection.driver_connection.execute("PRAGMA legacy_alter_table=ON")
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=is_sqlite,
            compare_type=True,
            # One transaction for the whole upgrade on SQLite too (alembic assumes SQLite's DDL
            # is not transactional, which is pysqlite's implicit COMMIT before DDL; warehouse.db
            # turns that off): an upgrade, or a first use, that is interrupted or fails leaves
            # the catalog where it was, not at some revision in between.
            transactional_ddl=True,
        )
        with context.begin_transaction():
            context.run_migrations()
        if is_sqlite:
            connection.commit()
            connection.connection.driver_connection.execute("PRAGMA foreign_keys=ON")
            connection.connection.driver_connection.execute("PRAGMA legacy_alter_table=OFF")


if context.is_offline_mode():
    raise SystemExit("offline (SQL script) migrations are not supported; use `warehouse db upgrade`")
run_migrations_online()

"""Alembic, driven from code: the migration scripts ship inside the wheel (``migrations``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.engine import Engine

from warehouse.locks import migration_lock

if TYPE_CHECKING:
    from alembic.config import Config

# The newest migration's revision: what every command checks the catalog against. Kept here
# rather than read from the scripts because importing alembic costs ~0.2 s of every command's
# start-up; tests/test_migrations.py checks that it is alembic's head.
SCHEMA_HEAD = "0007"


def _script_location() -> str:
    import migrations

    return str(Path(migrations.__file__).parent)


def alembic_config(engine: Engine) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", _script_location())
    cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False))
    cfg.attributes["engine"] = engine
    return cfg


def head_revision() -> str:
    return SCHEMA_HEAD


def scripts_head_revision() -> str:
    """The head revision as alembic finds it in the migration scripts."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", _script_location())
    head = ScriptDirectory.from_config(cfg).get_current_head()
    assert head is not None, "migrations have no head revision"  # packaging bug, not user error
    return head


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Migrate to ``revision``; one process at a time (:func:`warehouse.locks.migration_lock`),
    so a second, concurrent upgrade finds the work done instead of racing it."""
    from alembic import command

    with migration_lock(engine):
        command.upgrade(alembic_config(engine), revision)


def downgrade(engine: Engine, revision: str) -> None:
    from alembic import command

    with migration_lock(engine):
        command.downgrade(alembic_config(engine), revision)

"""Migrations upgrade to head and downgrade to base; models and migrations agree."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from warehouse import migrate, open_warehouse
from warehouse.db import current_revision, make_engine
from warehouse.errors import SchemaOutOfDate
from warehouse.models import Base


def _diff(engine) -> list:
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        return compare_metadata(ctx, Base.metadata)


def test_upgrade_downgrade_roundtrip(db_url: str) -> None:
    engine = make_engine(db_url)
    migrate.upgrade(engine)
    assert current_revision(engine) == migrate.head_revision()
    assert _diff(engine) == [], "models.py and the migrations disagree"
    migrate.downgrade(engine, "base")
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    assert current_revision(engine) is None
    migrate.upgrade(engine)
    assert _diff(engine) == []
    engine.dispose()


def test_an_upgrade_that_fails_part_way_leaves_the_catalog_as_it_was(db_url: str) -> None:
    """The whole upgrade is one transaction on both engines: revision 0005 fails here (its table
    exists already), and revisions 0001-0004 are undone with it. On SQLite alembic committed
    each revision on its own before, so an interrupted first use left a catalog at 0006 that
    every later command refused ("run `warehouse db upgrade`")."""
    from sqlalchemy import text

    engine = make_engine(db_url)
    migrate.downgrade(engine, "base")  # PostgreSQL's test databases come migrated
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE leaderboard_sums (x INTEGER)"))
    with pytest.raises(Exception, match="leaderboard_sums"):
        migrate.upgrade(engine)
    assert current_revision(engine) is None
    assert set(inspect(engine).get_table_names()) - {"alembic_version"} == {"leaderboard_sums"}
    engine.dispose()


def test_models_and_migrations_agree(wh) -> None:
    assert _diff(wh.engine) == []


def test_stale_catalog_is_refused(db_url: str, tmp_path) -> None:
    engine = make_engine(db_url)
    migrate.upgrade(engine)
    revisions = _all_revisions()
    if len(revisions) < 2:
        # With a single revision, simulate an older catalog by stamping a fake earlier one.
        with engine.begin() as conn:
            conn.exec_driver_sql("UPDATE alembic_version SET version_num = 'old000'")
    else:
        migrate.downgrade(engine, revisions[-2])
    engine.dispose()
    with pytest.raises(SchemaOutOfDate, match="run `warehouse db upgrade`"):
        open_warehouse(db_url, str(tmp_path / "lake"))


def test_cli_db_commands(cli) -> None:
    res = cli("db", "upgrade")
    assert res.exit_code == 0, res.output
    res = cli("db", "current")
    assert res.exit_code == 0
    head = migrate.head_revision()
    assert f"catalog: {head}" in res.output and f"code:    {head}" in res.output
    res = cli("db", "downgrade", "base")
    assert res.exit_code == 1 and "--yes" in res.output, res.output  # asks first
    assert cli("db", "current").output.startswith(f"catalog: {head}")
    res = cli("db", "downgrade", "base", "--yes")
    assert res.exit_code == 0, res.output
    assert "catalog at revision None" in res.output
    res = cli("db", "upgrade")
    assert f"catalog at revision {head}" in res.output


def test_downgrade_base_removes_the_lake_files_it_orphans(cli, wh, lake_path, tmp_path) -> None:
    from ingest_helpers import write_fcc_xyz

    path = tmp_path / "a.xyz"
    write_fcc_xyz(path, 3, reps=2)
    assert cli("ingest", "structures", path, "-d", "a").exit_code == 0
    files = sorted(wh.lake.walk())
    assert files and (lake_path / "_warehouse.json").exists()
    wh.close()
    res = cli("db", "downgrade", "base")
    assert res.exit_code == 1 and f"{len(files)} lake files" in res.output, res.output
    assert sorted(wh.lake.walk()) == files  # nothing done without --yes
    res = cli("db", "downgrade", "base", "--yes")
    assert res.exit_code == 0 and f"removed {len(files)} lake files" in res.output, res.output
    assert list(wh.lake.walk()) == [] and not (lake_path / "_warehouse.json").exists()
    assert cli("db", "upgrade").exit_code == 0
    assert cli("ingest", "structures", path, "-d", "a").exit_code == 0  # a new catalog, same lake


def test_a_lake_bound_to_another_catalog_is_refused(cli, wh, tmp_path, lake_path) -> None:
    from ingest_helpers import write_fcc_xyz

    path = tmp_path / "a.xyz"
    write_fcc_xyz(path, 2, reps=2)
    assert cli("ingest", "structures", path, "-d", "a").exit_code == 0
    other = f"sqlite:///{tmp_path / 'other.sqlite'}"
    from typer.testing import CliRunner

    from cli.app import app

    res = CliRunner().invoke(app, ["--url", other, "--lake", str(lake_path), "ingest",
                                   "structures", str(path), "-d", "a"])
    assert res.exit_code == 1 and "belongs to another catalog" in res.output, res.output
    res = CliRunner().invoke(app, ["--url", other, "--lake", str(lake_path), "check", "--repair"])
    assert res.exit_code == 1 and "belongs to another catalog" in res.output, res.output
    assert cli("check").exit_code == 0  # its own catalog's files were not touched


def _all_revisions() -> list[str]:
    from alembic.script import ScriptDirectory

    from warehouse.migrate import alembic_config

    script = ScriptDirectory.from_config(alembic_config(make_engine("sqlite://")))
    return [r.revision for r in reversed(list(script.walk_revisions()))]


def test_schema_head_constant_is_alembics_head() -> None:
    """The revision every command checks against is the newest migration script's."""
    assert migrate.SCHEMA_HEAD == migrate.scripts_head_revision()

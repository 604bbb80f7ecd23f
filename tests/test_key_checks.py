"""Foreign keys of bulk rows on PostgreSQL, checked before commit instead of per row (ingest.writers.bulk).

The deferred check must refuse what the per-row triggers refuse, leave nothing behind when it
does, keep the parents that predate the ingest locked until it commits, give the same catalog
as the triggers, and stand aside wherever replica mode could silence something else.
"""

from __future__ import annotations

import psycopg
import pytest
from sqlalchemy import select, text

from conftest import engine_name
from ingest.loader import BULK_TABLES
from ingest_helpers import snapshot, write_fcc_xyz
from warehouse import models as m
from warehouse.errors import IngestError

pytestmark = pytest.mark.skipif(engine_name() != "postgresql",
                                reason="per-row foreign-key triggers are PostgreSQL's")

BULK = [t.__table__ for t in BULK_TABLES]  # what the loader COPYs with triggers off


def _libpq(wh) -> str:
    return wh.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)


def test_the_deferred_check_is_used_where_allowed_and_not_where_a_trigger_exists(wh) -> None:
    from ingest.writers import bulk

    with wh.engine.connect() as conn:
        assert bulk.key_check_mode(conn, BULK) == "deferred"  # the test server's role: superuser
        conn.execute(text(
            "CREATE FUNCTION wh_t_audit() RETURNS trigger LANGUAGE plpgsql AS"
            " 'BEGIN RETURN NEW; END'"))
        conn.execute(text("CREATE TRIGGER audit BEFORE INSERT ON dataset_members FOR EACH ROW"
                          " EXECUTE FUNCTION wh_t_audit()"))
        # replica mode would silence that trigger: the rows go through the triggers instead
        assert bulk.key_check_mode(conn, BULK) == "triggers"
        conn.rollback()
        assert bulk.key_check_mode(conn, BULK) == "deferred"


def test_both_modes_store_the_same_catalog(tmp_path, monkeypatch, _pg) -> None:
    from ingest.writers import bulk
    from ingest.api import ingest_structures
    from warehouse import open_warehouse

    path = tmp_path / "set.xyz"
    write_fcc_xyz(path, 40, reps=3, seed=4)
    seen = []
    for mode in ("deferred", "triggers"):
        monkeypatch.setattr(bulk, "KEY_CHECKS", mode)
        with open_warehouse(_pg.new_url(), str(tmp_path / f"lake-{mode}")) as wh:
            ingest_structures(wh, path, dataset="d", level_of_theory="EMT")
            ingest_structures(wh, path, dataset="e", level_of_theory="EMT")  # shared structures
            with wh.session() as s:
                seen.append((
                    s.execute(select(m.Structure.hash, m.Structure.lake_file_id,
                                     m.Structure.ingest_run_id).order_by(m.Structure.id)).all(),
                    s.execute(select(m.DatasetMember.dataset_id, m.DatasetMember.structure_id,
                                     m.DatasetMember.ingest_run_id)
                              .order_by(m.DatasetMember.dataset_id, m.DatasetMember.structure_id)).all(),
                    s.execute(select(m.Reference.structure_id, m.Reference.lake_file_id,
                                     m.Reference.energy).order_by(m.Reference.id)).all(),
                    s.execute(select(m.StructureElement.structure_id, m.StructureElement.element,
                                     m.StructureElement.count)
                              .order_by(m.StructureElement.structure_id,
                                        m.StructureElement.element)).all(),
                ))
    assert seen[0] == seen[1]
    assert len(seen[0][1]) == 80


@pytest.mark.parametrize("mode", ["deferred", "triggers"])
def test_a_row_pointing_at_no_parent_fails_the_ingest_and_nothing_lands(
        wh, tmp_path, monkeypatch, mode) -> None:
    """A member of a dataset that does not exist (a loader bug, or a parent deleted meanwhile)
    is refused by either check; the deferred one names the table and the missing key."""
    from ingest.writers import bulk
    from ingest.api import ingest_structures
    from ingest.loader import Loader

    monkeypatch.setattr(bulk, "KEY_CHECKS", mode)
    path = tmp_path / "set.xyz"
    write_fcc_xyz(path, 12, reps=2)
    ingest_structures(wh, path, dataset="before", level_of_theory="EMT")
    before = snapshot(wh)
    real = Loader._write_members

    def wrong_dataset(self, b, sids, dataset_id, *args):
        return real(self, b, sids, 424242, *args)

    monkeypatch.setattr(Loader, "_write_members", wrong_dataset)
    other = tmp_path / "other.xyz"
    write_fcc_xyz(other, 12, reps=2, seed=7)
    expected = "datasets rows .* do not exist.*: dataset_members.dataset_id 424242$" if mode == "deferred" else "foreign key"
    with pytest.raises(Exception, match=expected) as info:
        ingest_structures(wh, other, dataset="d", level_of_theory="EMT")
    if mode == "deferred":
        assert isinstance(info.value, IngestError) and str(other) in str(info.value)
    assert snapshot(wh) == before


def test_parents_that_predate_the_ingest_stay_locked_until_it_commits(wh, tmp_path) -> None:
    """As the per-row triggers would: while an ingest that shares a dataset, a level of theory
    and structures with earlier ones is open, none of those rows can be deleted."""
    from ingest.writers import bulk
    from ingest.api import ingest_structures
    from ingest.extxyz import parse_extxyz_batches
    from ingest.loader import ingest_run

    path = tmp_path / "set.xyz"
    write_fcc_xyz(path, 10, reps=2)
    ingest_structures(wh, path, dataset="d", level_of_theory="EMT")
    more = tmp_path / "more.xyz"
    write_fcc_xyz(more, 4, reps=2, seed=3)
    with wh.session() as s:
        old_sid = s.scalar(select(m.Structure.id).order_by(m.Structure.id).limit(1))
        ds = s.scalar(select(m.Dataset.id).where(m.Dataset.name == "d"))
        lot = s.scalar(select(m.LevelOfTheory.id).where(m.LevelOfTheory.name == "EMT"))

    with ingest_run(wh, kind="structures", source=str(path)) as ld:
        level = ld.level_of_theory("EMT")
        dataset = ld.dataset("d", level)
        assert (dataset, level) == (ds, lot)
        ld.add_batches(list(parse_extxyz_batches(path)) + list(parse_extxyz_batches(more)),
                       dataset_id=dataset, level_id=level)
        assert ld.bulk.key_checks == "deferred"
        ld.bulk.writer.wait()
        with psycopg.connect(_libpq(wh), autocommit=True) as other:
            other.execute("SET lock_timeout = '300ms'")
            for sql in (f"DELETE FROM structures WHERE id = {old_sid}",
                        f"DELETE FROM datasets WHERE id = {ds}",
                        f"DELETE FROM levels_of_theory WHERE id = {lot}"):
                with pytest.raises(psycopg.errors.LockNotAvailable):
                    other.execute(sql)
    assert bulk.KEY_CHECKS == "deferred"
    with wh.session() as s:
        assert s.scalar(select(m.Structure.id).where(m.Structure.id == old_sid)) == old_sid
        assert s.scalar(text("SELECT count(*) FROM dataset_members")) == 14


def test_a_role_that_may_not_set_the_replication_role_gets_the_triggers(wh, tmp_path) -> None:
    """Not a superuser: the triggers check every row, unless SET on the parameter is granted
    (PostgreSQL 15 and newer), and then such a role's ingest works with the deferred check."""
    import os

    from sqlalchemy import create_engine

    from ingest.writers import bulk
    from ingest.api import ingest_structures
    from warehouse import open_warehouse

    role = f"wh_t_plain_{os.getpid()}"
    admin = psycopg.connect(_libpq(wh), autocommit=True)
    admin.execute(f"CREATE ROLE {role} LOGIN")
    admin.execute(f"GRANT ALL ON ALL TABLES IN SCHEMA public TO {role}")
    admin.execute(f"GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO {role}")
    url = wh.engine.url.set(username=role)
    plain = create_engine(url)
    try:
        with plain.connect() as conn:
            assert bulk.key_check_mode(conn, BULK) == "triggers"
            if conn.dialect.server_version_info >= (15,):
                admin.execute(f"GRANT SET ON PARAMETER session_replication_role TO {role}")
                assert bulk.key_check_mode(conn, BULK) == "deferred"
        path = tmp_path / "set.xyz"
        write_fcc_xyz(path, 6, reps=2)
        with open_warehouse(url.render_as_string(hide_password=False), str(tmp_path / "lake")) as w:
            assert ingest_structures(w, path, dataset="d").added["structures"] == 6
    finally:
        plain.dispose()
        if admin.info.server_version >= 150000:
            admin.execute(f"REVOKE SET ON PARAMETER session_replication_role FROM {role}")
        admin.execute(f"DROP OWNED BY {role}")
        admin.execute(f"DROP ROLE {role}")
        admin.close()

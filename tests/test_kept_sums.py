"""The leaderboard sums kept at ingest (warehouse.keptsums) equal the live computation for every
breakdown, after every kind of ingest and removal, on both engines; queries only read.

Synthetic Cu/Ni/Al cells (1-3 elements, 4-6 atoms) go through the one writer (``ingest_run``)
exactly as the ingesters use it.
"""

from __future__ import annotations

import itertools
import threading

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import event, text

from ingest.loader import ingest_run
from queries.leaderboard import leaderboard, leaderboard_report
from warehouse import keptsums, open_warehouse
from warehouse.records import Frame, Labels, PredictionFrame

Z = {"Cu": 29, "Ni": 28, "Al": 13}
# every breakdown the leaderboard offers, alone and combined, pooled or not
BREAKDOWNS = [dict(by=list(by), pool=pool)
              for n in range(4) for by in itertools.combinations(("subset", "element", "n_elements"), n)
              for pool in (False, True)]
# the force-norm metrics, kept too since schema 0007 (per structure only: NaN per element)
BREAKDOWNS += [dict(metric="force_norm_rmse"), dict(metric="force_norm_mae", by=["subset"]),
               dict(metric="force_norm_rmse", by=["element"])]
# subset tags: two names, an empty tag and none at all (NULL): '' and NULL are distinct groups
TAGS = ["eos", "md", "", None]


def _cells(n: int, seed: int) -> list[Frame]:
    """``n`` distinct cells of 4-6 atoms with 1-3 of Cu/Ni/Al, labelled (forces, stress)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        k = 4 + i % 3
        species = list(Z)[: 1 + i % 3]
        numbers = np.array([Z[species[j % len(species)]] for j in range(k)], dtype=np.int32)
        cell = np.eye(3) * (5 + rng.random())
        out.append(Frame(numbers=numbers, positions=rng.random((k, 3)) * 4, cell=cell,
                         pbc=np.ones(3, bool), index=i, labels=_labels(rng, k),
                         config_type=TAGS[i % len(TAGS)]))
    return out


def _labels(rng, k: int) -> Labels:
    return Labels(float(rng.normal(-3 * k, 1)), rng.normal(0, 0.3, (k, 3)), rng.normal(0, 1, 6))


def _relabel(frames: list[Frame], seed: int) -> list[Frame]:
    rng = np.random.default_rng(seed)
    return [Frame(f.numbers, f.positions, f.cell, f.pbc, f.index, _labels(rng, f.n_atoms),
                  f.config_type) for f in frames]


def add_structures(wh, frames: list[Frame], dataset: str, level: str = "L1") -> None:
    with ingest_run(wh, kind="structures") as ld:
        lid = ld.level_of_theory(level)
        ld.add_frames(frames, dataset_id=ld.dataset(dataset, lid), level_id=lid, path="gen")


def add_predictions(wh, frames: list[Frame], model: str, *, seed: int, fail: int = -1) -> None:
    rng = np.random.default_rng(seed)
    preds = []
    for i, f in enumerate(frames):
        if i == fail:
            preds.append(PredictionFrame(Frame(f.numbers, f.positions, f.cell, f.pbc, f.index),
                                         status="failed", message="on purpose"))
        else:
            preds.append(PredictionFrame(Frame(f.numbers, f.positions, f.cell, f.pbc, f.index,
                                               _labels(rng, f.n_atoms))))
    with ingest_run(wh, kind="predictions") as ld:
        ld.add_predictions(ld.model(model), preds, path="gen")


def assert_kept_equals_live(wh) -> None:
    with wh.engine.connect() as conn:
        diff = keptsums.differences(conn)
    assert diff.empty, diff.to_string()
    for options in BREAKDOWNS:
        kept = leaderboard_report(wh, **options)
        live = leaderboard_report(wh, use_rollup=False, **options)
        pd.testing.assert_frame_equal(kept.table, live.table, rtol=1e-12, check_dtype=False,
                                      obj=str(options))
        assert kept.fingerprint == live.fingerprint, options


def test_kept_sums_follow_mixed_ingests_and_removals(wh):
    cells = _cells(16, seed=1)
    add_structures(wh, cells[:8], "A")  # structures, members, references
    add_predictions(wh, cells[:8][1:], "m1", seed=2, fail=3)  # one missing, one failed
    assert_kept_equals_live(wh)
    # B shares four predicted structures with A (new members only) and brings four new ones
    add_structures(wh, cells[4:12], "B")
    assert_kept_equals_live(wh)
    # C labels predicted structures at another level: new references on predicted structures
    add_structures(wh, _relabel(cells[:6], seed=3), "C", level="L2")
    assert_kept_equals_live(wh)
    add_predictions(wh, cells[:12], "m2", seed=4)  # a second model on everything
    add_predictions(wh, cells[8:12], "m1", seed=5)  # the first model's missing ones, later
    assert_kept_equals_live(wh)
    # one ingest: structures new to A (predicted by m2 already) and brand-new ones
    add_structures(wh, cells[8:16], "A")
    assert_kept_equals_live(wh)
    table = leaderboard(wh, by=["subset"])
    assert "" in set(table["subset"]) and table["subset"].isna().any()  # '' and no tag: apart

    with wh.engine.begin() as conn:  # a model removed, as `warehouse model remove` does
        (m1,) = conn.execute(text("SELECT id FROM models WHERE name = 'm1'")).one()
        conn.execute(text("DELETE FROM predictions WHERE model_id = :m"), {"m": m1})
        conn.execute(text("DELETE FROM models WHERE id = :m"), {"m": m1})
    assert_kept_equals_live(wh)
    with wh.engine.begin() as conn:  # a dataset removed
        conn.execute(text("DELETE FROM datasets WHERE name = 'B'"))
    assert_kept_equals_live(wh)
    assert set(leaderboard(wh)["dataset"]) == {"A", "C"}
    assert set(leaderboard(wh)["model"]) == {"m2"}


def test_the_writer_says_when_a_run_touches_older_structures(wh, monkeypatch):
    """add_run skips the parts that need older rows only when the writer promises that every
    member and reference of the run is of a structure the run created; that promise is kept."""
    import ingest.loader

    said: list[bool] = []
    real = keptsums.add_run

    def spy(conn, run_id, *, older_structures=True):
        said.append(older_structures)
        real(conn, run_id, older_structures=older_structures)

    monkeypatch.setattr(ingest.loader, "add_run", spy)
    cells = _cells(12, seed=7)
    add_structures(wh, cells[:6] + cells[:2], "A")  # new ones, two of them twice in the file
    add_predictions(wh, cells[:6], "m1", seed=8)
    add_structures(wh, cells[6:], "A")  # new structures into a predicted dataset
    add_structures(wh, cells[4:8], "B")  # two predicted structures join a second dataset
    add_structures(wh, cells[:6], "A")  # all already present: nothing new
    assert said == [False, False, False, True, True]
    assert_kept_equals_live(wh)


def test_rebuild_gives_the_kept_rows(wh):
    cells = _cells(9, seed=7)
    add_structures(wh, cells[:6], "A")
    add_predictions(wh, cells[:6], "m", seed=8, fail=0)
    add_structures(wh, cells[3:], "B")
    with wh.engine.connect() as conn:
        before = pd.read_sql(text("SELECT * FROM leaderboard_sums"), conn)
    with wh.engine.begin() as conn:
        keptsums.rebuild(conn)
    with wh.engine.connect() as conn:
        after = pd.read_sql(text("SELECT * FROM leaderboard_sums"), conn)
        assert keptsums.differences(conn).empty
    key = ["model_id", "dataset_id", "subset", "tagged", "n_elements", "element"]
    pd.testing.assert_frame_equal(before.sort_values(key, ignore_index=True),
                                  after.sort_values(key, ignore_index=True), rtol=1e-12)


def test_a_failed_ingest_adds_nothing(wh):
    cells = _cells(6, seed=9)
    add_structures(wh, cells, "A")
    with wh.engine.connect() as conn:
        before = pd.read_sql(text("SELECT * FROM leaderboard_expected ORDER BY 1, 2, 3, 4, 5"), conn)
    with pytest.raises(RuntimeError), ingest_run(wh, kind="structures") as ld:
        lid = ld.level_of_theory("L1")
        ld.add_frames(_cells(4, seed=10), dataset_id=ld.dataset("A", lid), level_id=lid, path="x")
        raise RuntimeError("interrupted")
    with wh.engine.connect() as conn:
        after = pd.read_sql(text("SELECT * FROM leaderboard_expected ORDER BY 1, 2, 3, 4, 5"), conn)
    pd.testing.assert_frame_equal(before, after)


WRITES = ("insert", "update", "delete", "lock", "create", "drop", "alter", "truncate", "replace")


def test_queries_issue_no_writes(wh, db_url, lake_path):
    cells = _cells(8, seed=11)
    add_structures(wh, cells, "A")
    add_predictions(wh, cells, "m", seed=12)
    add_structures(wh, cells[4:], "B")  # after the last ingest: the first query is a read
    statements: list[str] = []

    def record(conn, cursor, statement, *args):
        statements.append(statement)

    with open_warehouse(db_url, str(lake_path)) as reader:
        event.listen(reader.engine, "before_cursor_execute", record)
        for options in BREAKDOWNS:
            leaderboard(reader, **options)
        with reader.engine.connect() as conn:
            conn.execute(text("SELECT * FROM v_leaderboard")).all()
            conn.execute(text("SELECT * FROM v_leaderboard_element")).all()
    assert len(statements) > len(BREAKDOWNS)
    writes = [s for s in statements if s.lstrip().split(None, 1)[0].lower() in WRITES]
    assert writes == []
    if wh.dialect == "sqlite":  # and a connection that cannot write gives the same table
        path = db_url.removeprefix("sqlite:///")
        with open_warehouse(f"sqlite:///file:{path}?mode=ro&uri=true", str(lake_path)) as ro:
            pd.testing.assert_frame_equal(leaderboard(ro, by=["element"]),
                                          leaderboard(wh, by=["element"]))


def test_views_read_the_kept_sums(wh):
    cells = _cells(8, seed=13)
    add_structures(wh, cells, "A")
    add_predictions(wh, cells, "m", seed=14, fail=2)
    with wh.engine.connect() as conn:
        view = pd.read_sql(text("SELECT * FROM v_leaderboard"), conn)
        per_el = pd.read_sql(text("SELECT * FROM v_leaderboard_element ORDER BY element"), conn)
    api = leaderboard(wh)
    for col in api.columns:
        assert view[col].tolist() == pytest.approx(api[col].tolist(), rel=1e-12, nan_ok=True) \
            if view[col].dtype.kind == "f" else view[col].tolist() == api[col].tolist(), col
    api_el = leaderboard(wh, by=["element"]).sort_values("element", ignore_index=True)
    assert per_el["element"].tolist() == api_el["element"].tolist() == ["Al", "Cu", "Ni"]
    for col in ("n_structures", "n_atoms", "n_predicted", "n_failed", "n_missing"):
        assert per_el[col].tolist() == api_el[col].tolist(), col
    for col in ("energy_rmse", "force_mae", "force_rmse", "stress_mae"):
        assert per_el[col].tolist() == pytest.approx(api_el[col].tolist(), rel=1e-12), col


def test_concurrent_ingests_that_make_one_triple_together(wh, monkeypatch):
    """A adds members, B predictions of the same structures, and B reaches its kept-sums step
    while A has done its own but not committed: each (member, reference, prediction) is counted
    once. (Without the advisory lock B would miss A's members and A B's predictions.)
    PostgreSQL only: SQLite has one writer at a time."""
    if wh.dialect != "postgresql":
        pytest.skip("concurrent writers: PostgreSQL")
    import time

    import ingest.loader

    cells = _cells(6, seed=15)
    add_structures(wh, cells, "A")
    with ingest_run(wh, kind="setup") as ld:  # B's model and A's dataset exist beforehand
        ld.model("late")
        ld.dataset("A2", ld.level_of_theory("L1"))
    a_hooked, errors = threading.Event(), []
    real = keptsums.add_run

    def paced(conn, run_id, **hints):
        if threading.current_thread().name == "B":
            a_hooked.wait(30)
            return real(conn, run_id, **hints)
        real(conn, run_id, **hints)
        a_hooked.set()
        time.sleep(1.5)  # B tries its step now, before A commits

    monkeypatch.setattr(ingest.loader, "add_run", paced)

    def ingest_a():
        with ingest_run(wh, kind="members") as ld:
            lid = ld.level_of_theory("L1")
            ld.add_frames(cells, dataset_id=ld.dataset("A2", lid), level_id=lid, path="a")

    def ingest_b():
        preds = [PredictionFrame(Frame(f.numbers, f.positions, f.cell, f.pbc, f.index),
                                 status="failed", message="x") for f in cells]
        with ingest_run(wh, kind="predictions") as ld:
            ld.add_predictions(ld.model("late"), preds, path="b")

    def run(fn):
        try:
            fn()
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
            a_hooked.set()

    threads = [threading.Thread(target=run, args=(f,), name=n) for f, n in ((ingest_a, "A"), (ingest_b, "B"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert_kept_equals_live(wh)
    late = leaderboard(wh, models=["late"]).set_index("dataset")
    assert late.loc["A2", "n_failed"] == 6


def test_the_upgrade_to_0007_fills_the_force_norm_sums_of_a_catalog(wh):
    """A catalog whose kept sums predate schema 0007 gets its force-norm sums on upgrade: the
    force-norm leaderboard then reads the kept rows, equal to the live computation."""
    from warehouse import migrate

    cells = _cells(8, seed=21)
    add_structures(wh, cells, "A")
    add_predictions(wh, cells, "m1", seed=22)
    migrate.downgrade(wh.engine, "0006")
    migrate.upgrade(wh.engine)
    with wh.engine.connect() as conn:
        n, fn_n = conn.execute(text(
            "SELECT count(*), sum(fn_n) FROM leaderboard_sums WHERE element = ''")).one()
    assert n and fn_n == sum(f.n_atoms for f in cells)
    assert_kept_equals_live(wh)

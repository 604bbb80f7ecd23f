"""The analysts' SQL: views (migrations 0002, 0005), docs/SQL.md's cookbook, the read-only role.

The view, the leaderboard JSON and the Python API must give identical numbers on each engine.
"""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ProgrammingError

from leaderboard_helpers import GAPPY, OMIT, FAIL
from queries.leaderboard import COLUMNS, METRICS, leaderboard
from unep_fixtures import ingest_unep
from warehouse import open_warehouse

DOC = Path(__file__).resolve().parents[1] / "docs" / "SQL.md"


def cookbook() -> dict[str, str]:
    blocks = re.findall(r"```sql\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)
    out = {}
    for block in blocks:
        name = re.match(r"-- name: (\w+)", block)
        assert name, f"every SQL block in docs/SQL.md starts with '-- name: ...': {block[:60]}"
        out[name.group(1)] = block
    return out


@pytest.fixture
def filled(wh, shared_data):
    from ingest.api import ingest_gpumd

    ingest_gpumd(wh, shared_data / "gpumd" / "nep_train_PbTe", model="pbte-nep", dataset="pbte")
    ingest_unep(wh, shared_data, models=("unep-v1", "eam-zhou", GAPPY), sets=("eos", "screw"),
                omit={GAPPY: OMIT}, fail={GAPPY: FAIL})
    return wh


def _sql(wh, query: str) -> pd.DataFrame:
    with wh.engine.connect() as conn:
        return pd.read_sql(text(query), conn)


def _null(v) -> bool:
    return v is None or (isinstance(v, float) and np.isnan(v))


def _same(a, b) -> bool:
    if _null(a) or _null(b):
        return _null(a) and _null(b)
    if isinstance(a, str) or isinstance(b, str):
        return a == b
    return float(a) == pytest.approx(float(b), rel=1e-12, abs=1e-15)


def test_view_json_and_api_agree(filled, cli):
    view = _sql(filled, "SELECT * FROM v_leaderboard").sort_values(["dataset", "model"])
    api = leaderboard(filled).sort_values(["dataset", "model"])
    res = cli("leaderboard", "-f", "json")
    assert res.exit_code == 0, res.output
    js = pd.DataFrame(json.loads(res.stdout)).sort_values(["dataset", "model"])
    assert len(view) == len(api) == len(js) == 4
    for frame in (view, js):
        for (_, a), (_, b) in zip(api.iterrows(), frame.iterrows(), strict=True):
            for col in COLUMNS:
                assert _same(a[col], b[col]), (col, a[col], b[col])
    gap = view[view["model"] == GAPPY].iloc[0]
    assert (gap["n_failed"], gap["n_missing"]) == (1, 2)  # rows 200 and 300 are not in eos+screw


def test_cookbook_queries_run_and_agree_with_the_api(filled):
    book = cookbook()
    assert {"leaderboard", "per_element_forces", "per_element_energy", "custom_ranking",
            "by_n_elements", "failures", "pooled_without_one"} <= set(book)
    results = {name: _sql(filled, q) for name, q in book.items()}
    assert all(len(df) for df in results.values())
    api = leaderboard(filled, by=["element"])
    forces = results["per_element_forces"]
    energy = results["per_element_energy"]
    for _, row in api[api["n_predicted"] > 0].iterrows():
        f = forces[(forces["model"] == row["model"]) & (forces["dataset"] == row["dataset"])
                   & (forces["element"] == row["element"])].iloc[0]
        assert f["force_rmse"] == pytest.approx(row["force_rmse"], rel=1e-12)
        e = energy[(energy["model"] == row["model"]) & (energy["dataset"] == row["dataset"])
                   & (energy["element"] == row["element"])].iloc[0]
        assert e["energy_rmse"] == pytest.approx(row["energy_rmse"], rel=1e-12)
    kept = results["per_element"]
    for _, row in api[api["n_predicted"] > 0].iterrows():
        k = kept[(kept["model"] == row["model"]) & (kept["dataset"] == row["dataset"])
                 & (kept["element"] == row["element"])].iloc[0]
        assert (k["n_structures"], k["n_atoms"], k["n_missing"]) == (
            row["n_structures"], row["n_atoms"], row["n_missing"])
        assert k["force_rmse"] == pytest.approx(row["force_rmse"], rel=1e-12)
        assert k["energy_rmse"] == pytest.approx(row["energy_rmse"], rel=1e-12)
    assert len(results["failures"]) == 1
    rank = results["custom_ranking"]
    assert GAPPY not in set(rank["model"])  # it has failures
    assert (rank.groupby("dataset")["force_vs_best"].min() == 1).all()
    pooled = results["pooled_without_one"].set_index("model")
    api_pool = leaderboard(filled, pool=True, exclude_datasets=["pbte"]).set_index("model")
    for model in ("unep-v1", "eam-zhou"):
        assert pooled.loc[model, "force_rmse"] == pytest.approx(api_pool.loc[model, "force_rmse"],
                                                                rel=1e-12)


def test_views_survive_an_empty_catalog(wh):
    assert _sql(wh, "SELECT * FROM v_leaderboard").empty
    assert list(_sql(wh, "SELECT * FROM v_prediction_errors").columns)[:2] == ["model_id", "model"]


def test_grant_readonly(cli, db_url, filled, lake_path):
    if filled.dialect != "postgresql":
        res = cli("db", "grant-readonly", "analyst")
        assert res.exit_code == 1 and "PostgreSQL" in res.output
        return
    role = f"ro_{uuid.uuid4().hex[:8]}"
    res = cli("db", "grant-readonly", role)
    assert res.exit_code == 0, res.output
    ro = create_engine(make_url(db_url).set(username=role, password=None))
    admin = create_engine(make_url(db_url))
    try:
        with ro.connect() as conn:
            conn.execute(text("SELECT count(*) FROM v_leaderboard")).scalar_one()
            conn.execute(text("SELECT count(*) FROM structures")).scalar_one()
        # the Python API works for the analyst too: it reads the kept sums, writes nothing
        with open_warehouse(ro.url.render_as_string(hide_password=False), str(lake_path)) as rw:
            pd.testing.assert_frame_equal(leaderboard(rw, by=["element"]),
                                          leaderboard(filled, by=["element"]), rtol=1e-12)
        for stmt in ("INSERT INTO levels_of_theory (name) VALUES ('x')",
                     "DELETE FROM models", "CREATE TABLE sneaky (i int)",
                     "CREATE VIEW v_sneaky AS SELECT 1"):
            with ro.connect() as conn, pytest.raises(ProgrammingError, match="permission denied"):
                conn.execute(text(stmt))
    finally:
        ro.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP OWNED BY "{role}"'))
            conn.execute(text(f'DROP ROLE "{role}"'))
        admin.dispose()


def test_both_engines_give_the_same_numbers(filled, shared_data, tmp_path):
    """On the PostgreSQL run, rebuild the same warehouse on SQLite and compare view and API."""
    if filled.dialect != "postgresql":
        pytest.skip("compares PostgreSQL with SQLite; runs when WAREHOUSE_TEST_URL is set")
    from ingest.api import ingest_gpumd

    with open_warehouse(f"sqlite:///{tmp_path / 'other.sqlite'}", str(tmp_path / "lake2")) as lite:
        ingest_gpumd(lite, shared_data / "gpumd" / "nep_train_PbTe", model="pbte-nep", dataset="pbte")
        ingest_unep(lite, shared_data, models=("unep-v1", "eam-zhou", GAPPY), sets=("eos", "screw"),
                    omit={GAPPY: OMIT}, fail={GAPPY: FAIL})
        for options in ({}, {"by": ["element"]}, {"by": ["subset"], "pool": True}):
            pd.testing.assert_frame_equal(leaderboard(lite, **options), leaderboard(filled, **options),
                                          rtol=1e-12, check_dtype=False)
        order = "SELECT * FROM v_leaderboard ORDER BY dataset, model"
        pd.testing.assert_frame_equal(_sql(lite, order), _sql(filled, order), rtol=1e-12,
                                      check_dtype=False)

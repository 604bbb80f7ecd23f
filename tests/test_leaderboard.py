"""Leaderboards and breakdowns on real data, every metric against an independent numpy computation.

Data: GPUMD's PbTe NEP training set with the NEP's own outputs (2 species per structure), and the
UNEP-v1 DFT reference sets (16 metals; subsets eos, stacking_fault, screw) with three real models'
predictions from tests/fixtures/unep_v1, one of them with missing and failed predictions.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from leaderboard_helpers import (
    FAIL, GAPPY, OMIT, gappy_rows, load_all, metrics_from_diffs, pbte_diffs, unep_diffs,
    unep_metrics,
)
from queries.leaderboard import COLUMNS, METRICS, leaderboard, leaderboard_report
from unep_fixtures import DATASET, fixture_rows, ingest_unep
from warehouse import open_warehouse
from warehouse.errors import NoMatch

ALL_ROWS = [int(r) for r in fixture_rows()]


@pytest.fixture(scope="module")
def loaded(tmp_path_factory, _pg, shared_data):
    """(url, lake) of one warehouse holding PbTe and the UNEP-v1 sets, shared by this module."""
    tmp = tmp_path_factory.mktemp("lb")
    url = _pg.new_url() if _pg is not None else f"sqlite:///{tmp / 'catalog.sqlite'}"
    with open_warehouse(url, str(tmp / "lake")) as wh:
        load_all(wh, shared_data)
    return url, str(tmp / "lake")


@pytest.fixture
def lw(loaded):
    w = open_warehouse(*loaded)
    yield w
    w.close()


@pytest.fixture(scope="module")
def diffs(shared_data):
    return {
        "unep-v1": unep_diffs(shared_data, "unep-v1", ALL_ROWS),
        "eam-zhou": unep_diffs(shared_data, "eam-zhou", ALL_ROWS),
        GAPPY: unep_diffs(shared_data, GAPPY, gappy_rows()),
    }


def _check(row, expected: dict[str, float]) -> None:
    for key, value in expected.items():
        got = row[key]
        if np.isnan(value):
            assert got is None or np.isnan(got), key
        else:
            assert got == pytest.approx(value, rel=1e-9, abs=1e-12), key


def _row(df, **keys):
    sel = np.ones(len(df), bool)
    for k, v in keys.items():
        sel &= (df[k] == v).to_numpy()
    assert sel.sum() == 1, (keys, df)
    return df[sel].iloc[0]


def test_pbte_all_metrics_match_numpy(lw, shared_data):
    de, df, _ = pbte_diffs(shared_data)
    table = leaderboard(lw, datasets=["pbte"])
    assert list(table.columns) == COLUMNS
    row = _row(table, model="pbte-nep")
    _check(row, metrics_from_diffs(de, df, []))
    assert row["energy_rmse"] == pytest.approx(0.41, abs=0.005)
    assert row["force_rmse"] == pytest.approx(39.90, abs=0.005)


def test_pbte_forces_per_species_and_energy_per_containing_structure(lw, shared_data):
    de, df, species = pbte_diffs(shared_data)
    table = leaderboard(lw, datasets=["pbte"], by=["element"])
    for el in ("Pb", "Te"):
        row = _row(table, model="pbte-nep", element=el)
        exp = metrics_from_diffs(de, df[species == el], [])  # every structure holds both species
        _check(row, exp)
        assert row["n_atoms"] == (species == el).sum() and row["n_structures"] == 25


@pytest.mark.parametrize("model", ["unep-v1", "eam-zhou"])
def test_unep_all_metrics_match_numpy(lw, diffs, model):
    row = _row(leaderboard(lw, datasets=[DATASET]), model=model)
    _check(row, unep_metrics(diffs[model]))
    assert (row["n_structures"], row["n_failed"], row["n_missing"]) == (578, 0, 0)


@pytest.mark.parametrize("by", ["subset", "element"])
def test_unep_breakdowns_match_numpy(lw, diffs, by):
    table = leaderboard(lw, datasets=[DATASET], by=[by])
    col = "set" if by == "subset" else "element"
    for model in ("unep-v1", "eam-zhou"):
        labels = np.array(diffs[model][col])
        assert set(table.loc[table["model"] == model, by]) == set(labels)
        for value in set(labels):
            row = _row(table, model=model, **{by: value})
            _check(row, unep_metrics(diffs[model], labels == value))
            assert row["n_structures"] == (labels == value).sum()


def test_combined_breakdown_subset_and_element(lw, diffs):
    table = leaderboard(lw, datasets=[DATASET], by=["subset", "element"], models=["unep-v1"])
    d = diffs["unep-v1"]
    sets, els = np.array(d["set"]), np.array(d["element"])
    row = _row(table, subset="screw", element="W")
    _check(row, unep_metrics(d, (sets == "screw") & (els == "W")))
    assert len(table) == len(set(zip(sets, els, strict=True)))


def test_failed_and_missing_are_counted_not_dropped(lw, diffs):
    table = leaderboard_report(lw, datasets=[DATASET], models=[GAPPY]).table
    row = _row(table, model=GAPPY)
    assert row["n_structures"] == 578
    assert (row["n_predicted"], row["n_failed"], row["n_missing"]) == (
        578 - len(OMIT) - len(FAIL), len(FAIL), len(OMIT))
    _check(row, unep_metrics(diffs[GAPPY]))
    # a model asked for by name shows on a dataset it has no prediction on, all missing
    row = _row(leaderboard(lw, models=[GAPPY], datasets=["pbte"]), model=GAPPY)
    assert (row["n_structures"], row["n_missing"]) == (25, 25) and np.isnan(row["force_rmse"])


def test_pool_with_exclusion_and_n_elements(lw, shared_data, diffs):
    pooled = leaderboard(lw, pool=True, by=["n_elements"])
    de, df, _ = pbte_diffs(shared_data)
    row = _row(pooled, model="pbte-nep", n_elements=2)
    _check(row, metrics_from_diffs(de, df, []))
    row = _row(pooled, model="unep-v1", n_elements=1)
    _check(row, unep_metrics(diffs["unep-v1"]))
    assert row["dataset"] == f"pooled(pbte+{DATASET})"
    # pooled over both datasets, unep-v1 misses the 25 PbTe structures
    whole = _row(leaderboard(lw, pool=True), model="unep-v1")
    assert (whole["n_structures"], whole["n_missing"]) == (603, 25)
    only = leaderboard(lw, pool=True, exclude_datasets=["pbte"])
    assert set(only["dataset"]) == {f"pooled({DATASET})"} and "pbte-nep" not in set(only["model"])


def test_rank_by_metric(lw):
    """Complete models are ranked; the gappy one (failed and missing rows) follows, unranked."""
    report = leaderboard_report(lw, datasets=[DATASET], metric="force_rmse")
    table = report.table
    ranked = table[table["rank"].notna()]
    assert list(ranked["model"]) == list(ranked.sort_values("force_rmse")["model"])
    assert list(ranked["rank"]) == [1, 2]
    assert table["model"].iloc[-1] == GAPPY and pd.isna(table["rank"].iloc[-1])
    assert any(f"not ranked" in n and GAPPY in n for n in report.notes)


def test_per_element_offsets_match_numpy_lstsq(lw, diffs):
    report = leaderboard_report(lw, datasets=[DATASET], models=["eam-zhou"],
                                energy_offset="per-element")
    d = diffs["eam-zhou"]
    els = np.array(d["element"])
    de = np.array(d["de"])
    uniq = sorted(set(els))
    x = (els[:, None] == np.array(uniq)[None, :]).astype(float)  # single-element structures
    mu = np.linalg.lstsq(x, de, rcond=None)[0]
    got = report.offsets.set_index("element")["shift_ev_per_atom"]
    np.testing.assert_allclose(got[uniq].to_numpy(), mu, rtol=1e-9, atol=1e-12)
    resid = de - x @ mu
    row = _row(report.table, model="eam-zhou")
    assert row["energy_mae"] == pytest.approx(1000 * np.abs(resid).mean(), rel=1e-9)
    assert row["energy_rmse"] == pytest.approx(1000 * np.sqrt((resid**2).mean()), rel=1e-9)
    plain = _row(leaderboard(lw, datasets=[DATASET], models=["eam-zhou"]), model="eam-zhou")
    assert row["energy_rmse"] < plain["energy_rmse"] / 10  # EAM's cohesive-energy zero removed
    # offsets leave forces alone (the shifted table sums per structure, the plain one reads the
    # kept sums: the same numbers added in another order)
    assert row["force_rmse"] == pytest.approx(plain["force_rmse"], rel=1e-12)


def test_bootstrap_is_seeded_and_brackets_the_estimate(lw):
    kw = dict(datasets=[DATASET], ci=95, n_boot=200)
    a = leaderboard_report(lw, seed=1, **kw).table
    b = leaderboard_report(lw, seed=1, **kw).table
    c = leaderboard_report(lw, seed=2, **kw).table
    assert a.equals(b)
    assert not np.allclose(a["force_rmse_lo"], c["force_rmse_lo"])
    for metric in METRICS:
        assert (a[f"{metric}_lo"] <= a[metric] + 1e-12).all()
        assert (a[metric] <= a[f"{metric}_hi"] + 1e-12).all()
    # one model's interval does not depend on which other models were asked for
    alone = leaderboard_report(lw, seed=1, models=["unep-v1"], **kw).table
    assert alone["force_rmse_lo"].iloc[0] == _row(a, model="unep-v1")["force_rmse_lo"]


def test_unknown_names_and_options_are_refused(lw):
    with pytest.raises(NoMatch, match="no dataset named 'nope'"):
        leaderboard(lw, datasets=["nope"])
    with pytest.raises(NoMatch, match="unknown metric"):
        leaderboard(lw, metric="speed")
    with pytest.raises(NoMatch, match="every dataset is excluded"):
        leaderboard(lw, datasets=["pbte"], exclude_datasets=["pbte"])


# -- the CLI -------------------------------------------------------------------------------------

@pytest.fixture
def lcli(loaded):
    from typer.testing import CliRunner

    from cli.app import app

    url, lake = loaded

    def run(*args):
        return CliRunner().invoke(app, ["--url", url, "--lake", lake, *map(str, args)])

    return run


def test_cli_json_keys_without_options(lcli):
    """The foundation's keys, with n_predicted beside the other counts and each record's units
    (issue 16: every format carries the same columns and their units)."""
    res = lcli("leaderboard", "--format", "json")
    assert res.exit_code == 0, res.output
    records = json.loads(res.stdout)
    keys = [*COLUMNS[:4], "n_predicted", *COLUMNS[4:], "units"]
    assert all(list(r) == keys for r in records)
    assert records[0]["units"]["force_rmse"] == "meV/Å"
    assert {(r["model"], r["dataset"]) for r in records} >= {("pbte-nep", "pbte"),
                                                              ("unep-v1", DATASET)}


def test_cli_by_element_records_carry_the_key(lcli, lw):
    res = lcli("leaderboard", "--by", "element", "-d", DATASET, "-f", "json")
    assert res.exit_code == 0, res.output
    records = json.loads(res.stdout)
    api = leaderboard(lw, datasets=[DATASET], by=["element"])
    assert len(records) == len(api) and all("element" in r and "n_predicted" in r for r in records)
    for r in records:
        row = _row(api, model=r["model"], element=r["element"])
        for k in METRICS:
            assert (r[k] is None and np.isnan(row[k])) or r[k] == pytest.approx(row[k], rel=1e-12)


def test_cli_offsets_in_json_and_text(lcli):
    res = lcli("leaderboard", "-d", DATASET, "-m", "eam-zhou", "--energy-offset", "per-element",
               "-f", "json")
    assert res.exit_code == 0, res.output
    (rec,) = json.loads(res.stdout)
    assert set(rec["energy_shifts"]) == {"Ag", "Al", "Au", "Cr", "Cu", "Mg", "Mo", "Ni", "Pb",
                                         "Pd", "Pt", "Ta", "Ti", "V", "W", "Zr"}
    res = lcli("leaderboard", "-d", DATASET, "--energy-offset", "per-element", "-f", "md")
    assert res.exit_code == 0 and "per-element energy shifts" in res.stdout


def test_cli_bad_metric_is_one_line_error(lcli):
    res = lcli("leaderboard", "--metric", "nope")
    assert res.exit_code != 0 and res.output.strip().count("\n") == 0
    assert "unknown metric" in res.output


def test_cli_out_file(lcli, tmp_path: Path):
    out = tmp_path / "t.html"
    res = lcli("leaderboard", "-f", "html", "--out", out)
    assert res.exit_code == 0, res.output
    assert out.read_text().startswith('<table class="warehouse">')


@pytest.mark.parametrize("options", [
    {}, {"by": ["subset"]}, {"by": ["element"]}, {"by": ["n_elements"]},
    {"by": ["subset", "element", "n_elements"]}, {"pool": True}, {"pool": True, "by": ["element"]},
    {"models": ["unep-v1", GAPPY]}, {"datasets": ["pbte"], "models": [GAPPY]},
    {"exclude_datasets": ["pbte"], "by": ["subset"]}, {"metric": "force_norm_rmse"},
    {"metric": "force_norm_mae", "by": ["n_elements"]},
], ids=lambda o: "-".join(f"{k}={v}" for k, v in o.items()) or "plain")
def test_rollup_and_live_query_agree(lw, options):
    """The rollup is a cache: the same table as the live query, fingerprint included."""
    a = leaderboard_report(lw, **options)
    b = leaderboard_report(lw, use_rollup=False, **options)
    pd.testing.assert_frame_equal(a.table, b.table, rtol=1e-12, check_dtype=False)
    assert a.fingerprint == b.fingerprint


def test_rollup_follows_new_ingests(tmp_path, db_url, shared_data):
    """A leaderboard after an ingest includes it: the sums are kept by the ingest itself."""
    from warehouse.keptsums import differences

    with open_warehouse(db_url, str(tmp_path / "lake")) as w:
        ingest_unep(w, shared_data, models=("unep-v1",), sets=("eos",))
        first = leaderboard(w)
        ingest_unep(w, shared_data, models=("eam-zhou",), sets=("eos",))
        second = leaderboard(w)
        assert list(first["model"]) == ["unep-v1"] and set(second["model"]) == {"unep-v1", "eam-zhou"}
        ingest_unep(w, shared_data, models=(), sets=("screw",))  # new members, same models
        third = leaderboard(w)
        assert set(third["n_structures"]) == {226} and set(third["n_missing"]) == {50}
        with w.engine.connect() as conn:
            assert differences(conn).empty


def test_python_api_documented_columns(loaded):
    """Notebook use: open_warehouse + query functions returning DataFrames with fixed columns."""
    from queries.breakdowns import STRUCTURE_COLUMNS, prediction_errors
    from warehouse import open_warehouse as open_wh

    with open_wh(*loaded) as w:
        per = prediction_errors(w, datasets=[DATASET], models=["unep-v1"], by=["subset"])
        table = leaderboard(w, datasets=[DATASET], models=["unep-v1"])
    assert list(per.columns) == ["model", "dataset", "subset", *STRUCTURE_COLUMNS[2:]]
    assert len(per) == 578 and set(per["status"]) == {"ok"}
    rmse = 1000 * np.sqrt(per["f_sq"].sum() / per["f_n"].sum())
    assert rmse == pytest.approx(table["force_rmse"].iloc[0], rel=1e-12)
    assert list(table.columns) == COLUMNS

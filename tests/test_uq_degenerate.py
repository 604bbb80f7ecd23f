"""Degenerate UQ inputs get clear answers: one member, identical members, no references, NaN/failed
and missing predictions, unknown names; plus ensemble add/remove/list."""

from __future__ import annotations

import json
import math

import ase.io
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy import select

from ingest.api import ingest_structures
from ingest.ensembles import add_to_ensemble
from ingest.loader import ingest_run
from queries.uq import uq_summary
from queries.uq_data import read_ensemble_uq
from warehouse import models as m
from unep_fixtures import DATASET, _prediction_frames, fixture_rows, ingest_unep, reference_atoms

SCREW = ("screw",)
PAIR = ("unep-v1", "unep-v1-4-4-30")


def _json(res):
    assert res.exit_code == 0, res.output
    return {(r["quantity"], r["level"]): r for r in json.loads(res.stdout)}


def test_ensemble_commands(wh, cli, shared_data):
    ingest_unep(wh, shared_data, models=PAIR, sets=SCREW)
    res = cli("ensemble", "add", "pair", "--member", PAIR[0], "--member", PAIR[1])
    assert res.exit_code == 0 and "added 2" in res.output
    assert "already members 1" in cli("ensemble", "add", "pair", "-m", PAIR[0]).output
    listed = json.loads(cli("ensemble", "list", "-f", "json").stdout)
    assert listed == [{"ensemble": "pair", "n_members": 2, "members": ",".join(sorted(PAIR)),
                       "description": None}]
    bad = cli("ensemble", "add", "pair", "-m", "no-such-model")
    assert bad.exit_code == 1 and "no model named 'no-such-model'" in bad.output
    assert "removed 1" in cli("ensemble", "remove", "pair", "-m", PAIR[1]).output
    assert "removed 1 members and the ensemble" in cli("ensemble", "remove", "pair").output
    assert json.loads(cli("ensemble", "list", "-f", "json").stdout) == []
    assert cli("uq", "-e", "pair", "-d", DATASET).exit_code == 1


def test_ensemble_of_one_model_says_uncertainty_is_zero(wh, cli, shared_data, tmp_path):
    ingest_unep(wh, shared_data, models=PAIR[:1], sets=SCREW)
    add_to_ensemble(wh, "solo", PAIR[:1])
    got = _json(cli("uq", "-e", "solo", "-d", DATASET, "-f", "json"))
    for r in got.values():
        assert r["n"] > 0 and r["spearman_rho"] is None  # NaN -> null in JSON
        assert "one model" in r["note"] and "undefined" in r["note"]
    text = cli("uq", "-e", "solo", "-d", DATASET)
    assert text.exit_code == 0 and "zero by definition" in text.output
    fig = cli("plot", "uq", "-e", "solo", "-d", DATASET, "--out", tmp_path / "solo.png")
    assert fig.exit_code == 1 and "no pair with U > 0" in fig.output and "one model" in fig.output


def test_identical_members_give_zero_uncertainty_and_undefined_rho(wh, shared_data):
    ingest_unep(wh, shared_data, models=PAIR[:1], sets=SCREW)
    rows = fixture_rows(SCREW)
    with ingest_run(wh, kind="fixture-predictions") as ld:
        ld.add_predictions(ld.model("unep-v1-copy"),
                           _prediction_frames(shared_data, "unep-v1", rows, set()), path="copy")
    add_to_ensemble(wh, "twins", ["unep-v1", "unep-v1-copy"])
    data = read_ensemble_uq(wh, ensemble="twins", datasets=[DATASET])
    assert (data.atom_u == 0).all() and (data.structures["u_energy"] == 0).all()
    summary = uq_summary(data, n_boot=10)
    assert summary["spearman_rho"].isna().all()
    assert summary["note"].str.contains("uncertainty is constant").all()


def test_dataset_without_references_is_a_clear_error(wh, cli, shared_data, tmp_path):
    ingest_unep(wh, shared_data, models=PAIR, sets=SCREW)
    add_to_ensemble(wh, "pair", PAIR)
    bare = [a.copy() for a in reference_atoms(shared_data, "screw")[:3]]
    for a in bare:
        a.calc = None
        a.info.pop("virial", None)
        a.arrays.pop("forces", None)
    path = tmp_path / "bare.xyz"
    ase.io.write(path, bare, format="extxyz")
    ingest_structures(wh, path, dataset="no-labels", level_of_theory="other")
    res = cli("uq", "-e", "pair", "-d", "no-labels")
    assert res.exit_code == 1
    assert "has no reference labels" in res.output and "Traceback" not in res.output
    assert "no dataset named" in cli("uq", "-e", "pair", "-d", "nope").output
    assert "no ensemble named" in cli("uq", "-e", "nope", "-d", DATASET).output


def test_failed_and_missing_predictions_are_counted_and_excluded(wh, cli, shared_data):
    rows = fixture_rows(SCREW)
    ingest_unep(wh, shared_data, models=PAIR, sets=SCREW,
                omit={PAIR[1]: rows[:2]}, fail={PAIR[1]: rows[2:5]})
    add_to_ensemble(wh, "pair", PAIR)
    res = cli("uq", "-e", "pair", "-d", DATASET, "-f", "json", "--n-boot", "20")
    assert res.exit_code == 1 and "--common" in res.output  # one comparison rule: no gaps
    got = _json(cli("uq", "-e", "pair", "-d", DATASET, "-f", "json", "--n-boot", "20", "--common"))
    n = len(rows)
    for (q, level), r in got.items():
        assert (r["n_missing"], r["n_failed"], r["n_no_reference"]) == (2, 3, 0)
        if level == "structure":
            assert r["n"] == n - 5
        assert not math.isnan(r["spearman_rho"])
    data = read_ensemble_uq(wh, ensemble="pair", datasets=[DATASET])
    excluded = data.structures[data.structures["force_status"] != "used"]
    assert excluded["u_force"].isna().all() and len(excluded) == 5
    assert len(data.atom_u) == data.structures.loc[data.structures["force_status"] == "used",
                                                   "n_atoms"].sum()


def test_nan_forces_in_an_ok_prediction_count_as_failed(wh, shared_data):
    """The loader refuses NaN labels; a lake file written by another tool may still hold them."""
    ingest_unep(wh, shared_data, models=PAIR, sets=SCREW)
    add_to_ensemble(wh, "pair", PAIR)
    with wh.session() as s:
        path = s.scalar(select(m.LakeFile.path).where(m.LakeFile.kind == "predicted_forces")
                        .order_by(m.LakeFile.id.desc()).limit(1))
    full = wh.lake.full(path)
    t = pq.read_table(full)
    fx = t["fx"].to_numpy().copy()
    fx[7] = np.nan
    pq.write_table(t.set_column(t.schema.get_field_index("fx"), "fx", pa.array(fx)), full)
    data = read_ensemble_uq(wh, ensemble="pair", datasets=[DATASET])
    assert (data.structures["force_status"] == "failed").sum() == 1
    assert (data.structures["energy_status"] == "used").all()
    assert np.isfinite(data.atom_u).all()


@pytest.mark.parametrize("args, message", [
    (("-d", DATASET), "give --ensemble NAME, or --grades KIND with --model NAME"),
    (("-d", DATASET, "-e", "x", "--top-fraction", "2"), "--top-fraction must be in (0, 1]"),
], ids=["no-source", "bad-fraction"])
def test_bad_options_are_one_line_errors(cli, args, message):
    res = cli("uq", *args)
    assert res.exit_code == 1 and message in res.output


def test_several_datasets_and_breakdown_by_dataset(wh, cli, shared_data):
    ingest_unep(wh, shared_data, models=PAIR, sets=SCREW)
    ingest_unep(wh, shared_data, models=PAIR, sets=("eos",), dataset="second")
    add_to_ensemble(wh, "pair", PAIR)
    res = cli("uq", "-e", "pair", "-d", DATASET, "-d", "second", "--by", "dataset",
              "--level", "structure", "-f", "json", "--n-boot", "10")
    assert res.exit_code == 0, res.output
    got = {(r["quantity"], r["group"]): r["n"] for r in json.loads(res.stdout)}
    assert got == {(q, d): n for q in ("energy", "force")
                   for d, n in ((DATASET, len(fixture_rows(SCREW))),
                                ("second", len(fixture_rows(("eos",)))))}

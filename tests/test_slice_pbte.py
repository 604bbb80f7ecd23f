"""The first slice end to end on real data: GPUMD's PbTe NEP training set and its own outputs.

The leaderboard must give the RMSEs of loss.out's last row and agree to 1e-9 with a numpy
computation straight from the files.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from ase.io import read


@pytest.fixture
def pbte(shared_data: Path) -> Path:
    return shared_data / "gpumd" / "nep_train_PbTe"


def _numpy_metrics(folder: Path) -> dict[str, float]:
    frames = read(folder / "train.xyz", index=":", format="extxyz")
    n = np.array([len(a) for a in frames])
    e_ref = np.array([a.get_potential_energy() for a in frames]) / n
    e_out = np.loadtxt(folder / "energy_train.out")
    f_ref = np.concatenate([a.arrays["force"] for a in frames])
    f_pred = np.loadtxt(folder / "force_train.out")[:, :3]
    de = e_out[:, 0] - e_ref
    df = f_pred - f_ref
    return {
        "energy_mae": 1000 * np.mean(np.abs(de)),
        "energy_rmse": 1000 * np.sqrt(np.mean(de**2)),
        "force_mae": 1000 * np.abs(df).sum() / (3 * n.sum()),
        "force_rmse": 1000 * np.sqrt((df**2).sum() / (3 * n.sum())),
    }


def test_pbte_leaderboard_matches_loss_out_and_numpy(cli, pbte: Path) -> None:
    res = cli("ingest", "structures", pbte / "train.xyz", "--dataset", "pbte")
    assert res.exit_code == 0, res.output
    res = cli("ingest", "gpumd", pbte, "--model", "pbte-nep", "--dataset", "pbte")
    assert res.exit_code == 0, res.output
    res = cli("leaderboard", "--format", "json")
    assert res.exit_code == 0, res.output
    records = json.loads(res.stdout)
    assert len(records) == 1
    row = records[0]
    assert set(row) == {
        "model", "dataset", "n_structures", "n_atoms", "n_predicted", "n_failed", "n_missing",
        "energy_mae", "energy_rmse", "force_mae", "force_rmse", "stress_mae", "stress_rmse",
        "units",  # issue 16: every format carries n_predicted and the units
    }
    assert row["units"]["energy_rmse"] == "meV/atom" and row["n_predicted"] == 25
    assert (row["model"], row["dataset"]) == ("pbte-nep", "pbte")
    assert (row["n_structures"], row["n_atoms"], row["n_failed"], row["n_missing"]) == (25, 6250, 0, 0)
    # loss.out's last row, to its printed precision (5 decimals, eV units)
    last = np.loadtxt(pbte / "loss.out")[-1]
    assert round(row["energy_rmse"] / 1000, 5) == pytest.approx(last[4])
    assert round(row["force_rmse"] / 1000, 5) == pytest.approx(last[5])
    assert row["energy_rmse"] == pytest.approx(0.41, abs=0.005)
    assert row["force_rmse"] == pytest.approx(39.90, abs=0.005)
    expected = _numpy_metrics(pbte)
    for key, value in expected.items():
        assert row[key] == pytest.approx(value, rel=1e-9, abs=1e-12), key
    # the training set has no virial labels, so there is no stress error (NULL, not 0)
    assert row["stress_mae"] is None and row["stress_rmse"] is None


def test_gpumd_ingests_structures_itself_when_new(wh, pbte: Path) -> None:
    from ingest.api import ingest_gpumd
    from queries.leaderboard import leaderboard

    summary = ingest_gpumd(wh, pbte, model="pbte-nep", dataset="pbte")
    assert summary.added["structures"] == 25 and summary.added["predictions"] == 25
    table = leaderboard(wh)
    assert table.loc[0, "n_structures"] == 25
    assert table.loc[0, "force_rmse"] == pytest.approx(_numpy_metrics(pbte)["force_rmse"], rel=1e-9)


def test_predicted_stress_uses_the_virial_convention(wh, pbte: Path) -> None:
    """virial_train.out holds eV/atom, positive under compression, GPUMD order; stored as GPa,
    ASE sign (sigma = -W/V), Voigt order -- and equal to GPUMD's own stress_train.out negated."""
    from sqlalchemy import select

    from ingest.api import ingest_gpumd
    from warehouse import models as m

    ingest_gpumd(wh, pbte, model="pbte-nep", dataset="pbte")
    with wh.session() as s:
        rows = s.execute(
            select(m.Prediction, m.DatasetMember.source_index)
            .join(m.DatasetMember, m.DatasetMember.structure_id == m.Prediction.structure_id)
            .order_by(m.DatasetMember.source_index)
        ).all()
    stored = np.array([[p.stress_xx, p.stress_yy, p.stress_zz, p.stress_yz, p.stress_xz, p.stress_xy]
                       for p, _ in rows])
    gpumd_stress = np.loadtxt(pbte / "stress_train.out")[:, :6]  # GPa, + = compressive, xx yy zz xy yz zx
    expected = -gpumd_stress[:, [0, 1, 2, 4, 5, 3]]
    np.testing.assert_allclose(stored, expected, rtol=2e-5, atol=2e-5)


def test_reingesting_adds_nothing_and_says_so(cli, wh, pbte: Path) -> None:
    cli("ingest", "structures", pbte / "train.xyz", "--dataset", "pbte")
    cli("ingest", "gpumd", pbte, "--model", "pbte-nep", "--dataset", "pbte")
    before = wh.counts()
    for args in (("ingest", "structures", pbte / "train.xyz", "--dataset", "pbte"),
                 ("ingest", "gpumd", pbte, "--model", "pbte-nep", "--dataset", "pbte")):
        res = cli(*args)
        assert res.exit_code == 0, res.output
        assert "nothing new was added" in res.output
    after = wh.counts()
    after.pop("ingest_runs"), before.pop("ingest_runs")
    assert after == before

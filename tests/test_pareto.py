"""Pareto fronts: the pure dominance rule, and fronts over hardware classes priced by the hour."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from ase.calculators.emt import EMT

from ingest.api import ingest_structures
from ingest.demo import demo_files
from ingest.evaluate import run_evaluate
from ingest.timings import ingest_timings
from queries.pareto import pareto, pareto_front, parse_prices
from warehouse.errors import NoMatch

CU = "mlearn-Cu-test"
H100, EPYC = "1x NVIDIA H100", "AMD EPYC 9654 x192 cores"


class ScaledEMT(EMT):
    """EMT with forces and energies scaled: a second, worse 'model' with a known error."""

    def __init__(self, scale: float = 1.1, **kw):
        super().__init__(**kw)
        self.scale = scale

    def calculate(self, atoms=None, properties=("energy",), system_changes=()):
        super().calculate(atoms, properties, system_changes)
        for key in ("energy", "free_energy", "forces", "stress", "energies"):
            if key in self.results:
                self.results[key] = self.results[key] * self.scale


def scaled_emt(scale: float = 1.1) -> ScaledEMT:
    return ScaledEMT(scale=scale)


@pytest.mark.parametrize("errors, costs, front", [
    ([1, 2, 3], [3, 2, 1], [True, True, True]),
    ([1, 2, 3], [1, 2, 3], [True, False, False]),
    ([1, 1, 2], [2, 2, 1], [True, True, True]),  # exact ties both stay
    ([1, 1], [2, 3], [True, False]),  # same error, dearer: dominated
    ([1, np.nan, 0.5], [1, 0.1, np.nan], [True, False, False]),
], ids=["trade-off", "one-best", "ties", "same-error", "nan"])
def test_pareto_front(errors, costs, front) -> None:
    assert pareto_front(errors, costs).tolist() == front


def test_pareto_front_against_brute_force() -> None:
    rng = np.random.default_rng(7)
    e, c = rng.random(60), rng.random(60)
    got = pareto_front(e, c)
    for i in range(60):
        dominated = any(e[j] <= e[i] and c[j] <= c[i] and (e[j] < e[i] or c[j] < c[i])
                        for j in range(60))
        assert got[i] == (not dominated)


def test_parse_prices() -> None:
    assert parse_prices([f"{H100}=2.5", f"{EPYC}=4"]) == {H100: 2.5, EPYC: 4.0}
    assert parse_prices(["3"], [H100]) == {H100: 3.0}
    with pytest.raises(NoMatch, match="say which class"):
        parse_prices(["3"])
    with pytest.raises(NoMatch, match="not a number"):
        parse_prices([f"{H100}=cheap"])


@pytest.fixture
def two_models(wh, tmp_path: Path):
    """emt and a scaled emt on the Cu set, with timings on a GPU and a CPU class."""
    ingest_structures(wh, demo_files()[CU], dataset=CU, level_of_theory="mlearn-PBE",
                      fmt="mlearn-json")
    run_evaluate(wh, model="emt", calculator="emt", dataset=CU, md_steps=0)
    run_evaluate(wh, model="emt-x1.2", calculator="test_pareto:scaled_emt scale=1.2",
                 dataset=CU, md_steps=0)
    table = tmp_path / "t.csv"
    table.write_text(
        "model,task,hardware,device_count,n_atoms,n_steps,wall_s,atom_steps_per_s\n"
        f"emt,md,{H100},1,,,,2.0e7\n"
        f"emt-x1.2,md,{H100},1,,,,4.0e7\n"
        f"emt,md,{EPYC},,,,,1.0e6\n"
        f"emt-x1.2,md,{EPYC},,,,,5.0e5\n")
    ingest_timings(wh, table)
    return wh


def test_front_on_one_hardware_class(two_models) -> None:
    with pytest.raises(NoMatch, match="several hardware classes"):
        pareto(two_models, metric="force-rmse", datasets=[CU])
    df = pareto(two_models, metric="force-rmse", datasets=[CU], hardware=[H100])
    by = df.set_index("model")
    assert by.loc["emt", "error"] < by.loc["emt-x1.2", "error"]
    assert by.loc["emt", "cost"] == pytest.approx(1 / 2.0e7)
    assert by["on_front"].all()  # emt is more accurate, emt-x1.2 cheaper: a trade-off
    df = pareto(two_models, metric="force-rmse", datasets=[CU], hardware=[EPYC])
    by = df.set_index("model")
    assert by.loc["emt", "on_front"] and not by.loc["emt-x1.2", "on_front"]
    assert by.loc["emt-x1.2", "dominated_by"] == "emt"


def test_front_by_money_across_hardware(two_models, cli) -> None:
    prices = {H100: 2.5, EPYC: 4.0}
    df = pareto(two_models, metric="force-rmse", datasets=[CU], price_per_hour=prices)
    assert len(df) == 4 and set(df["hardware"]) == {H100, EPYC}
    row = df[(df["model"] == "emt") & (df["hardware"] == EPYC)].iloc[0]
    assert row["cost"] == pytest.approx(4.0 / 3600 / 1.0e6 * 1e6)
    assert row["cost_unit"] == "money per 1e6 atom-steps"
    front = set(df.loc[df["on_front"], "model"] + " @ " + df.loc[df["on_front"], "hardware"])
    assert front == {f"emt @ {H100}", f"emt-x1.2 @ {H100}"}
    res = cli("pareto", "--metric", "force-rmse", "-d", CU, "--price-per-hour", f"{H100}=2.5",
              "--price-per-hour", f"{EPYC}=4", "-f", "json")
    assert res.exit_code == 0, res.output
    assert len(json.loads(res.stdout)) == 4
    assert "note: error: Force RMSE (meV/Å) from the leaderboard on mlearn-Cu-test" in res.stderr


def test_cli_errors_are_one_line(two_models, cli) -> None:
    res = cli("pareto", "--metric", "force-rmse", "-d", CU)
    assert res.exit_code == 1 and "choose one with --hardware" in res.output
    res = cli("pareto", "--metric", "speed", "-d", CU, "--hardware", H100)
    assert res.exit_code == 1 and "metric 'speed'" in res.output
    res = cli("plot", "pareto", "--out", "x.txt", "-d", CU, "--hardware", H100)
    assert res.exit_code == 1 and ".png" in res.output


def test_pool_of_two_datasets(wh) -> None:
    """The error over a pool of datasets is the atom-weighted pool of the per-dataset errors."""
    from queries.leaderboard import leaderboard

    for name, path in demo_files().items():
        ingest_structures(wh, path, dataset=name, level_of_theory="mlearn-PBE", fmt="mlearn-json")
        run_evaluate(wh, model="emt", calculator="emt", dataset=name, md_steps=2, warmup_steps=1,
                     sizes=[8])
    names = list(demo_files())
    with pytest.raises(NoMatch, match="--pool"):  # never pooled silently
        pareto(wh, metric="force-rmse", datasets=names)
    df = pareto(wh, metric="force-rmse", datasets=names, pool=True)
    per = leaderboard(wh, datasets=names, models=["emt"])
    assert len(per) == 2 and per["n_failed"].sum() == 0
    expected = np.sqrt((per["force_rmse"] ** 2 * per["n_atoms"]).sum() / per["n_atoms"].sum())
    assert df.loc[0, "error"] == pytest.approx(expected, rel=1e-9)
    assert df.loc[0, "datasets"] == "pooled(" + "+".join(sorted(names)) + ")"
    assert df.loc[0, "n_structures"] == per["n_structures"].sum()

"""`warehouse evaluate`: predictions and timings in one provenance run, with real calculators."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from ase.calculators.emt import EMT
from sqlalchemy import select

from ingest.api import ingest_structures
from ingest.calculators import CalculatorError, parse_calculator_spec
from ingest.demo import demo_files
from ingest.evaluate import run_evaluate
from ingest.mdtiming import supercell_repeats
from warehouse import models as m
from warehouse import open_warehouse

CU = "mlearn-Cu-test"
UNEP = "gpumd/potentials/Song-2024-UNEP-v1-AgAlAuCrCuMgMoNiPbPdPtTaTiVWZr.txt"
VARIANTS = ("4-4-30", "6-6-80")
EOS = "gpumd_wizard/unep_v1_dft_ref/eos/ref.xyz"


class FlakyEMT(EMT):
    """EMT that raises on the second structure of a run: the harness must record it and go on.
    The count is shared by every instance, as the harness builds a new calculator after an
    exception."""

    calls = 0

    def __init__(self, fail_on: int = 2, **kw):
        super().__init__(**kw)
        self.fail_on = fail_on

    def calculate(self, atoms=None, properties=("energy",), system_changes=()):
        FlakyEMT.calls += 1
        if FlakyEMT.calls == self.fail_on:
            raise RuntimeError("boom on purpose")
        super().calculate(atoms, properties, system_changes)


def flaky_emt(fail_on: int = 2) -> FlakyEMT:
    return FlakyEMT(fail_on=fail_on)


def _cu(wh) -> None:
    ingest_structures(wh, demo_files()[CU], dataset=CU, level_of_theory="mlearn-PBE",
                      fmt="mlearn-json")


@pytest.mark.parametrize("n_cell, target, expected", [
    (4, 128, 32), (4, 8192, 2048), (2, 1, 1), (135, 256, 2),
], ids=["fcc-128", "fcc-8192", "tiny", "big-cell"])
def test_supercell_repeats(n_cell: int, target: int, expected: int) -> None:
    rep = supercell_repeats(n_cell, target)
    assert int(np.prod(rep)) == expected
    assert max(rep) <= 2 * min(rep)


@pytest.mark.parametrize("text, kind", [
    ("emt", "emt"), ("ase.calculators.emt:EMT", "module"),
    ("test_evaluate_cost:flaky_emt fail_on=3", "module"),
], ids=["emt", "module", "module-kwargs"])
def test_spec_parsing(text: str, kind: str) -> None:
    spec = parse_calculator_spec(text)
    assert spec.kind == kind
    if "fail_on" in text:
        assert spec.kwargs == {"fail_on": 3}


@pytest.mark.parametrize("text, message", [
    ("nope", "not understood"), ("eam:/no/such/file", "no such file"), ("nep:", "say which file"),
    ("emt x=1", "key=value arguments go with module:factory"),
    ("os.path:join a", "not key=value"),
], ids=["unknown", "missing-file", "no-file", "emt-kwargs", "bad-kwarg"])
def test_bad_specs(text: str, message: str) -> None:
    with pytest.raises(CalculatorError, match=message):
        parse_calculator_spec(text)


def test_emt_on_a_fresh_install(cli, wh, tmp_path: Path) -> None:
    from ase.build import bulk

    _cu(wh)
    bulk("Cu", "fcc", a=3.6, cubic=True).write(tmp_path / "cu.xyz")
    res = cli("evaluate", "--model", "emt", "--calculator", "emt", "--dataset", CU,
              "--md-steps", "3", "--warmup", "1", "--sizes", "32,64", "--cell", tmp_path / "cu.xyz")
    assert res.exit_code == 0, res.output
    assert "31 predictions" in res.output and "3 timings" in res.output
    with wh.session() as s:
        runs = {t.ingest_run_id for t in s.scalars(select(m.Timing))}
        runs |= {p.ingest_run_id for p in s.scalars(select(m.Prediction))}
        assert len(runs) == 1 and s.get(m.IngestRun, runs.pop()).kind == "evaluate"
    out = json.loads(cli("timings", "--model", "emt", "-f", "json").output)
    by_task = {(r["task"], r["n_atoms"]) for r in out}
    assert ("md", 32) in by_task and ("md", 64) in by_task
    md = [r for r in out if r["task"] == "md"]
    for r in md:
        assert r["n_steps"] == 3 and r["wall_s"] > 0 and r["software"] == "ASE EMT"
        assert r["atom_steps_per_s"] == pytest.approx(r["n_atoms"] * 3 / r["wall_s"])
        assert r["hardware"].endswith("cores") and r["cpu_cores"] >= 1
    inference = next(r for r in out if r["task"] == "inference")
    assert inference["n_atoms"] == 3178  # every atom of the 31 structures
    lb = json.loads(cli("leaderboard", "-m", "emt", "-f", "json").output)
    assert lb[0]["n_failed"] == 0 and lb[0]["force_rmse"] > 0


def test_a_failing_structure_is_recorded_and_the_rest_go_on(cli, wh) -> None:
    _cu(wh)
    FlakyEMT.calls = 0
    res = cli("evaluate", "-m", "flaky", "-c", "test_evaluate_cost:flaky_emt fail_on=2",
              "-d", CU, "--md-steps", "0")
    assert res.exit_code == 0, res.output
    with wh.session() as s:
        preds = s.scalars(select(m.Prediction)).all()
    failed = [p for p in preds if p.status == "failed"]
    assert len(preds) == 31 and len(failed) == 1
    assert failed[0].message == "RuntimeError: boom on purpose" and failed[0].energy is None


@pytest.mark.parametrize("args, message", [
    (["-c", "nope:thing"], "cannot import nope"),
    (["-c", "emt", "-d", "no-such-set"], "no dataset named"),
    (["-c", "emt", "--sizes", "12,x"], "--sizes"),
], ids=["bad-module", "bad-dataset", "bad-sizes"])
def test_bad_evaluate_input_stores_nothing(cli, wh, args: list[str], message: str) -> None:
    _cu(wh)
    before = wh.counts()
    res = cli("evaluate", "-m", "x", "-d", CU, *args)
    assert res.exit_code == 1 and message in res.output, res.output
    after = wh.counts()
    assert {k: v for k, v in after.items() if k != "ingest_runs"} == \
        {k: v for k, v in before.items() if k != "ingest_runs"}


# -- real NEP models (calorine) on a real UNEP-v1 DFT reference set ---------------------------

@pytest.fixture(scope="module")
def nep_wh(request, tmp_path_factory, shared_data: Path) -> Iterator:
    """One warehouse for the module: the eos set, UNEP-v1 and two variants evaluated once."""
    pytest.importorskip("calorine")
    pg = request.getfixturevalue("_pg")
    tmp = tmp_path_factory.mktemp("nep")
    url = pg.new_url() if pg is not None else f"sqlite:///{tmp / 'c.sqlite'}"
    wh = open_warehouse(url, str(tmp / "lake"))
    ingest_structures(wh, shared_data / EOS, dataset="unep-eos", level_of_theory="UNEP-v1-PBE")
    models = {"unep-v1": shared_data / UNEP}
    models |= {f"unep-v1-{v}": shared_data / f"gpumd_wizard/unep_v1_variants/{v}/nep.txt"
               for v in VARIANTS}
    for name, path in models.items():
        run_evaluate(wh, model=name, calculator=f"nep:{path}", dataset="unep-eos",
                     md_steps=5, warmup_steps=2, sizes=[32, 108])
    wh.models_files = models
    wh.url_lake = (url, str(tmp / "lake"))
    yield wh
    wh.close()


def _stored_predictions(wh, model: str) -> dict[int, tuple[float, np.ndarray, np.ndarray]]:
    """source_index -> (energy, stress, forces) as stored."""
    with wh.session() as s:
        rows = s.execute(
            select(m.DatasetMember.source_index, m.Prediction, m.LakeFile.path)
            .join(m.Prediction, m.Prediction.structure_id == m.DatasetMember.structure_id)
            .join(m.Model, m.Model.id == m.Prediction.model_id)
            .join(m.LakeFile, m.LakeFile.id == m.Prediction.lake_file_id)
            .where(m.Model.name == model)
        ).all()
    forces_by_pid: dict[int, np.ndarray] = {}
    for path in {path for _, _, path in rows}:
        t = wh.lake.read(path).sort_by([("prediction_id", "ascending"), ("atom_index", "ascending")])
        pid = t["prediction_id"].to_numpy()
        f = np.column_stack([t[c].to_numpy() for c in ("fx", "fy", "fz")])
        for k in np.unique(pid):
            forces_by_pid[int(k)] = f[pid == k]
    out = {}
    for idx, p, _ in rows:
        stress = np.array([getattr(p, f"stress_{c}") for c in ("xx", "yy", "zz", "yz", "xz", "xy")])
        out[idx] = (p.energy, stress, forces_by_pid[p.id])
    return out


def test_nep_predictions_agree_with_calorine(nep_wh, shared_data: Path) -> None:
    from ase.io import read
    from ase.units import GPa
    from calorine.calculators import CPUNEP

    frames = read(shared_data / EOS, index=":")
    for name, path in nep_wh.models_files.items():
        stored = _stored_predictions(nep_wh, name)
        assert len(stored) == len(frames) == 176
        calc = CPUNEP(str(path))
        for i, atoms in enumerate(frames):
            atoms = atoms.copy()  # drops the DFT labels' calculator
            energy, stress, forces = stored[i]
            assert energy == pytest.approx(calc.get_potential_energy(atoms), abs=1e-9)
            np.testing.assert_allclose(forces, calc.get_forces(atoms), atol=1e-9)
            np.testing.assert_allclose(stress, calc.get_stress(atoms) / GPa, atol=1e-9)


def test_nep_accuracy_cost_table_and_front(nep_wh, tmp_path: Path) -> None:
    from queries.pareto import pareto, pareto_front
    from queries.timings import timings

    t = timings(nep_wh, task="md")
    assert len(t) == 6 and set(t["n_atoms"]) == {32, 108}
    assert (t["status"] == "ok").all() and (t["software"] == "calorine CPUNEP").all()
    table = pareto(nep_wh, metric="energy-rmse", datasets=["unep-eos"])
    assert set(table["model"]) == set(nep_wh.models_files)
    assert table["error"].notna().all() and (table["cost"] > 0).all()
    assert table["on_front"].any()
    # two sizes (32, 108 atoms) are two timing protocols: one front each, never mixed
    assert table["protocol"].nunique() == 2 and len(table) == 6
    assert any("2 timing protocols" in n for n in table.attrs["notes"])
    for _, part in table.groupby("protocol"):
        np.testing.assert_array_equal(part["on_front"], pareto_front(part["error"], part["cost"]))
        # the bigger variant is the most accurate one here; it is on any front
        assert bool(part.loc[part["error"].idxmin(), "on_front"])
    for _, row in table[~table["on_front"]].iterrows():
        assert row["dominated_by"]


def test_nep_cli_pareto_and_plots(nep_wh, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from cli.app import app

    url, lake = nep_wh.url_lake
    run = lambda *a: CliRunner().invoke(app, ["--url", url, "--lake", lake, *map(str, a)])  # noqa: E731
    res = run("pareto", "--metric", "energy-rmse", "-d", "unep-eos", "-f", "json")
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    assert {r["model"] for r in rows} == set(nep_wh.models_files)
    assert all({"error", "cost", "on_front", "hardware"} <= set(r) for r in rows)
    for fmt in ("table", "md", "latex", "csv"):
        assert run("pareto", "--metric", "energy-rmse", "-d", "unep-eos", "-f", fmt).exit_code == 0
    for kind in ("pareto", "scaling"):
        out = tmp_path / f"{kind}.png"
        args = ["plot", kind, "--out", out] + (["--metric", "energy-rmse", "-d", "unep-eos"]
                                               if kind == "pareto" else [])
        res = run(*args)
        assert res.exit_code == 0, res.output
        assert out.stat().st_size > 10_000


class SmallOnlyEMT(EMT):
    """EMT that refuses cells above 200 atoms: single points work, the MD supercell fails."""

    def calculate(self, atoms=None, properties=("energy",), system_changes=()):
        if len(atoms if atoms is not None else self.atoms) > 200:
            raise MemoryError("cell too big for this test calculator")
        super().calculate(atoms, properties, system_changes)


def small_only_emt() -> SmallOnlyEMT:
    return SmallOnlyEMT()


def test_md_failure_is_a_failed_timing_record(wh) -> None:
    from queries.timings import scaling, timings

    _cu(wh)
    res = run_evaluate(wh, model="small", calculator="test_evaluate_cost:small_only_emt",
                       dataset=CU, md_steps=2, warmup_steps=1, sizes=[300])
    assert res.md[0].wall_s is None and "cell too big" in res.md[0].message
    df = timings(wh, models=["small"], task="md")
    assert df["status"].tolist() == ["failed"] and df["atom_steps_per_s"].isna().all()
    from warehouse.errors import NoMatch

    with pytest.raises(NoMatch):
        scaling(wh, models=["small"])


class _FakeCuda:
    def __init__(self) -> None:
        self.syncs, self.resets = 0, 0

    def is_available(self) -> bool:
        return True

    def synchronize(self) -> None:
        self.syncs += 1

    def reset_peak_memory_stats(self) -> None:
        self.resets += 1

    def max_memory_allocated(self) -> int:
        return 3 * 2**20

    def get_device_name(self, index: int = 0) -> str:
        return "Fake GPU 80GB"


class _FakeTorch:
    def __init__(self) -> None:
        self.cuda = _FakeCuda()

    def device(self, name: str):
        return type("D", (), {"index": int(name.split(":")[1]) if ":" in name else None})()


def test_cuda_protocol_synchronises_and_records_peak_memory(monkeypatch) -> None:
    """Without a GPU: a stand-in torch shows the clock is read after synchronising."""
    from ase.build import bulk

    from ingest.mdtiming import time_md
    from ingest.hardware import detect_hardware

    fake = _FakeTorch()
    monkeypatch.setitem(__import__("sys").modules, "torch", fake)
    hw = detect_hardware("cuda:0")
    assert (hw.device_model, hw.device_count, hw.label) == ("Fake GPU 80GB", 1, "1x Fake GPU 80GB")
    r = time_md(EMT(), bulk("Cu", "fcc", a=3.6, cubic=True), n_atoms=32, steps=2, warmup=1,
                device="cuda")
    assert r.wall_s > 0 and r.peak_memory_mb == 3.0
    assert fake.cuda.syncs == 2 and fake.cuda.resets == 1  # before starting and reading the clock
    assert detect_hardware("cpu").device_model is None


def test_eam_folder_picks_the_file_of_the_structures_element(shared_data: Path) -> None:
    from ase.build import bulk

    from ingest.calculators import setfl_elements

    folder = shared_data / "gpumd_wizard/eam_zhou"
    assert setfl_elements(folder / "Cu.eam.alloy") == ["Cu"]
    pick = parse_calculator_spec(f"eam:{folder}").provider()
    cu, ni = bulk("Cu", "fcc", a=3.61), bulk("Ni", "fcc", a=3.52)
    assert pick(cu) is pick(cu.copy()) and pick(cu) is not pick(ni)
    assert pick(cu).get_potential_energy(cu) == pytest.approx(-3.54, abs=0.05)  # Zhou Cu E_coh
    with pytest.raises(ValueError, match="single-element"):
        pick(bulk("Cu", "fcc", a=3.6, cubic=True) + bulk("Ni", "fcc", a=3.6, cubic=True))
    pick_list = parse_calculator_spec(f"eam:{folder / 'Cu.eam.alloy'},{folder / 'Ni.eam.alloy'}").provider()
    assert pick_list(ni).get_potential_energy(ni) == pytest.approx(pick(ni).get_potential_energy(ni))

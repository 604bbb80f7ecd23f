"""MD runs: GPUMD/LAMMPS/table parsers, derived observables checked against numpy, drift from a
real ASE NVE trajectory, ensemble statistics of the reported spall strengths, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy import func, select

from ingest.md import parse_gpumd_thermo, parse_table
from ingest.md_lammps import parse_lammps_log
from ingest.md_load import RunOptions, ingest_md
from queries.md import drift_table, load_series, observable_stats, recompute_drift, series_overlay
from warehouse import Warehouse
from warehouse import models as m
from warehouse.errors import IngestError

CU = Path("gpumd_tutorials/PdCuNiP_melting/Cu")
SPALL_GPA = [16.69, 17.07, 17.70, 17.47, 16.76]  # five ensemble members of the reference study


def snapshot(wh: Warehouse) -> tuple[dict[str, int], list[str]]:
    with wh.session() as s:
        counts = {t.__tablename__: s.scalar(select(func.count()).select_from(t))
                  for t in (m.MDRun, m.MDSeries, m.MDObservable, m.Model, m.LakeFile, m.Property)}
    return counts, sorted(wh.lake.walk())


def observables(wh: Warehouse, run_id: int | None = None) -> dict[str, m.MDObservable]:
    with wh.session() as s:
        stmt = select(m.MDObservable)
        if run_id is not None:
            stmt = stmt.where(m.MDObservable.md_run_id == run_id)
        return {o.name: o for o in s.scalars(stmt)}


# -- GPUMD thermo.out -----------------------------------------------------------------------


def test_real_gpumd_thermo_columns_units_and_stage_observables(wh, shared_data) -> None:
    folder = shared_data / CU
    summary = ingest_md(wh, folder / "thermo.out", RunOptions(model="nep-pdcunip", system="Cu"))
    assert summary.added == {"models": 1, "md runs": 1, "md series": 1, "md observables": 8}
    with wh.session() as s:
        run = s.scalars(select(m.MDRun)).one()
        series = s.scalars(select(m.MDSeries)).one()
    assert (run.engine, run.engine_version, run.ensemble) == ("GPUMD", "3.5", "NPT")
    assert (run.timestep_fs, run.n_steps, run.n_atoms) == (1.0, 2_000_000, 16900)
    assert series.n_rows == 2000
    assert series.columns == {
        "time": "ps", "step": "step", "stage": "", "temperature": "K", "kinetic_energy": "eV",
        "potential_energy": "eV", "pressure_xx": "GPa", "pressure_yy": "GPa", "pressure_zz": "GPa",
        "pressure_yz": "GPa", "pressure_xz": "GPa", "pressure_xy": "GPa",
        "lx": "Å", "ly": "Å", "lz": "Å"}
    raw = np.loadtxt(folder / "thermo.out")  # the independent read
    df, _ = load_series(wh, run.id, "thermo")
    np.testing.assert_array_equal(df.drop(columns=["time", "step", "stage"]).to_numpy(), raw)
    # run.in: dump_thermo 1000, run 1000000 twice, time_step 1 fs -> a row every ps
    np.testing.assert_allclose(df["time"].to_numpy(), np.arange(1, 2001) * 1.0)
    obs = observables(wh, run.id)
    for stage, rows in ((1, slice(0, 1000)), (2, slice(1000, 2000))):
        t, p = raw[rows, 0], raw[rows, 3:6].mean(axis=1)
        assert obs[f"temperature_mean@stage{stage}"].value == pytest.approx(t.mean(), rel=1e-12)
        assert obs[f"temperature_std@stage{stage}"].value == pytest.approx(t.std(), rel=1e-12)
        assert obs[f"pressure_mean@stage{stage}"].value == pytest.approx(p.mean(), abs=1e-12)
        assert obs[f"pressure_std@stage{stage}"].value == pytest.approx(p.std(), rel=1e-12)
        assert obs[f"temperature_mean@stage{stage}"].unit == "K"
        assert obs[f"pressure_mean@stage{stage}"].extra["n_samples"] == 1000
    assert obs["temperature_mean@stage2"].value == pytest.approx(1800, abs=2)  # npt_scr 1800 K
    again = ingest_md(wh, folder, RunOptions(model="nep-pdcunip", system="Cu"))
    assert again.nothing_new


def test_triclinic_layout_and_nve_stage(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    rows = rng.normal(size=(5, 18))
    np.savetxt(tmp_path / "thermo.out", rows)
    (tmp_path / "run.in").write_text(
        "time_step 2\nensemble nvt_bdp 300 300 100\ndump_thermo 10\nrun 20\n"
        "ensemble nve\ndump_thermo 5\nrun 15\n")
    d = parse_gpumd_thermo(tmp_path / "thermo.out")
    assert list(d.columns)[-9:] == ["ax", "ay", "az", "bx", "by", "bz", "cx", "cy", "cz"]
    np.testing.assert_allclose(d.columns["time"], [0.02, 0.04, 0.05, 0.06, 0.07])
    np.testing.assert_array_equal(d.columns["stage"], [1, 1, 2, 2, 2])
    assert [s.kind for s in d.stages] == ["NVT", "NVE"]
    assert d.meta["ensemble"] == "NVT+NVE" and d.meta["temperature_k"] == 300
    # an equilibration stage that writes no thermo still moves the clock
    (tmp_path / "run.in").write_text(
        "time_step 2\nensemble nvt_bdp 300 300 100\nrun 100\n"
        "ensemble nve\ndump_thermo 5\nrun 25\n")
    d = parse_gpumd_thermo(tmp_path / "thermo.out")
    np.testing.assert_allclose(d.columns["time"], 0.2 + np.arange(1, 6) * 0.01)
    np.testing.assert_array_equal(d.columns["step"], 100 + np.arange(1, 6) * 5)
    assert [s.n_rows for s in d.stages] == [0, 5]


LAMMPS_LOG = """LAMMPS (2 Aug 2023)
units metal
timestep 0.002
fix 1 all nvt temp 300 300 0.1
thermo 10
run 20
Step Temp PotEng TotEng Press
       0   300  -350.0  -345.0   1000
      10   290  -349.0  -345.1   2000
WARNING: something harmless
      20   295  -349.5  -345.2   -500
Loop time of 0.1 on 1 procs for 20 steps with 100 atoms
unfix 1
fix 2 all nve
run 20
Step Temp PotEng TotEng Press
      20   295  -349.5  -345.2   -500
      30   296  -349.6  -345.25  -400
      40   297  -349.7  -345.3  -300
Loop time of 0.1 on 1 procs for 20 steps with 100 atoms
"""


def test_lammps_log_two_runs(tmp_path: Path) -> None:
    path = tmp_path / "log.lammps"
    path.write_text(LAMMPS_LOG)
    (d,) = parse_lammps_log(path)
    # the repeated row 20 is the NVE stage's starting state: kept, at the same time
    np.testing.assert_array_equal(d.columns["step"], [0, 10, 20, 20, 30, 40])
    np.testing.assert_allclose(d.columns["time"], [0, 0.02, 0.04, 0.04, 0.06, 0.08])
    np.testing.assert_allclose(d.columns["pressure"], [0.1, 0.2, -0.05, -0.05, -0.04, -0.03])  # bar->GPa
    assert d.units["pressure"] == "GPa" and d.units["total_energy"] == "eV"
    assert [s.kind for s in d.stages] == ["NVT", "NVE"]
    assert d.stages[0].temperature_k == (300, 300) and d.meta["temperature_k"] == 300
    first, _, rest = LAMMPS_LOG.partition("unfix 1")
    rest = rest.replace("Step Temp PotEng TotEng Press", "Step Temp TotEng")
    for row in ("20   295  -349.5  -345.2   -500", "30   296  -349.6  -345.25  -400",
                "40   297  -349.7  -345.3  -300"):
        step, temp, _, tot, _ = row.split()
        rest = rest.replace(row, f"{step} {temp} {tot}")
    path.write_text(first + "unfix 1" + rest)
    runs = parse_lammps_log(path)
    assert [r.name for r in runs] == ["thermo_run1", "thermo_run2"]


# -- energy drift from a real NVE trajectory -------------------------------------------------


def nve_series(path: Path, timestep_fs: float, n_steps: int, every: int = 5) -> Path:
    """A real NVE trajectory: ASE VelocityVerlet on EMT fcc Cu (3x3x3, 108 atoms) from 300 K."""
    from ase import units
    from ase.build import bulk
    from ase.calculators.emt import EMT
    from ase.md.velocitydistribution import Stationary, thermalize_momenta
    from ase.md.verlet import VelocityVerlet

    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(3)
    atoms.calc = EMT()
    thermalize_momenta(atoms, temperature_K=600, rng=np.random.default_rng(7))
    Stationary(atoms)
    dyn = VelocityVerlet(atoms, timestep=timestep_fs * units.fs)
    rows = []

    def sample() -> None:
        ek, ep = atoms.get_kinetic_energy(), atoms.get_potential_energy()
        rows.append((dyn.nsteps * timestep_fs * 1e-3, ek + ep, ek, ep, atoms.get_temperature()))

    dyn.attach(sample, interval=every)
    dyn.run(n_steps)
    np.savetxt(path, np.array(rows), delimiter=",", comments="",
               header="time [ps],total_energy [eV],kinetic_energy [eV],potential_energy [eV],"
                      "temperature [K]")
    return path


def test_drift_from_ase_nve_matches_numpy_and_bad_timestep_drifts_more(wh, cli, tmp_path) -> None:
    drifts = {}
    for dt, label in ((1.0, "dt1fs"), (10.0, "dt10fs")):
        path = nve_series(tmp_path / f"nve_{label}.csv", dt, 300)
        ingest_md(wh, path, RunOptions(model="emt", system="Cu-fcc-108", label=label,
                                       ensemble="NVE", temperature_k=300, n_atoms=108,
                                       timestep_fs=dt))
        data = np.loadtxt(path, delimiter=",", skiprows=1)
        t, e = data[:, 0], data[:, 1] / 108
        with wh.session() as s:
            run = s.scalars(select(m.MDRun).where(m.MDRun.label == label)).one()
        obs = observables(wh, run.id)
        assert obs["energy_drift_max"].value == pytest.approx(np.abs(e - e[0]).max(), rel=1e-10)
        slope = np.polyfit(t - t[0], e, 1)[0]
        assert obs["energy_drift_slope"].value == pytest.approx(slope, rel=1e-8, abs=1e-15)
        assert obs["energy_drift_max"].unit == "eV/atom"
        again = recompute_drift(wh, run.id, series=path.stem)
        assert again.max_abs_per_atom == pytest.approx(obs["energy_drift_max"].value, rel=1e-12)
        drifts[label] = obs["energy_drift_max"].value
    assert drifts["dt10fs"] > 10 * drifts["dt1fs"]
    table = drift_table(wh).table
    assert list(table["label"]) == ["dt10fs", "dt1fs"] or set(table["label"]) == {"dt1fs", "dt10fs"}
    res = cli("md", "drift", "-f", "json")
    assert res.exit_code == 0, res.output
    rows = {r["label"]: r for r in json.loads(res.stdout)}
    assert rows["dt1fs"]["drift_max_mev_per_atom"] == pytest.approx(1000 * drifts["dt1fs"])
    out = tmp_path / "drift.png"
    res = cli("plot", "md", "drift", "--out", out)
    assert res.exit_code == 0, res.output
    assert out.stat().st_size > 1000


# -- ensemble statistics: the five spall strengths ------------------------------------------


def add_ensemble(wh: Warehouse, name: str, models: list[str]) -> None:
    with wh.session() as s, s.begin():
        ens = m.Ensemble(name=name)
        s.add(ens)
        s.flush()
        ids = dict(s.execute(select(m.Model.name, m.Model.id)).all())
        s.add_all(m.EnsembleMember(ensemble_id=ens.id, model_id=ids[n]) for n in models)


def test_spall_strength_ensemble_statistics(wh, cli, tmp_path: Path) -> None:
    members = [f"unep-shock-{k}" for k in range(1, 6)]
    for name, value in zip(members, SPALL_GPA, strict=True):
        path = tmp_path / f"{name}.csv"
        path.write_text(f"name,value,unit\nspall_strength,{value},GPa\n")
        res = cli("ingest", "md", path, "--model", name, "--system", "Cu-shock",
                  "--ensemble", "shock")
        assert res.exit_code == 0, res.output
    add_ensemble(wh, "unep-shock", members)
    for kwargs in ({"ensemble": "unep-shock"}, {"models": members}):
        table = observable_stats(wh, "spall_strength", **kwargs).table
        stat = dict(zip(table[table["kind"] == "statistic"]["name"],
                        table[table["kind"] == "statistic"]["value"], strict=True))
        assert list(table[table["kind"] == "member"]["value"]) == SPALL_GPA
        assert round(stat["mean"], 2) == 17.14
        assert round(stat["std (population, /K)"], 2) == 0.39
        assert round(stat["std (sample, /(K-1))"], 2) == 0.44
        assert stat["std (population, /K)"] == pytest.approx(np.std(SPALL_GPA))
        assert stat["std (sample, /(K-1))"] == pytest.approx(np.std(SPALL_GPA, ddof=1))
        assert round(stat["relative std (population)"], 1) == 2.3  # "about 2.3%"
    res = cli("md", "observable", "spall_strength", "--ensemble", "unep-shock", "-f", "md")
    assert res.exit_code == 0, res.output
    assert "| statistic | std (population, /K) | - | 0.394 | GPa |" in res.stdout
    assert "| statistic | std (sample, /(K-1)) | - | 0.440 | GPa |" in res.stdout
    assert "| statistic | mean | - | 17.138 | GPa |" in res.stdout


def test_spall_strength_derived_from_profiles(wh, tmp_path: Path) -> None:
    """A shock run's stress profiles: spall strength = the largest tensile stress_zz."""
    rng = np.random.default_rng(1)
    lines = ["time [ps],z [nm],density [g/cm^3],stress_zz [GPa],temperature [K]"]
    for t in (10.0, 20.0, 30.0):
        for z in np.linspace(0, 100, 11):
            lines.append(f"{t},{z},{8.9 + rng.normal(0, .1)},{rng.normal(0, 8)},{300 + t}")
    path = tmp_path / "profiles.csv"
    path.write_text("\n".join(lines) + "\n")
    ingest_md(wh, path, RunOptions(model="m", system="Cu-shock", ensemble="shock"))
    stress = np.loadtxt(path, delimiter=",", skiprows=1)[:, 3]
    obs = observables(wh)
    assert obs["spall_strength"].value == pytest.approx(stress.max())
    assert "temperature_mean" not in obs  # profiles are not time series
    over = series_overlay(wh, series="profiles", column="stress_zz", models=["m"], time=19).table
    assert set(over["x"]) == set(np.linspace(0, 100, 11)) and over["x_unit"].iloc[0] == "nm"


# -- bad input: clear error naming the file and line, nothing stored --------------------------


@pytest.fixture
def seeded(wh, shared_data):
    ingest_md(wh, shared_data / CU, RunOptions(model="nep", system="Cu"))
    return snapshot(wh)


def _torn(tmp_path: Path, shared_data: Path) -> tuple[Path, str]:
    folder = tmp_path / "torn"
    folder.mkdir()
    (folder / "run.in").write_bytes((shared_data / CU / "run.in").read_bytes())
    text = (shared_data / CU / "thermo.out").read_text()
    (folder / "thermo.out").write_text(text[: len(text) - 50])  # the last line loses its end
    return folder / "thermo.out", "line 2000"


def _no_layout(tmp_path: Path, shared_data: Path) -> tuple[Path, str]:
    path = tmp_path / "thermo.out"
    np.savetxt(path, np.ones((4, 10)))
    return path, "line 1"


def _non_monotonic(tmp_path: Path, shared_data: Path) -> tuple[Path, str]:
    path = tmp_path / "length.csv"
    path.write_text("time [ps],length [nm]\n0,1\n1,2\n2,3\n1.5,4\n3,5\n")
    return path, "line 5"


@pytest.mark.parametrize("make", [_torn, _no_layout, _non_monotonic],
                         ids=["torn-last-line", "no-known-layout", "non-monotonic-time"])
def test_bad_input_is_refused_whole(make, cli, wh, tmp_path, shared_data, seeded) -> None:
    path, where = make(tmp_path, shared_data)
    with pytest.raises(IngestError) as err:
        ingest_md(wh, path, RunOptions(model="nep", system="bad", timestep_fs=1.0), every=1000)
    assert str(path) in str(err.value) and where in str(err.value)
    res = cli("ingest", "md", path, "--model", "nep", "--system", "bad", "--timestep-fs", "1",
              "--every", "1000")
    assert res.exit_code == 1
    message = res.output.strip()
    assert message.startswith("Error: ") and "\n" not in message and "Traceback" not in message
    assert str(path) in message and where in message
    assert snapshot(wh) == seeded


def test_table_parser_rules(tmp_path: Path) -> None:
    path = tmp_path / "s.csv"
    path.write_text("step,length [nm]\n0,1\n10,2\n")
    with pytest.raises(IngestError, match="no 'time"):
        parse_table(path)
    d = parse_table(path, timestep_fs=2.0)
    np.testing.assert_allclose(d.columns["time"], [0, 0.02])
    path.write_text("time [fs],length [nm]\n0,1\n10,x\n")
    with pytest.raises(IngestError, match="line 3"):
        parse_table(path)


def test_dislocation_length_overlay_across_members(wh, cli, tmp_path: Path) -> None:
    """A series per member (total dislocation length vs time), overlaid across the ensemble."""
    members = ["shock-a", "shock-b", "shock-c"]
    t = np.linspace(0, 50, 26)
    for k, name in enumerate(members):
        path = tmp_path / f"disl_{name}.parquet"
        length = np.maximum(0, (t - 10) * (3 + k)) * 1e3
        schema = pa.schema([pa.field("time", pa.float64(), metadata={"unit": "ps"}),
                            pa.field("length", pa.float64(), metadata={"unit": "nm"})])
        pq.write_table(pa.table({"time": t, "length": length}, schema=schema), path)
        res = cli("ingest", "md", path, "--model", name, "--system", "Cu-shock",
                  "--series", "dislocation_length", "--ensemble", "shock")
        assert res.exit_code == 0, res.output
    add_ensemble(wh, "shock3", members)
    res = cli("md", "series", "dislocation_length", "length", "--ensemble", "shock3", "-f", "json")
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    assert len(rows) == 3 * len(t) and {r["unit"] for r in rows} == {"nm"}
    last = {r["model"]: r["value"] for r in rows if r["x"] == 50}
    assert last == {"shock-a": 120e3, "shock-b": 160e3, "shock-c": 200e3}
    out = tmp_path / "disl.svg"
    res = cli("plot", "md", "series", "dislocation_length", "length", "--ensemble", "shock3",
              "--out", out)
    assert res.exit_code == 0, res.output
    assert out.read_text().startswith("<?xml")


def test_failed_run_and_reported_observables_via_cli(wh, cli, tmp_path: Path) -> None:
    path = nve_series(tmp_path / "hot.csv", 2.0, 40)
    res = cli("ingest", "md", path, "--model", "emt", "--system", "Cu", "--label", "3000K",
              "--ensemble", "NVE", "--temperature", "3000", "--n-atoms", "108", "--status",
              "failed", "--observable", "melting_point=1357.8:K")
    assert res.exit_code == 0, res.output
    (row,) = json.loads(cli("md", "drift", "-f", "json").stdout)
    assert row["status"] == "failed" and row["temperature_k"] == 3000
    obs = observables(wh)
    assert obs["melting_point"].value == 1357.8 and obs["melting_point"].method == "reported"
    res = cli("ingest", "md", path, "--model", "emt", "--system", "Cu", "--label", "3000K",
              "--observable", "oops")
    assert res.exit_code == 1 and "NAME=VALUE" in res.output


def test_gpumd_nvt_then_nve_drift_per_stage(wh, tmp_path: Path) -> None:
    """The reference studies' protocol in GPUMD: NVT, then NVE; the drift comes from the NVE stage."""
    rng = np.random.default_rng(3)
    n_nvt, n_nve, n_atoms = 10, 50, 250
    rows = np.zeros((n_nvt + n_nve, 12))
    rows[:, 0] = 1000 + rng.normal(0, 10, len(rows))
    rows[:, 1] = 30 + rng.normal(0, 0.5, len(rows))
    energy_nve = -1000 + 0.002 * np.arange(n_nve) + rng.normal(0, 0.01, n_nve)  # eV, drifting
    rows[:n_nvt, 2] = -1030 + rng.normal(0, 0.5, n_nvt)
    rows[n_nvt:, 2] = energy_nve - rows[n_nvt:, 1]
    rows[:, 3:6] = rng.normal(0, 0.1, (len(rows), 3))
    rows[:, 9:12] = 20.0
    np.savetxt(tmp_path / "thermo.out", rows)
    (tmp_path / "model.xyz").write_text(f"{n_atoms}\nlattice\n")
    (tmp_path / "run.in").write_text(
        "potential nep.txt\nvelocity 1000\ntime_step 1\n"
        "ensemble nvt_lan 1000 1000 100\ndump_thermo 100\nrun 1000\n"
        "ensemble nve\ndump_thermo 100\nrun 5000\n")
    ingest_md(wh, tmp_path, RunOptions(model="nep", system="HEA", label="1000K"))
    obs = observables(wh)
    e = energy_nve / n_atoms
    t = 1.0 + np.arange(1, n_nve + 1) * 0.1  # NVE starts after 1000 steps x 1 fs = 1 ps
    assert obs["energy_drift_max"].value == pytest.approx(np.abs(e - e[0]).max(), rel=1e-10)
    assert obs["energy_drift_slope"].value == pytest.approx(np.polyfit(t, e, 1)[0], rel=1e-8)
    assert obs["energy_drift_max"].extra["stage"] == 2
    assert obs["temperature_mean@stage1"].value == pytest.approx(rows[:n_nvt, 0].mean())
    assert "energy_drift_max@stage1" not in obs
    (row,) = drift_table(wh).table.to_dict("records")
    assert (row["ensemble"], row["temperature_k"], row["n_atoms"]) == ("NVT+NVE", 1000, n_atoms)
    assert pd.isna(row["part"])  # the run's one NVE stage: no part name
    # two NVE stages: each gets its own drift, named by stage, and its own row in the table
    (tmp_path / "run.in").write_text(
        "time_step 1\nensemble nvt_lan 1000 1000 100\ndump_thermo 100\nrun 1000\n"
        "ensemble nve\ndump_thermo 100\nrun 2500\nensemble nve\ndump_thermo 100\nrun 2500\n")
    ingest_md(wh, tmp_path, RunOptions(model="nep", system="HEA", label="two-nve"))
    rows = drift_table(wh).table
    two = rows[rows["label"] == "two-nve"]
    assert list(two["part"]) == ["stage2", "stage3"]
    e3 = energy_nve[25:] / n_atoms
    assert two["drift_max_mev_per_atom"].iloc[1] == pytest.approx(1000 * np.abs(e3 - e3[0]).max())

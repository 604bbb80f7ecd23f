"""LAMMPS logs read as LAMMPS writes them (issue 16, defects 4 and 12).

The real logs are LAMMPS's own example and bench logs in ../shared/data/lammps (SOURCES.md,
section 8). No real KOKKOS, GPU-package or ``run 0`` log is there: the three logs below were
written here by hand in the exact format of LAMMPS's output (src/finish.cpp, src/KOKKOS/kokkos.cpp,
lib/gpu/lal_device.cpp); their numbers are invented but self-consistent.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ingest.md_lammps import parse_lammps_log as parse_md
from ingest.timings import ingest_timings, parse_lammps_log as parse_timing
from warehouse.errors import IngestError

ACE_1 = "lammps/mliap_ace_Ta/log.03Mar24.mliap.pytorch.ace.NN.g++.1"
ACE_4 = "lammps/mliap_ace_Ta/log.03Mar24.mliap.pytorch.ace.NN.g++.4"
EAM_1 = "lammps/bench_eam_Cu/log.15Jul25.eam.fixed.g++.1"
EAM_4 = "lammps/bench_eam_Cu/log.15Jul25.eam.fixed.g++.4"
TIO2 = "lammps/meam_spline_TiO2_multirun/log.17Dec2022.meam-spline.TiO2.g++.4"
REAL = [ACE_1, ACE_4, EAM_1, EAM_4, TIO2]
GPUMD_CU = "gpumd_tutorials/PdCuNiP_melting/Cu/thermo.out"

# A KOKKOS run on 4 GPUs per node with 8 MPI ranks (written here, LAMMPS's format).
KOKKOS_LOG = """\
LAMMPS (29 Aug 2024 - Update 1)
KOKKOS mode with Kokkos version 4.3.1 is enabled (src/KOKKOS/kokkos.cpp:72)
  will use up to 4 GPU(s) per node
  using 1 OpenMP thread(s) per MPI task
package kokkos
units           metal
Created 256000 atoms
pair_style      eam/kk
timestep        0.001
fix             1 all nve
thermo          500
run             1000
   Step          Temp          E_pair         E_mol          TotEng         Press
         0   300           -907520         0             -897592.3       1021.5
       500   151.2         -902512.4       0             -897508.7       9012.1
      1000   149.9         -902468.1       0             -897507.6       9001.3
Loop time of 10 on 8 procs for 1000 steps with 256000 atoms

Performance: 8.640 ns/day, 2.778 hours/ns, 100.000 timesteps/s, 25.600 Matom-step/s
95.1% CPU use with 8 MPI tasks x 1 OpenMP threads

Total wall time: 0:00:12
"""

# The GPU package on 2 devices (its banner lists each device).
GPU_PKG_LOG = """\
LAMMPS (2 Aug 2023 - Update 3)
units           metal
Created 32000 atoms
package gpu 2
pair_style      eam/gpu

--------------------------------------------------------------------------
- Using acceleration for eam:
-  with 4 proc(s) per device.
-  Horizontal vector operations: ENABLED
-  Shared memory system: No
--------------------------------------------------------------------------
Device 0: NVIDIA H100 80GB HBM3, 132 CUs, 77/79 GB, 2 GHZ (Mixed Precision)
Device 1: NVIDIA H100 80GB HBM3, 132 CUs, 2 GHZ (Mixed Precision)
--------------------------------------------------------------------------

fix             1 all nve
run             200
   Step          Temp          E_pair         TotEng         Press
         0   300           -113280        -112039.1      18703.573
       200   151.1         -112663.9      -112039.0      51322.821
Loop time of 0.5 on 8 procs for 200 steps with 32000 atoms

Performance: 34.560 ns/day, 0.694 hours/ns, 400.000 timesteps/s, 12.800 Matom-step/s
90.2% CPU use with 8 MPI tasks x 1 OpenMP threads
"""

# A GRACE run: `run 0` set-ups between its MD runs (a run 0 prints no Performance line).
GRACE_RUN0_LOG = """\
LAMMPS (2 Aug 2023 - Update 3)
KOKKOS mode with Kokkos version 4.1.0 is enabled (src/KOKKOS/kokkos.cpp:107)
  will use up to 1 GPU(s) per node
units           metal
Created 1000 atoms
pair_style      grace
timestep        0.001
thermo          50
run 0
   Step          Temp          PotEng         TotEng         Press
         0   0             -4000.5        -4000.5        1200.1
Loop time of 2.1e-06 on 1 procs for 0 steps with 1000 atoms

0.0% CPU use with 1 MPI tasks x 1 OpenMP threads
velocity        all create 600 4928459
fix             1 all nvt temp 300 300 0.1
run 100
   Step          Temp          PotEng         TotEng         Press
         0   600           -4000.5        -3923.0        1500.2
        50   310           -3962.1        -3922.1        1100.3
       100   305           -3961.5        -3922.1        1050.4
Loop time of 4 on 1 procs for 100 steps with 1000 atoms

Performance: 2.160 ns/day, 11.111 hours/ns, 25.000 timesteps/s, 25.000 katom-step/s
99.0% CPU use with 1 MPI tasks x 1 OpenMP threads
unfix 1
fix             2 all nve
run 0
   Step          Temp          PotEng         TotEng         Press
       100   305           -3961.5        -3922.1        1050.4
Loop time of 1.9e-06 on 1 procs for 0 steps with 1000 atoms

0.0% CPU use with 1 MPI tasks x 1 OpenMP threads
run 100
   Step          Temp          PotEng         TotEng         Press
       100   305           -3961.5        -3922.1        1050.4
       150   301           -3961.1        -3922.2        1040.4
       200   302           -3961.2        -3922.3        1030.4
Loop time of 4.1 on 1 procs for 100 steps with 1000 atoms

Performance: 2.107 ns/day, 11.389 hours/ns, 24.390 timesteps/s, 24.390 katom-step/s
99.0% CPU use with 1 MPI tasks x 1 OpenMP threads
"""


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _thermo_rows(path: Path, first_column: str = "Step") -> np.ndarray:
    """The numeric rows of every thermo table of a log, read here independently of the parser."""
    rows, inside, width = [], False, 0
    for line in path.read_text().splitlines():
        toks = line.split()
        if toks and toks[0] == first_column:
            inside, width = True, len(toks)
            continue
        if inside and len(toks) == width:
            try:
                rows.append([float(t) for t in toks])
                continue
            except ValueError:
                pass
        inside = False
    return np.array(rows)


# -- the real logs ------------------------------------------------------------------------------


@pytest.mark.parametrize("rel, n_atoms", [(ACE_1, 128), (ACE_4, 128), (EAM_1, 32000),
                                          (EAM_4, 32000), (TIO2, 2376)],
                         ids=["ace-1", "ace-4", "eam-1", "eam-4", "tio2"])
def test_atom_count_from_the_log(shared_data: Path, rel: str, n_atoms: int) -> None:
    (d,) = parse_md(shared_data / rel)
    assert d.meta["n_atoms"] == n_atoms
    assert all(s.n_atoms == n_atoms for s in d.stages)


def test_norm_yes_energies_are_per_atom(shared_data: Path) -> None:
    """ACE Ta: `thermo_modify norm yes`, so TotEng is eV/atom in the log; stored as a total."""
    (d,) = parse_md(shared_data / ACE_1)
    rows = _thermo_rows(shared_data / ACE_1)
    np.testing.assert_allclose(d.columns["total_energy"], rows[:, 4] * 128)
    assert any("norm yes" in n for n in d.notes)


@pytest.mark.parametrize("rel, drift_mev", [(ACE_1, 90.957), (EAM_1, 0.68625)],
                         ids=["ace", "eam"])
def test_ingest_md_derives_the_drift(shared_data: Path, cli, rel: str, drift_mev: float) -> None:
    """Each NVE log states its atom count, so the drift is derived without --n-atoms.

    ACE: TotEng -10.761296 -> -10.852253 eV/atom (max |dE| = 90.957 meV/atom); EAM: -106662.09 ->
    -106640.13 eV over 32000 atoms (0.68625 meV/atom).
    """
    res = cli("ingest", "md", str(shared_data / rel), "--system", "x", "--model", "m")
    assert res.exit_code == 0, res.output
    assert "atom count is unknown" not in res.output
    res = cli("md", "drift", "-f", "json")
    assert res.exit_code == 0, res.output
    import json

    (row,) = json.loads(res.stdout)
    assert row["n_atoms"] in (128, 32000)
    assert row["drift_max_mev_per_atom"] == pytest.approx(drift_mev, rel=1e-4)


def test_tio2_runs_are_stages(shared_data: Path) -> None:
    """NVE, minimize, reset_timestep 0, NPT: three stages of one series; time never goes back."""
    (d,) = parse_md(shared_data / TIO2)
    assert [s.kind for s in d.stages] == ["NVE", "minimize", "NPT"]
    assert [s.n_steps for s in d.stages] == [100, None, 500]
    t = d.columns["time"]
    assert np.all(np.diff(t) >= 0)
    nve = d.columns["stage"] == 1
    npt = d.columns["stage"] == 3
    assert t[nve][-1] == pytest.approx(100 * 0.2e-3)  # 100 steps of 0.2 fs, in ps
    assert t[npt][-1] == pytest.approx(600 * 0.2e-3)  # the NPT clock continues after the reset
    assert d.columns["step"][npt][-1] == 500  # while LAMMPS's step restarted at 0
    assert np.ptp(t[d.columns["stage"] == 2]) == 0  # a minimisation takes no simulated time


def test_tio2_ingests_with_drift_on_the_nve_stage_only(shared_data: Path, cli) -> None:
    res = cli("ingest", "md", str(shared_data / TIO2), "--system", "TiO2", "--model", "meam")
    assert res.exit_code == 0, res.output
    res = cli("md", "drift", "-f", "json")
    import json

    (row,) = json.loads(res.stdout)
    # TotEng of the NVE block: -14281.975 ... -14281.973 eV over 2376 atoms
    rows = _thermo_rows(shared_data / TIO2)[:11]
    expected = 1000 * np.max(np.abs(rows[:, 5] - rows[0, 5])) / 2376
    assert row["drift_max_mev_per_atom"] == pytest.approx(expected, rel=1e-6)


def test_tio2_timings_skip_the_minimisation(shared_data: Path, wh) -> None:
    recs = parse_timing(shared_data / TIO2)
    assert [r.task for r in recs] == ["md", "minimize", "md"]
    assert recs[1].atom_steps_per_s is None
    summary = ingest_timings(wh, shared_data / TIO2, model="meam")
    assert summary.added["timings"] == 2
    assert any("minimize" in n and "not stored" in n for n in summary.notes)
    from queries.timings import timings

    df = timings(wh, models=["meam"])
    assert sorted(df["atom_steps_per_s"]) == [38219.0, 43484.0]


@pytest.mark.parametrize("rel", REAL, ids=["ace-1", "ace-4", "eam-1", "eam-4", "tio2"])
def test_every_real_log_through_both_commands(shared_data: Path, cli, rel: str) -> None:
    res = cli("ingest", "md", str(shared_data / rel), "--system", "s", "--model", "m")
    assert res.exit_code == 0, res.output
    res = cli("ingest", "timings", str(shared_data / rel), "--model", "m")
    assert res.exit_code == 0, res.output
    assert "unknown CPU" in cli("timings", "-f", "csv").stdout  # CPU runs, no accelerator


# -- accelerators and run 0 (logs written here in LAMMPS's format) ------------------------------


def test_kokkos_gpus_from_the_log(tmp_path: Path) -> None:
    (rec,) = parse_timing(_write(tmp_path, "log.kokkos", KOKKOS_LOG))
    assert rec.device_count == 4 and rec.extra["accelerator"] == "KOKKOS"
    assert rec.extra["mpi_tasks"] == 8
    assert rec.hardware == "4x GPU (model not stated)"  # not "unknown CPU x8 cores"
    (d,) = parse_md(tmp_path / "log.kokkos")
    assert d.meta["hardware"] == "4x GPU (model not stated)" and d.meta["n_atoms"] == 256000
    assert rec.atom_steps_per_s == pytest.approx(25.6e6)


def test_hardware_option_names_the_kokkos_device(tmp_path: Path, cli) -> None:
    path = _write(tmp_path, "log.kokkos", KOKKOS_LOG)
    res = cli("ingest", "timings", str(path), "--model", "eam", "--hardware", "NVIDIA A100-SXM4-80GB")
    assert res.exit_code == 0, res.output
    import json

    (row,) = json.loads(cli("timings", "-f", "json").stdout)
    assert row["hardware"] == "4x NVIDIA A100-SXM4-80GB" and row["device_count"] == 4


def test_gpu_package_devices_and_precision(tmp_path: Path) -> None:
    (rec,) = parse_timing(_write(tmp_path, "log.gpu", GPU_PKG_LOG))
    assert rec.extra["accelerator"] == "GPU"
    assert (rec.device_model, rec.device_count, rec.precision) == (
        "NVIDIA H100 80GB HBM3", 2, "mixed")
    assert rec.hardware == "2x NVIDIA H100 80GB HBM3"


def test_run0_stages_are_kept_and_not_timed(tmp_path: Path, cli) -> None:
    path = _write(tmp_path, "log.grace", GRACE_RUN0_LOG)
    recs = parse_timing(path)
    assert [r.task for r in recs] == ["run 0", "md", "run 0", "md"]
    (d,) = parse_md(path)
    assert [s.kind for s in d.stages] == ["run 0", "NVT", "run 0", "NVE"]
    res = cli("ingest", "timings", str(path), "--model", "grace")
    assert res.exit_code == 0, res.output
    assert "run 0" in res.output
    import json

    rows = json.loads(cli("timings", "-f", "json").stdout)
    assert sorted(r["n_steps"] for r in rows) == [100, 100]
    assert {r["hardware"] for r in rows} == {"1x GPU (model not stated)"}
    res = cli("ingest", "md", str(path), "--system", "HEA", "--model", "grace")
    assert res.exit_code == 0, res.output
    (row,) = json.loads(cli("md", "drift", "-f", "json").stdout)
    # the NVE stage starts from the state its first row repeats: -3922.1 -> -3922.3 eV, 1000 atoms
    assert row["drift_max_mev_per_atom"] == pytest.approx(1000 * 0.2 / 1000)


def test_only_run0_is_refused_with_the_reason(tmp_path: Path, wh) -> None:
    path = _write(tmp_path, "log.run0", GRACE_RUN0_LOG[: GRACE_RUN0_LOG.index("velocity")])
    with pytest.raises(IngestError, match="only run 0"):
        ingest_timings(wh, path, model="grace")


# -- md queries on runs without an NVE stage (defect 4) ------------------------------------------


@pytest.mark.parametrize("command", [["md", "drift"], ["plot", "md", "drift", "--out", "d.png"]],
                         ids=["md-drift", "plot-md-drift"])
def test_drift_on_npt_only_run_is_a_clear_answer(shared_data: Path, cli, tmp_path: Path,
                                                 command: list[str]) -> None:
    res = cli("ingest", "md", str(shared_data / GPUMD_CU), "--system", "Cu", "--model", "cu-nep")
    assert res.exit_code == 0, res.output
    if command[0] == "plot":
        command = [*command[:-1], str(tmp_path / "d.png")]
    res = cli(*command)
    assert res.exit_code == 1
    assert res.exception is None or isinstance(res.exception, SystemExit)
    assert "NVE" in res.output and "NPT" in res.output and "KeyError" not in res.output


def test_observable_query_lists_what_is_stored(shared_data: Path, cli) -> None:
    cli("ingest", "md", str(shared_data / GPUMD_CU), "--system", "Cu", "--model", "cu-nep")
    res = cli("md", "observable", "temperature_mean", "-m", "cu-nep")
    assert res.exit_code == 1 and "temperature_mean@stage1" in res.output
    res = cli("md", "observable", "temperature_mean@stage2", "-m", "cu-nep")
    assert res.exit_code == 0, res.output

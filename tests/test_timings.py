"""Timing logs and tables: real GPUMD log, LAMMPS's documented format, bad input, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ingest.timings import (
    detect_engine, ingest_timings, parse_gpumd_log, parse_lammps_log, parse_timings_table,
)
from warehouse.errors import IngestError

GPUMD_LOG = "gpumd_tutorials/PdCuNiP_melting/Cu/log.Cu"

# LAMMPS's log format (src/finish.cpp): a version banner, thermo blocks, then per run
# "Loop time of T on P procs for N steps with M atoms", "Performance: ..." (katom-step/s on
# small systems, Matom-step/s on big ones) and "X% CPU use with P MPI tasks x T OpenMP threads".
LAMMPS_LOG = """\
LAMMPS (2 Aug 2023 - Update 3)
OMP_NUM_THREADS environment is not set. Defaulting to 1 thread. (src/comm.cpp:98)
  using 1 OpenMP thread(s) per MPI task
units metal
lattice fcc 3.615
Lattice spacing in x,y,z = 3.615 3.615 3.615
Created 32000 atoms
pair_style eam/alloy
Neighbor list info ...
Setting up Verlet run ...
  Unit style    : metal
  Current step  : 0
  Time step     : 0.001
Per MPI rank memory allocation (min/avg/max) = 5.123 | 5.123 | 5.123 Mbytes
   Step          Temp          E_pair         TotEng         Press
         0   300           -113760.01     -112519.21      1432.1123
      1000   151.23861     -113133.72     -112508.19      8521.5512
Loop time of 21.5062 on 4 procs for 1000 steps with 32000 atoms

Performance: 4.018 ns/day, 5.974 hours/ns, 46.498 timesteps/s, 1.488 Matom-step/s
99.6% CPU use with 4 MPI tasks x 1 OpenMP threads

MPI task timing breakdown:
Section |  min time  |  avg time  |  max time  |%varavg| %total
---------------------------------------------------------------
Pair    | 17.213     | 17.496     | 17.759     |   4.6 | 81.35

Setting up Verlet run ...
   Step          Temp          E_pair         TotEng         Press
      1000   151.23861     -113133.72     -112508.19      8521.5512
      1500   148.9           -113128.1      -112508.1       8400.2
Loop time of 2.5 on 2 procs for 500 steps with 500 atoms

Performance: 17.280 ns/day, 1.389 hours/ns, 200.000 timesteps/s, 100.000 katom-step/s
98.1% CPU use with 1 MPI tasks x 2 OpenMP threads

Total wall time: 0:00:24
"""


def _write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def _state(wh, lake_path: Path) -> tuple[dict, set]:
    files = {p for p in lake_path.rglob("*") if p.is_file()} if lake_path.exists() else set()
    counts = wh.counts()
    counts.pop("ingest_runs")  # a failed attempt leaves its provenance row, by design
    return counts, files


def test_real_gpumd_log_gives_what_it_prints(shared_data: Path) -> None:
    recs = parse_gpumd_log(shared_data / GPUMD_LOG)
    assert [r.atom_steps_per_s for r in recs] == [5.11569e06, 5.03693e06]
    assert [r.wall_s for r in recs] == [3303.56, 3355.22]
    for r in recs:
        assert (r.device_model, r.device_count, r.n_atoms, r.n_steps) == (
            "NVIDIA GeForce RTX 3080 Ti", 1, 16900, 1_000_000)
        assert r.hardware == "1x NVIDIA GeForce RTX 3080 Ti"
        assert (r.software, r.software_version, r.composition) == ("GPUMD", "3.5", "Cu16900")
        assert r.extra["ensemble"] == "NPT"
        # GPUMD's printed speed is atoms x steps / time, to its 6 printed digits
        assert r.atom_steps_per_s == pytest.approx(r.n_atoms * r.n_steps / r.wall_s, rel=1e-5)


def test_lammps_log_runs_units_and_tasks(tmp_path: Path) -> None:
    recs = parse_lammps_log(_write(tmp_path, "log.lammps", LAMMPS_LOG))
    assert len(recs) == 2
    big, small = recs
    assert (big.n_atoms, big.n_steps, big.wall_s) == (32000, 1000, 21.5062)
    assert big.atom_steps_per_s == pytest.approx(1.488e6)  # Matom-step/s read with its unit
    assert big.cpu_cores == 4 and big.extra["mpi_tasks"] == 4 and big.extra["openmp_threads"] == 1
    assert big.software == "LAMMPS" and big.software_version == "2 Aug 2023 - Update 3"
    assert small.atom_steps_per_s == pytest.approx(1.0e5)
    assert small.cpu_cores == 2 and small.extra["openmp_threads"] == 2
    assert small.extra["timesteps_per_s"] == pytest.approx(200.0)


def test_lammps_log_without_performance_line_uses_loop_time(tmp_path: Path) -> None:
    text = "\n".join(l for l in LAMMPS_LOG.splitlines() if not l.startswith("Performance"))
    recs = parse_lammps_log(_write(tmp_path, "log.lammps", text))
    assert recs[0].atom_steps_per_s == pytest.approx(32000 * 1000 / 21.5062)
    assert recs[0].extra["performance_line"] is False


@pytest.mark.parametrize("cut, message", [
    ("Time used for this run = 3355.22", "truncated"),
    ("Run 1000000 steps.", "no 'Speed of this run"),
], ids=["gpumd-second-run-cut", "gpumd-no-speed-line"])
def test_truncated_gpumd_log(shared_data: Path, tmp_path: Path, cut: str, message: str) -> None:
    text = (shared_data / GPUMD_LOG).read_text()
    if cut.startswith("Time"):
        text = text[: text.index(cut)]
    else:
        text = text[: text.index(cut)]  # banner and set-up only: no run, no speed line
    with pytest.raises(IngestError, match=message):
        parse_gpumd_log(_write(tmp_path, "log.cut", text))


def test_truncated_lammps_log(tmp_path: Path) -> None:
    text = LAMMPS_LOG[: LAMMPS_LOG.index("Loop time of 2.5")]
    with pytest.raises(IngestError, match=r"line 2\d: a run starts here.*truncated"):
        parse_lammps_log(_write(tmp_path, "log.lammps", text))


def test_unknown_engine(tmp_path: Path) -> None:
    with pytest.raises(IngestError, match="unknown engine"):
        detect_engine(_write(tmp_path, "md.log", "Some other MD code 1.0\nsteps: 10\n"))


def test_tables_in_three_formats(tmp_path: Path) -> None:
    rows = [{"model": "grace-fs-m", "task": "md", "cpu_model": "AMD EPYC 9654", "cpu_cores": 192,
             "software": "LAMMPS", "n_atoms": 2048000, "n_steps": 100, "wall_s": 407.2,
             "note": "from the paper"},
            {"model": "unep-v1", "task": "training", "device_model": "NVIDIA A100",
             "device_count": 4, "wall_s": 864000, "epochs": 1_000_000}]
    csv_text = "model,task,cpu_model,cpu_cores,device_model,device_count,n_atoms,n_steps,wall_s,epochs,note\n"
    csv_text += "grace-fs-m,md,AMD EPYC 9654,192,,,2048000,100,407.2,,from the paper\n"
    csv_text += "unep-v1,training,,,NVIDIA A100,4,,,864000,1000000,\n"
    paths = [_write(tmp_path, "t.csv", csv_text),
             _write(tmp_path, "t.json", json.dumps(rows)),
             _write(tmp_path, "t.yaml", __import__("yaml").safe_dump({"timings": rows}))]
    for p in paths:
        md, train = parse_timings_table(p)
        assert md.hardware == "AMD EPYC 9654 x192 cores"
        assert md.atom_steps_per_s == pytest.approx(2048000 * 100 / 407.2)
        assert md.extra["note"] == "from the paper"
        assert train.hardware == "4x NVIDIA A100" and train.epochs == 1_000_000


@pytest.mark.parametrize("row, message", [
    ("m,md,,100,10,\n", "needs atom_steps_per_s"),
    ("m,md,abc,100,10,1\n", "n_atoms = 'abc' is not a number"),
    ("m,fly,1,100,10,1\n", "task 'fly'"),
    ("m,md,10,100,10,5\n", "disagrees"),
], ids=["no-rate", "not-a-number", "bad-task", "inconsistent"])
def test_bad_table_rows(tmp_path: Path, row: str, message: str) -> None:
    p = _write(tmp_path, "t.csv", "model,task,n_atoms,n_steps,wall_s,atom_steps_per_s\n" + row)
    with pytest.raises(IngestError, match=rf"t.csv, row 1: .*{message}"):
        parse_timings_table(p)


def test_a_yaml_key_given_twice_is_refused_with_its_line(tmp_path: Path) -> None:
    """PyYAML keeps the last of two equal keys silently: a wall time typed twice must not
    pick one of them unseen."""
    text = ("timings:\n- model: nep\n  task: md\n  software: GPUMD\n  n_atoms: 1000\n"
            "  n_steps: 100\n  wall_s: 10\n  wall_s: 1\n")
    with pytest.raises(IngestError, match=r"t.yaml, line 8: .*'wall_s' is given twice"):
        parse_timings_table(_write(tmp_path, "t.yaml", text))
    # a merge key may be overridden, as YAML means it
    merged = ("base: &b {model: nep, task: md, software: GPUMD, n_atoms: 1000, n_steps: 100,"
              " wall_s: 10}\ntimings:\n- <<: *b\n  wall_s: 20\n")
    (record,) = parse_timings_table(_write(tmp_path, "m.yaml", merged))
    assert record.wall_s == 20


def test_ingest_and_list_gpumd_log(shared_data: Path, cli, wh) -> None:
    res = cli("ingest", "timings", shared_data / GPUMD_LOG, "--model", "pdcunip-nep")
    assert res.exit_code == 0, res.output
    assert "2 timings" in res.output
    again = cli("ingest", "timings", shared_data / GPUMD_LOG, "--model", "pdcunip-nep")
    assert again.exit_code == 0 and "nothing new" in again.output
    res = cli("timings", "--model", "pdcunip-nep", "--task", "md", "--format", "json")
    assert res.exit_code == 0, res.output
    records = json.loads(res.output)
    assert len(records) == 2
    for key in ("model", "task", "hardware", "software", "n_atoms", "n_steps", "wall_s",
                "atom_steps_per_s"):
        assert all(key in r for r in records)
    assert sorted(r["atom_steps_per_s"] for r in records) == [5.03693e06, 5.11569e06]
    assert {r["hardware"] for r in records} == {"1x NVIDIA GeForce RTX 3080 Ti"}
    assert cli("timings", "--format", "md").exit_code == 0


def test_lammps_log_with_hardware_override(tmp_path: Path, wh) -> None:
    path = _write(tmp_path, "log.lammps", LAMMPS_LOG)
    ingest_timings(wh, path, model="eam-zhou", overrides={"cpu_model": "AMD EPYC 7763"})
    from queries.timings import timings

    df = timings(wh, models=["eam-zhou"])
    assert set(df["hardware"]) == {"AMD EPYC 7763 x4 cores", "AMD EPYC 7763 x2 cores"}


@pytest.mark.parametrize("kind", ["truncated", "unknown", "no-speed", "no-model"])
def test_bad_input_stores_nothing(shared_data: Path, tmp_path: Path, cli, wh, lake_path: Path,
                                  kind: str) -> None:
    log = (shared_data / GPUMD_LOG).read_text()
    path = {
        "truncated": lambda: _write(tmp_path, "log.a", log[: log.rindex("Speed of this run")]),
        "unknown": lambda: _write(tmp_path, "log.b", "hello\n"),
        "no-speed": lambda: _write(tmp_path, "log.c", log.replace("Speed of this run", "Pace")),
        "no-model": lambda: _write(tmp_path, "t.json", '[{"n_atoms": 1, "n_steps": 1, "wall_s": 1}]'),
    }[kind]()
    before = _state(wh, lake_path)
    args = ["ingest", "timings", path] + ([] if kind == "no-model" else ["--model", "x"])
    res = cli(*args)
    assert res.exit_code == 1
    assert res.output.startswith("Error: ") and str(path) in res.output
    assert "Traceback" not in res.output
    assert _state(wh, lake_path) == before

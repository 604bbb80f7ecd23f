#!/usr/bin/env python
"""Benchmark: an MD stability table (NVE energy drift vs temperature) from real short runs.

For each model and temperature: fcc Cu 3x3x3 (108 atoms), velocities drawn at T, Langevin NVT
for ``--nvt-ps``, then velocity-Verlet NVE for ``--nve-ps`` (ASE integrators), sampling the NVE
part every ``--every`` steps into a documented series CSV (``time [ps], total_energy [eV], ...``).
A run whose energy goes non-finite, or whose temperature leaves [0, 20 T], is cut at its last
good sample and stored with ``--status failed``. Every series goes through
``warehouse ingest md`` (the drift is derived at ingest from the stored series) and the script
prints ``warehouse md drift --format md`` and writes ``warehouse plot md drift``.

Models: ``emt`` (ASE EMT), and NEP files by name=path (calorine CPUNEP), e.g. the UNEP-v1 file
and its hyper-parameter variants under ../shared/data.

Usage::

    nice python benchmarks/md_stability.py --workdir /tmp/md-bench \\
        --nep unep-v1=../shared/data/gpumd/potentials/Song-2024-UNEP-v1-AgAlAuCrCuMgMoNiPbPdPtTaTiVWZr.txt
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def calculator(spec: str):
    if spec == "emt":
        from ase.calculators.emt import EMT

        return EMT()
    from calorine.calculators import CPUNEP

    return CPUNEP(spec)


def run_one(calc, temperature: float, *, dt_fs: float, nvt_ps: float, nve_ps: float, every: int,
            seed: int) -> tuple[np.ndarray, bool]:
    """NVT then NVE; returns the NVE samples and whether the run stayed sane."""
    from ase import units
    from ase.build import bulk
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import Stationary, thermalize_momenta
    from ase.md.verlet import VelocityVerlet

    atoms = bulk("Cu", "fcc", a=3.63, cubic=True).repeat(3)
    atoms.calc = calc
    thermalize_momenta(atoms, temperature_K=temperature, rng=np.random.default_rng(seed))
    Stationary(atoms)
    Langevin(atoms, dt_fs * units.fs, temperature_K=temperature, friction=0.02 / units.fs,
             fixcm=False, rng=np.random.default_rng(seed + 1)).run(int(round(nvt_ps * 1000 / dt_fs)))
    dyn = VelocityVerlet(atoms, timestep=dt_fs * units.fs)
    rows: list[tuple[float, ...]] = []
    ok = True

    def sample() -> None:
        nonlocal ok
        ek, ep = atoms.get_kinetic_energy(), atoms.get_potential_energy()
        t = atoms.get_temperature()
        if not (np.isfinite(ek + ep) and 0 < t < 20 * temperature):
            ok = False
            raise StopIteration
        rows.append((dyn.nsteps * dt_fs * 1e-3, ek + ep, ek, ep, t))

    dyn.attach(sample, interval=every)
    try:
        dyn.run(int(round(nve_ps * 1000 / dt_fs)))
    except (StopIteration, RuntimeError, ValueError):
        ok = False
    return np.array(rows), ok


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", type=Path, required=True)
    ap.add_argument("--nep", action="append", default=[], help="name=path of a NEP model file")
    ap.add_argument("--no-emt", action="store_true")
    ap.add_argument("--temps", type=float, nargs="+", default=[300, 1000, 2000, 3000])
    ap.add_argument("--dt-fs", type=float, default=2.0)
    ap.add_argument("--nvt-ps", type=float, default=0.5)
    ap.add_argument("--nve-ps", type=float, default=2.0)
    ap.add_argument("--every", type=int, default=10)
    args = ap.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{args.workdir / 'catalog.sqlite'}"
    wh = ["warehouse", "--url", url, "--lake", str(args.workdir / "lake")]
    models = ([] if args.no_emt else [("emt", "emt")]) + [tuple(s.split("=", 1)) for s in args.nep]
    for name, spec in models:
        calc = calculator(spec)
        for k, temp in enumerate(args.temps):
            t0 = time.perf_counter()
            rows, ok = run_one(calc, temp, dt_fs=args.dt_fs, nvt_ps=args.nvt_ps,
                               nve_ps=args.nve_ps, every=args.every, seed=100 + k)
            path = args.workdir / f"nve_{name}_{int(temp)}K.csv"
            if len(rows) >= 2:
                np.savetxt(path, rows, delimiter=",", comments="",
                           header="time [ps],total_energy [eV],kinetic_energy [eV],"
                                  "potential_energy [eV],temperature [K]")
            else:  # nothing to derive a drift from: keep the run and its failure
                path.write_text(f"name,value,unit\nnve_samples,{len(rows)},\n")
            cmd = [*wh, "ingest", "md", str(path), "--model", name, "--system", "Cu-fcc-108",
                   "--label", f"{int(temp)}K", "--series", "nve", "--ensemble", "NVE",
                   "--temperature", str(temp), "--n-atoms", "108", "--timestep-fs",
                   str(args.dt_fs), "--engine", "ASE", "--hardware", "2-core CPU (shared)"]
            if not ok:
                cmd += ["--status", "failed"]
            subprocess.run(cmd, check=True)
            print(f"# {name} {temp:.0f} K: {len(rows)} samples, ok={ok},"
                  f" {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    subprocess.run([*wh, "md", "drift", "--format", "md"], check=True)
    subprocess.run([*wh, "plot", "md", "drift", "--out", str(args.workdir / "drift.png")],
                   check=True)


if __name__ == "__main__":
    main()

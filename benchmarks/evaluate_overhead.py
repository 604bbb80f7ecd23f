#!/usr/bin/env python
"""Benchmark: the overhead of ``warehouse evaluate``'s timing harness against a bare loop.

Same process, same calculator object, same structures, interleaved repetitions:

* **bare**: ``calc.get_potential_energy/get_forces/get_stress(atoms)`` on prepared ASE
  ``Atoms`` (what a user would write by hand);
* **harness**: ``ingest.inference.evaluate_frames`` on the stored frame (builds the Atoms, picks
  the calculator, times each call, checks finiteness, converts stress, builds the record);
  the two arms run back to back per structure, in alternating order, so that the shared
  machine's load changes hit both; the ratio of the sums is the overhead;
* **end to end** (reported, not the < 5 % claim): ``run_evaluate(..., md_steps=0)``, which also
  reads the structures from the lake and writes predictions, error sums and timings;
* **MD**: ``time_md``'s measured seconds per atom-step vs a bare ``VelocityVerlet.run`` on the
  same supercell (the harness only wraps the clock, so the two should agree within noise).

Default: calorine CPUNEP with UNEP-v1 on the UNEP-v1 stacking-fault and EOS DFT sets from
``../shared/data`` (528 structures, 20,240 atoms); falls back to ASE's EMT on the packaged
mlearn Cu/Ni test sets when those are absent. Prints a Markdown table.

Usage::

    nice python benchmarks/evaluate_overhead.py [--repeat 5] [--shared ../shared/data]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ase import units  # noqa: E402
from ase.md.verlet import VelocityVerlet  # noqa: E402

from ingest.api import ingest_structures  # noqa: E402
from ingest.calculators import parse_calculator_spec  # noqa: E402
from ingest.demo import demo_files  # noqa: E402
from ingest.evaluate import run_evaluate  # noqa: E402
from ingest.inference import EvalClock, evaluate_frames, frame_to_atoms  # noqa: E402
from ingest.mdtiming import _thermalise, supercell_repeats, time_md  # noqa: E402
from warehouse import open_warehouse  # noqa: E402
from warehouse.structures import iter_dataset_frames  # noqa: E402

UNEP = "gpumd/potentials/Song-2024-UNEP-v1-AgAlAuCrCuMgMoNiPbPdPtTaTiVWZr.txt"
SETS = ("stacking_fault", "eos")


def setup(tmp: Path, shared: Path) -> tuple[object, str, list[str]]:
    wh = open_warehouse(f"sqlite:///{tmp / 'c.sqlite'}", str(tmp / "lake"))
    if (shared / UNEP).is_file():
        names = []
        for s in SETS:
            ingest_structures(wh, shared / f"gpumd_wizard/unep_v1_dft_ref/{s}/ref.xyz",
                              dataset=f"unep-{s}", level_of_theory="UNEP-v1-PBE")
            names.append(f"unep-{s}")
        return wh, f"nep:{shared / UNEP}", names
    names = []
    for name, path in demo_files().items():
        ingest_structures(wh, path, dataset=name, level_of_theory="mlearn", fmt="mlearn-json")
        names.append(name)
    return wh, "emt", names


def paired(calc, frames, atoms_list, flip: bool) -> tuple[float, float, float]:
    """Per structure, the bare calls and the harness back to back (order alternating), so that
    changes in machine load hit both arms alike. Returns (bare s, harness s, harness's own
    calculator-clock s). ``calc.reset()`` before each arm stops ASE serving cached results."""
    bare = harn = 0.0
    clock = EvalClock()
    for i, (frame, atoms) in enumerate(zip(frames, atoms_list, strict=True)):
        for arm in ((0, 1) if (i + flip) % 2 == 0 else (1, 0)):
            calc.reset()
            t0 = time.perf_counter()
            if arm == 0:
                calc.get_potential_energy(atoms)
                calc.get_forces(atoms)
                calc.get_stress(atoms)
                bare += time.perf_counter() - t0
            else:
                for _ in evaluate_frames(calc, (frame,), clock=clock):
                    pass
                harn += time.perf_counter() - t0
    return bare, harn, clock.seconds


def bare_md(calc, cell, n_atoms: int, steps: int, warmup: int) -> float:
    atoms = cell.repeat(supercell_repeats(len(cell), n_atoms, cell.cell.lengths()))
    atoms.calc = calc
    _thermalise(atoms)
    dyn = VelocityVerlet(atoms, timestep=1.0 * units.fs)
    dyn.run(warmup)
    t0 = time.perf_counter()
    dyn.run(steps)
    return (time.perf_counter() - t0) / (len(atoms) * steps)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    ap.add_argument("--md-atoms", type=int, default=1024)
    ap.add_argument("--md-steps", type=int, default=50)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        wh, spec_text, datasets = setup(Path(d), args.shared)
        spec = parse_calculator_spec(spec_text)
        calc = spec.provider("cpu")(None)
        frames = [f for ds in datasets for _, f in iter_dataset_frames(wh, ds)]
        atoms_list = [frame_to_atoms(f) for f in frames]
        n_atoms = sum(f.n_atoms for f in frames)
        paired(calc, frames[:50], atoms_list[:50], False)  # warm-up: caches, model set-up
        b, h, inside = [], [], []
        for k in range(args.repeat):
            bare, harn, clocked = paired(calc, frames, atoms_list, bool(k % 2))
            b.append(bare)
            h.append(harn)
            inside.append(clocked)
        e2e = []
        for k in range(min(args.repeat, 3)):
            t0 = time.perf_counter()
            for ds in datasets:
                run_evaluate(wh, model=f"m{k}", calculator=spec_text, dataset=ds, md_steps=0)
            e2e.append(time.perf_counter() - t0)
        cell = frame_to_atoms(next(f for f in frames if f.pbc.all()))
        md_b, md_h = [], []
        for _ in range(3):
            md_b.append(bare_md(calc, cell, args.md_atoms, args.md_steps, 5))
            r = time_md(calc, cell, n_atoms=args.md_atoms, steps=args.md_steps, warmup=5)
            md_h.append(r.wall_s / (r.n_atoms * r.n_steps))
        wh.close()
    mb, mh, me = statistics.median(b), statistics.median(h), statistics.median(e2e)
    ratios = [x / y for x, y in zip(h, b, strict=True)]
    outside = [(x - c) / c for x, c in zip(h, inside, strict=True)]
    print(f"calculator: {spec_text.split('/')[-1]}; datasets: {', '.join(datasets)};"
          f" {len(frames)} structures, {n_atoms} atoms; {args.repeat} interleaved repeats (median)")
    print()
    print("| measurement | median s | vs bare loop |")
    print("|---|---:|---:|")
    print(f"| bare loop (calculator calls only) | {mb:.3f} | 1.000 |")
    r = statistics.median(ratios)
    print(f"| evaluate_frames (the harness) | {mh:.3f} | {r:.3f} ({100 * (r - 1):+.1f} %) |")
    print(f"| harness time outside the calculator calls | - | {100 * statistics.median(outside):+.2f} % |")
    print(f"| run_evaluate end to end, md_steps=0 (lake read + DB writes) | {me:.3f} | {me / mb:.3f} |")
    print(f"| MD bare VelocityVerlet, s/atom-step ({args.md_atoms} atoms, {args.md_steps} steps) |"
          f" {statistics.median(md_b):.3e} | 1.000 |")
    print(f"| MD time_md, s/atom-step | {statistics.median(md_h):.3e} |"
          f" {statistics.median(md_h) / statistics.median(md_b):.3f} |")
    print()
    print("all bare:", " ".join(f"{x:.3f}" for x in b))
    print("all harness:", " ".join(f"{x:.3f}" for x in h))
    print("all ratios:", " ".join(f"{x:.4f}" for x in ratios))


if __name__ == "__main__":
    main()

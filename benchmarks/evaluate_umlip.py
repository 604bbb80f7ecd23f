"""uMLIP inference through `warehouse evaluate` on CPU: batched against one structure at a time,
and peak memory as the dataset grows.

    python benchmarks/evaluate_umlip.py --n 200 --batch-size 16

For each model (CHGNet 0.3.0, SevenNet-0) and each mode (``--batch-size 1`` and ``B``) one fresh
process builds the model, warms both paths up on two structures (one-time costs: e3nn code
generation, allocator growth), then runs :func:`ingest.evaluate.run_evaluate` over the dataset
of ``--n`` small rattled cells (1-2 atoms: fcc Cu, bcc W, fcc CuNi) and reports the inference
timing record (atoms per second in the calculator) and its own peak RSS. The memory rows repeat
CHGNet batched on a quarter of the structures: a streaming evaluation has the same peak.
One torch thread (the CPU is shared; see umlip_study.py).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]  # benchmarks/ingest.py

MODELS = {"chgnet-0.3.0": "chgnet:0.3.0", "sevennet-0": "sevennet:7net-0"}


def make_dataset(url: str, lake: str, n: int, work: Path) -> None:
    import numpy as np
    from ase.build import bulk
    from ase.io import write

    from ingest.api import ingest_structures
    from warehouse import open_warehouse

    rng = np.random.default_rng(0)
    protos = [bulk("Cu", "fcc", a=3.61), bulk("W", "bcc", a=3.17), bulk("Cu", "fcc", a=3.58)]
    frames = []
    for i in range(n):
        a = protos[i % 3].copy()
        if i % 3 == 2:
            a = a.repeat((2, 1, 1))
            a.symbols[1] = "Ni"
        a.set_cell(a.cell[:] @ (np.eye(3) + rng.normal(scale=0.01, size=(3, 3))), scale_atoms=True)
        a.positions += rng.normal(scale=0.03, size=a.positions.shape)
        a.info["energy"] = 0.0
        frames.append(a)
    path = work / f"cells{n}.xyz"
    write(path, frames, format="extxyz")
    wh = open_warehouse(url, lake)
    ingest_structures(wh, path, dataset=f"cells{n}", level_of_theory="none")
    wh.close()


def child(url: str, lake: str, model: str, calc: str, dataset: str, batch: int) -> None:
    """One measurement in this (fresh) process; prints a JSON line."""
    import resource

    from ase.build import bulk
    from sqlalchemy import select

    from ingest.calculators import parse_calculator_spec
    from ingest.evaluate import run_evaluate
    from warehouse import models as m
    from warehouse import open_warehouse

    provider = parse_calculator_spec(calc).provider("cpu")
    warm = [bulk("Cu", "fcc", a=3.6), bulk("W", "bcc", a=3.2)]
    if hasattr(provider, "predict_batch"):
        provider.predict_batch(warm)
    provider(warm[0]).get_forces(warm[0])
    wh = open_warehouse(url, lake)
    name = f"{model}-b{batch}-{dataset}"
    r = run_evaluate(wh, model=name, calculator=calc, dataset=dataset, batch_size=batch, md_steps=0)
    with wh.session() as s:
        t = s.scalar(select(m.Timing).join(m.Model).where(m.Model.name == name))
        out = {"model": model, "batch": batch, "dataset": dataset, "structures": r.clock.n_structures,
               "atoms": t.n_atoms, "wall_s": t.wall_s, "atoms_per_s": t.n_atoms / t.wall_s,
               "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
               "hardware": t.hardware, "torch_threads": __import__("torch").get_num_threads()}
    wh.close()
    print(json.dumps(out), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200, help="Structures in the dataset.")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--memory-n", type=int, default=5000,
                    help="Structures of the memory rows (EMT, and CHGNet batched if --memory-umlip).")
    ap.add_argument("--memory-umlip", action="store_true", help="Also CHGNet batched on --memory-n.")
    ap.add_argument("--only-memory", action="store_true", help="Only the memory rows.")
    ap.add_argument("--child", nargs=6, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        url, lake, model, calc, dataset, batch = a.child
        child(url, lake, model, calc, dataset, int(batch))
        return
    work = Path(tempfile.mkdtemp(prefix="umlip-bench-"))
    url, lake = f"sqlite:///{work / 'w.db'}", str(work / "lake")
    from warehouse import migrate, open_warehouse  # noqa: F401  (creates the schema on first use)

    quarter = max(1, a.n // 4)
    for n in sorted({a.n, quarter, a.memory_n}):
        make_dataset(url, lake, n, work)
    runs = [(mdl, calc, f"cells{a.n}", b) for mdl, calc in MODELS.items() for b in (1, a.batch_size)]
    runs.append(("chgnet-0.3.0", MODELS["chgnet-0.3.0"], f"cells{quarter}", a.batch_size))
    if a.only_memory:
        runs = []
    # memory: the same streaming path with a cheap calculator, on 1/50 and all of --memory-n
    runs += [("emt", "emt", f"cells{n}", 1) for n in sorted({quarter, a.memory_n})]
    if a.memory_umlip:
        runs.append(("chgnet-0.3.0", MODELS["chgnet-0.3.0"], f"cells{a.memory_n}", a.batch_size))
    rows = []
    for mdl, calc, ds, b in runs:
        done = subprocess.run([sys.executable, __file__, "--child", url, lake, mdl, calc, ds, str(b)],
                              capture_output=True, text=True, check=True)
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    print(f"hardware: {rows[0]['hardware']}, torch threads {rows[0]['torch_threads']}\n")
    print("| model | batch size | dataset | structures | atoms | wall s | atoms/s | peak RSS MiB |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['batch']} | {r['dataset']} | {r['structures']} | {r['atoms']} |"
              f" {r['wall_s']:.2f} | {r['atoms_per_s']:.1f} | {r['peak_rss_mb']:.0f} |")


if __name__ == "__main__":
    main()

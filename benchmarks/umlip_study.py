"""The seed study's analyses with four universal MLIPs beside UNEP-v1 and the Zhou EAM.

    python benchmarks/umlip_study.py --out docs/

Builds a fresh warehouse under ``--work`` (SQLite), ingests a deterministic subset of each DFT
set of ``../shared/data`` (every k-th structure, k per set below, stated in the doc), evaluates
CHGNet 0.3.0, SevenNet-0, SevenNet-l3i5, SevenNet-MF-0 (PBE modal), UNEP-v1 (calorine) and the
Zhou EAM with ``warehouse evaluate`` (the library call, so each model is loaded once), then
exports every table with the warehouse's own commands (``leaderboard``, ``pareto``, ``uq``;
Markdown and LaTeX) and the figures (``plot pareto``, ``plot uq``, ``plot elements``) into
``--out`` and writes ``--out/UMLIP.md`` around them.

The subsets exist because this CPU (2 cores shared by several jobs) runs the uMLIPs at a few
hundred atoms per second; ``--every 1`` gives the full sets.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

# One torch thread: on a CPU shared by more processes than cores, torch's OpenMP threads spin on
# each other (measured here: CHGNet 17-30x slower with 2 threads than with 1 under load 12).
os.environ.setdefault("OMP_NUM_THREADS", "1")

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
# Python puts this folder first on sys.path, where benchmarks/ingest.py would shadow the package
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
DATA = REPO.parent / "shared" / "data"
UNEP = DATA / "gpumd" / "potentials" / "Song-2024-UNEP-v1-AgAlAuCrCuMgMoNiPbPdPtTaTiVWZr.txt"
EAM = DATA / "gpumd_wizard" / "eam_zhou"

# dataset name -> (file, level of theory, every k-th structure by default)
SETS: dict[str, tuple[Path, str, int]] = {
    "unep-eos": (DATA / "gpumd_wizard/unep_v1_dft_ref/eos/ref.xyz", "VASP-PBE (UNEP-v1)", 4),
    "unep-sf": (DATA / "gpumd_wizard/unep_v1_dft_ref/stacking_fault/ref.xyz", "VASP-PBE (UNEP-v1)", 32),
    "unep-screw": (DATA / "gpumd_wizard/unep_v1_dft_ref/screw/ref.xyz", "VASP-PBE (UNEP-v1)", 25),
    "mlearn-mo": (DATA / "mlearn/data/Mo/test.json", "VASP-PBE (mlearn)", 8),
    "mlearn-ni": (DATA / "mlearn/data/Ni/test.json", "VASP-PBE (mlearn)", 16),
    "mlearn-cu": (DATA / "mlearn/data/Cu/test.json", "VASP-PBE (mlearn)", 16),
}
# model name -> --calculator
MODELS: dict[str, str] = {
    "unep-v1": f"nep:{UNEP}",
    "eam-zhou": f"eam:{EAM}",
    "chgnet-0.3.0": "chgnet:0.3.0",
    "sevennet-0": "sevennet:7net-0",
    "sevennet-mf-0": "sevennet:7net-mf-0:PBE",
    "sevennet-l3i5": "sevennet:7net-l3i5",
}
UMLIPS = ["chgnet-0.3.0", "sevennet-0", "sevennet-l3i5", "sevennet-mf-0"]
MD_ATOMS, MD_STEPS, MD_WARMUP = 32, 5, 2  # one MD timing per model: fcc Ag 2x2x2 of eos frame 0


def subset_file(name: str, src: Path, every: int, work: Path) -> Path:
    """Every ``every``-th structure of ``src`` (0, k, 2k, ...), written in the source's format."""
    out = work / "subsets" / f"{name}{src.suffix}"
    out.parent.mkdir(parents=True, exist_ok=True)
    if src.suffix == ".json":
        items = json.loads(src.read_text())
        out.write_text(json.dumps(items[::every]))
        return out
    from ase.io import read, write

    frames = read(str(src), index=f"::{every}")
    write(str(out), frames, format="extxyz")
    return out


def warehouse(*args: str, env: dict[str, str]) -> str:
    """Run the ``warehouse`` command line as a user would; its stdout."""
    cmd = [str(Path(sys.executable).parent / "warehouse"), *args]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"warehouse {' '.join(args)} failed:\n{done.stderr}")
    return done.stdout


def evaluate_all(url: str, datasets: list[str], models: dict[str, str], batch: int, log) -> dict:
    """Every model on every dataset through :func:`ingest.evaluate.run_evaluate`."""
    from ingest.evaluate import run_evaluate
    from warehouse import open_warehouse

    wall: dict[str, float] = {}
    wh = open_warehouse(url)
    try:
        for model, calc in models.items():
            t0 = time.perf_counter()
            for i, ds in enumerate(datasets):
                md = MD_STEPS if i == 0 else 0  # MD cost once per model, on the first set's cell
                r = run_evaluate(wh, model=model, calculator=calc, dataset=ds,
                                 batch_size=batch if calc.split(":")[0] in ("chgnet", "sevennet") else 1,
                                 md_steps=md, warmup_steps=MD_WARMUP, sizes=(MD_ATOMS,) if md else (),
                                 argv=["umlip_study.py", model, ds])
                log(f"{model} on {ds}: " + "; ".join(r.summary.notes[:2]))
            wall[model] = time.perf_counter() - t0
    finally:
        wh.close() if hasattr(wh, "close") else None
    return wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=REPO / "docs")
    ap.add_argument("--work", type=Path, default=Path("/tmp/umlip-study"))
    ap.add_argument("--every", type=int, default=None, help="Override every set's k (1: full sets).")
    ap.add_argument("--batch-size", type=int, default=1)
    ap.add_argument("--models", default=",".join(MODELS), help="Comma-separated subset of models.")
    ap.add_argument("--skip-evaluate", action="store_true", help="Reuse --work's warehouse.")
    a = ap.parse_args()
    figs = a.out / "umlip"
    figs.mkdir(parents=True, exist_ok=True)
    db = a.work / "study.db"
    env = {**os.environ, "WAREHOUSE_URL": f"sqlite:///{db}", "WAREHOUSE_LAKE": str(a.work / "lake"),
           "PYTHONPATH": str(REPO)}
    os.environ.update({k: env[k] for k in ("WAREHOUSE_URL", "WAREHOUSE_LAKE")})

    def log(msg: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)

    models = {k: v for k, v in MODELS.items() if k in a.models.split(",")}
    everies = {n: a.every or k for n, (_, _, k) in SETS.items()}
    if not a.skip_evaluate:
        shutil.rmtree(a.work, ignore_errors=True)
        a.work.mkdir(parents=True)
        warehouse("db", "upgrade", env=env)
        for name, (src, level, _) in SETS.items():
            path = subset_file(name, src, everies[name], a.work)
            log(warehouse("ingest", "structures", str(path), "--dataset", name,
                          "--level-of-theory", level, env=env).strip())
        wall = evaluate_all(env["WAREHOUSE_URL"], list(SETS), models, a.batch_size, log)
        (a.work / "wall.json").write_text(json.dumps(wall))
    import importlib.util

    found = importlib.util.spec_from_file_location("umlip_report", HERE / "umlip_report.py")
    report = importlib.util.module_from_spec(found)
    found.loader.exec_module(report)

    report.write_report(a.out, figs, env=env, run=warehouse, everies=everies, sets=SETS, models=models,
                 umlips=[m for m in UMLIPS if m in models], log=log)


if __name__ == "__main__":
    main()

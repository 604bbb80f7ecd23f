#!/usr/bin/env python
"""Benchmark: ensemble UQ at DESIGN.md scale (7.5M atoms x 10 members) in bounded memory.

Writes a synthetic ensemble straight into a fresh SQLite catalog and lake (catalog rows by bulk
insert; Parquet files through ``warehouse.lake.Lake.write``, forces stored as float32, which the
reader promotes): 60,000 structures of 125 atoms (1-2 of 16 metals), reference forces, and 10
member models whose forces are reference + a per-structure shared error + per-member noise, both
with a per-structure log-normal scale (so disagreement tracks error). Then, each in a fresh
process so peak RSS is its own:

* ``streamed``: ``queries.uq_data.read_ensemble_uq`` + ``queries.uq.uq_summary`` over the whole
  dataset (lake read in batches of ``BATCH_ATOMS``), wall time and peak RSS;
* ``in-memory``: a plain numpy computation of the same U, e and rho on a 1/10 subset whose arrays
  are all in memory first (load time reported apart), scaled x10;

and reports the largest difference of per-atom U and e between the two on that subset.

Usage::

    nice python benchmarks/uq.py --workdir /tmp/uq-bench        # generate, run, print Markdown
    nice python benchmarks/uq.py --workdir /tmp/uq-bench --keep # keep the ~2 GB of files

Needs about 2 GB of free disk in ``--workdir``; removed afterwards unless ``--keep``.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from warehouse import open_warehouse  # noqa: E402
from warehouse import models as m  # noqa: E402
from warehouse.provenance import new_run  # noqa: E402
from queries.uq import DEFAULT_N_BOOT  # noqa: E402
from queries.uq_data import BATCH_ATOMS  # noqa: E402

ELEMENTS = ["Ag", "Al", "Au", "Cr", "Cu", "Mg", "Mo", "Ni", "Pb", "Pd", "Pt", "Ta", "Ti", "V", "W", "Zr"]
Z_OF = {"Ag": 47, "Al": 13, "Au": 79, "Cr": 24, "Cu": 29, "Mg": 12, "Mo": 42, "Ni": 28, "Pb": 82,
        "Pd": 46, "Pt": 78, "Ta": 73, "Ti": 22, "V": 23, "W": 74, "Zr": 40}
DATASET = "synthetic-uq"
ENSEMBLE = "synthetic-10"


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _insert(conn, table: str, rows: list[dict]) -> None:
    if rows:
        conn.execute(m.Base.metadata.tables[table].insert(), rows)


def generate(url: str, lake: str, *, n_structures: int, atoms_per: int, n_models: int,
             chunk: int, seed: int = 0) -> dict:
    wh = open_warehouse(url, lake)
    t0 = time.perf_counter()
    with wh.session() as s, s.begin():
        run = new_run("benchmark-uq")
        run.status = "ok"
        s.add(run)
        s.flush()
        lot = m.LevelOfTheory(name="synthetic")
        s.add(lot)
        s.flush()
        ds = m.Dataset(name=DATASET, level_of_theory_id=lot.id)
        models = [m.Model(name=f"member-{k:02d}") for k in range(n_models)]
        s.add_all([ds, *models])
        s.flush()
        ens = m.Ensemble(name=ENSEMBLE)
        s.add(ens)
        s.flush()
        s.add_all(m.EnsembleMember(ensemble_id=ens.id, model_id=mo.id) for mo in models)
        ids = {"run": run.id, "level": lot.id, "dataset": ds.id, "models": [mo.id for mo in models]}
    lf_id = 0
    n_bytes = 0
    with wh.engine.begin() as conn:
        for c0 in range(0, n_structures, chunk):
            sids = np.arange(c0, min(c0 + chunk, n_structures)) + 1
            rows, nb, lf_id = _chunk(wh, conn, ids, sids, atoms_per, lf_id, seed)
            n_bytes += nb
    wh.close()
    return {"generate_s": time.perf_counter() - t0, "lake_bytes": n_bytes,
            "n_atoms": n_structures * atoms_per, "n_structures": n_structures, "n_models": n_models}


def _chunk(wh, conn, ids, sids, atoms_per, lf_id, seed):
    """One chunk of structures: positions, reference and member force files plus their rows."""
    rng = np.random.default_rng([seed, int(sids[0])])
    n, a = len(sids), len(sids) * atoms_per
    run = ids["run"]
    two = rng.random(n) < 0.6
    el_a = rng.integers(0, 16, n)
    el_b = (el_a + rng.integers(1, 16, n)) % 16
    pick_b = (rng.random(a) < 0.5) & np.repeat(two, atoms_per)
    pick_b[::atoms_per] = False  # first atom of each structure is element a, second b (if two)
    pick_b[1::atoms_per] = np.repeat(two, 1)
    z_tab = np.array([Z_OF[e] for e in ELEMENTS], dtype=np.int16)
    z = np.where(pick_b, z_tab[np.repeat(el_b, atoms_per)], z_tab[np.repeat(el_a, atoms_per)])
    sid_col = pa.array(np.repeat(sids, atoms_per), pa.int64())
    atom_col = pa.array(np.tile(np.arange(atoms_per, dtype=np.int32), n), pa.int32())
    scale = np.repeat(rng.lognormal(-3.0, 0.8, n), atoms_per).astype(np.float32)[:, None]
    ref = rng.normal(size=(a, 3)).astype(np.float32)
    shared = (ref + rng.normal(size=(a, 3)).astype(np.float32) * scale)  # ensemble-mean error
    files, nbytes = [], 0

    def write(kind, table_name, parts, table):
        nonlocal lf_id, nbytes
        lf_id += 1
        rel = wh.lake.new_path(table_name, parts, run)
        wf = wh.lake.write(rel, table)
        nbytes += wf.n_bytes
        files.append({"id": lf_id, "path": wf.path, "kind": kind, "sha256": wf.sha256,
                      "n_rows": wf.n_rows, "n_bytes": wf.n_bytes, "ingest_run_id": run})
        return lf_id

    pos_id = write("positions", "positions", {"run": run}, pa.table({
        "structure_id": sid_col, "atom_index": atom_col, "Z": pa.array(z, pa.int16()),
        "x": rng.random(a).astype(np.float32), "y": rng.random(a).astype(np.float32),
        "z": rng.random(a).astype(np.float32)}))
    ref_id = write("reference_forces", "reference_forces", {"level": ids["level"]}, pa.table({
        "reference_id": sid_col, "structure_id": sid_col, "atom_index": atom_col,
        "fx": ref[:, 0], "fy": ref[:, 1], "fz": ref[:, 2]}))
    e_ref = rng.normal(-4.0, 0.5, n) * atoms_per
    e_shared = e_ref + rng.normal(size=n) * atoms_per * scale[::atoms_per, 0] * 0.01
    pred_rows = []
    for k, mid in enumerate(ids["models"]):
        f = shared + rng.normal(size=(a, 3)).astype(np.float32) * scale * 0.5
        pid = sids + k * 10_000_000
        fid = write("predicted_forces", "predicted_forces", {"model": f"member-{k:02d}"}, pa.table({
            "prediction_id": pa.array(np.repeat(pid, atoms_per), pa.int64()),
            "structure_id": sid_col, "atom_index": atom_col,
            "fx": f[:, 0], "fy": f[:, 1], "fz": f[:, 2]}))
        e_k = e_shared + rng.normal(size=n) * atoms_per * scale[::atoms_per, 0] * 0.005
        pred_rows += [{"id": int(p), "model_id": mid, "structure_id": int(s), "status": "ok",
                       "energy": float(e), "has_forces": True, "lake_file_id": fid,
                       "ingest_run_id": run} for p, s, e in zip(pid, sids, e_k)]
    _insert(conn, "lake_files", files)
    els = [",".join(sorted({ELEMENTS[x], ELEMENTS[y]})) if t else ELEMENTS[x]
           for x, y, t in zip(el_a, el_b, two)]
    _insert(conn, "structures", [
        {"id": int(s), "hash": f"synthetic-{s}", "order_free_hash": f"synthetic-{s}",
         "n_atoms": atoms_per, "formula": e.replace(",", ""), "elements": e,
         "n_elements": e.count(",") + 1, "cell": [[10, 0, 0], [0, 10, 0], [0, 0, 10]], "pbc": "TTT",
         "volume": 1000.0, "lake_file_id": pos_id, "ingest_run_id": run}
        for s, e in zip(sids, els)])
    _insert(conn, "dataset_members", [
        {"dataset_id": ids["dataset"], "structure_id": int(s), "subset": f"part-{int(s) % 3}",
         "ingest_run_id": run} for s in sids])
    _insert(conn, "references", [
        {"id": int(s), "structure_id": int(s), "level_of_theory_id": ids["level"],
         "energy": float(e), "has_forces": True, "lake_file_id": ref_id, "ingest_run_id": run}
        for s, e in zip(sids, e_ref)])
    _insert(conn, "predictions", pred_rows)
    return len(sids), nbytes, lf_id


def run_streamed(url: str, lake: str, subset_structures: int) -> dict:
    from queries.uq import spearman, uq_summary
    from queries.uq_data import read_ensemble_uq

    wh = open_warehouse(url, lake)
    t0 = time.perf_counter()
    data = read_ensemble_uq(wh, ensemble=ENSEMBLE, datasets=[DATASET])
    t_read = time.perf_counter() - t0
    t1 = time.perf_counter()
    for u, e in ((data.structures["u_energy"], data.structures["e_energy"]),
                 (data.structures["u_force"], data.structures["e_force"]),
                 (data.atom_u, data.atom_e)):
        spearman(np.asarray(u), np.asarray(e))
    t_rho = time.perf_counter() - t1
    t2 = time.perf_counter()
    summary = uq_summary(data)
    t_summary = time.perf_counter() - t2
    t_all = t_read + t_summary
    sub = data.atom_row < subset_structures
    np.save(Path(lake).parent / "streamed_u.npy", data.atom_u[sub])
    np.save(Path(lake).parent / "streamed_e.npy", data.atom_e[sub])
    return {
        "read_s": t_read, "rho_s": t_rho, "summary_s": t_summary, "total_s": t_all,
        "peak_mb": _peak_mb(),
        "rho": {f"{r.quantity}/{r.level}": [r.spearman_rho, r.ci_low, r.ci_high, r.n]
                for r in summary.itertuples()},
    }


def run_in_memory(url: str, lake: str, subset_structures: int, atoms_per: int) -> dict:
    """Plain numpy on the first ``subset_structures`` structures, every array loaded first."""
    import pyarrow.dataset as pads
    from scipy.stats import rankdata

    wh = open_warehouse(url, lake)
    t0 = time.perf_counter()
    hi = subset_structures
    flt = pads.field("structure_id") <= hi

    def load(table: str, cols: list[str]):
        d = pads.dataset(wh.lake.full(table), format="parquet", partitioning="hive")
        t = d.to_table(columns=["structure_id", "atom_index", *cols], filter=flt)
        return t.sort_by([("structure_id", "ascending"), ("atom_index", "ascending")])

    ref_t = load("reference_forces", ["fx", "fy", "fz"])
    ref = np.column_stack([ref_t[c].to_numpy() for c in ("fx", "fy", "fz")]).astype(np.float64)
    members = []
    for k in range(10):
        d = pads.dataset(wh.lake.full(f"predicted_forces/model=member-{k:02d}"), format="parquet")
        t = d.to_table(columns=["structure_id", "atom_index", "fx", "fy", "fz"], filter=flt)
        t = t.sort_by([("structure_id", "ascending"), ("atom_index", "ascending")])
        members.append(np.column_stack([t[c].to_numpy() for c in ("fx", "fy", "fz")]).astype(np.float64))
    forces = np.stack(members)  # (K, A, 3), all in memory
    t_load = time.perf_counter() - t0
    t1 = time.perf_counter()
    mean = forces.mean(axis=0)
    u = np.linalg.norm(forces - mean, axis=2).max(axis=0)
    e = np.linalg.norm(ref - mean, axis=1)
    starts = np.arange(0, len(u), atoms_per)
    u_cfg, e_cfg = np.maximum.reduceat(u, starts), np.maximum.reduceat(e, starts)
    rho_atom = np.corrcoef(rankdata(u), rankdata(e))[0, 1]
    rho_cfg = np.corrcoef(rankdata(u_cfg), rankdata(e_cfg))[0, 1]
    t_compute = time.perf_counter() - t1
    peak = _peak_mb()
    su = np.load(Path(lake).parent / "streamed_u.npy")
    se = np.load(Path(lake).parent / "streamed_e.npy")
    return {"load_s": t_load, "compute_s": t_compute, "peak_mb": peak,
            "max_abs_diff": float(max(np.abs(su - u).max(), np.abs(se - e).max())),
            "rho_atom": float(rho_atom), "rho_cfg": float(rho_cfg),
            }


def _child(mode: str, args) -> dict:
    cmd = [sys.executable, __file__, "--child", mode, "--workdir", str(args.workdir),
           "--structures", str(args.structures), "--atoms-per", str(args.atoms_per)]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode:
        sys.exit(f"{mode} run failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("--workdir", type=Path, required=True)
    ap.add_argument("--structures", type=int, default=60_000)
    ap.add_argument("--atoms-per", type=int, default=125)
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--child", choices=["streamed", "in-memory"])
    args = ap.parse_args()
    url, lake = f"sqlite:///{args.workdir / 'catalog.sqlite'}", str(args.workdir / "lake")
    subset = args.structures // 10
    if args.child == "streamed":
        print(json.dumps(run_streamed(url, lake, subset)))
        return
    if args.child == "in-memory":
        print(json.dumps(run_in_memory(url, lake, subset, args.atoms_per)))
        return
    if args.workdir.exists():
        sys.exit(f"{args.workdir} exists; give a new folder")
    args.workdir.mkdir(parents=True)
    try:
        gen = generate(url, lake, n_structures=args.structures, atoms_per=args.atoms_per,
                       n_models=10, chunk=6000)
        print(json.dumps(gen), file=sys.stderr)
        streamed = _child("streamed", args)
        print(json.dumps(streamed), file=sys.stderr)
        mem = _child("in-memory", args)
        print(json.dumps(mem), file=sys.stderr)
        _report(gen, streamed, mem)
    finally:
        if not args.keep:
            shutil.rmtree(args.workdir, ignore_errors=True)


def _report(gen: dict, s: dict, mem: dict) -> None:
    print(f"synthetic ensemble: {gen['n_structures']:,} structures, {gen['n_atoms']:,} atoms,"
          f" {gen['n_models']} members; lake {gen['lake_bytes'] / 1e9:.2f} GB (float32 forces,"
          f" zstd); generated in {gen['generate_s']:.0f} s\n")
    print("| computation | atoms | wall s | peak RSS MB |")
    print("|---|---:|---:|---:|")
    print(f"| streamed: read lake + U, e (batches of {BATCH_ATOMS:,} atoms) | {gen['n_atoms']:,}"
          f" | {s['read_s']:.1f} | |")
    print(f"| streamed: Spearman rho only, 3 quantity/levels | {gen['n_atoms']:,} | {s['rho_s']:.1f} | |")
    print(f"| streamed: full summary (rho + bootstrap CIs, {DEFAULT_N_BOOT} resamples) |"
          f" {gen['n_atoms']:,} | {s['summary_s']:.1f} | |")
    print(f"| streamed: read + full summary, one process | {gen['n_atoms']:,} | {s['total_s']:.1f} |"
          f" {s['peak_mb']:.0f} |")
    print(f"| in-memory numpy, 1/10 subset: compute only (load {mem['load_s']:.1f} s) |"
          f" {gen['n_atoms'] // 10:,} | {mem['compute_s']:.1f} | {mem['peak_mb']:.0f} |")
    print(f"| in-memory numpy, scaled x10: load + compute (forces alone: {gen['n_atoms'] * 240 / 1e9:.1f}"
          f" GB float64) | {gen['n_atoms']:,} | {10 * (mem['load_s'] + mem['compute_s']):.1f} |"
          f" ~{10 * mem['peak_mb']:.0f} (x10) |")
    print(f"\nlargest |difference| of per-atom U or e between the two on the subset:"
          f" {mem['max_abs_diff']:.1e} eV/Å (float64 rounding order only)")
    for k, (rho, lo, hi, n) in s["rho"].items():
        print(f"- {k}: rho = {rho:.4f} [{lo:.4f}, {hi:.4f}], n = {n:,}")
    print(f"- subset, plain numpy: rho atom = {mem['rho_atom']:.4f}, structure = {mem['rho_cfg']:.4f}")


if __name__ == "__main__":
    main()

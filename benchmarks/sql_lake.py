#!/usr/bin/env python
"""Benchmark: `warehouse sql` per-atom force RMSE per model and element against raw DuckDB.

Builds the synthetic lake of ``benchmarks/uq.py`` (60,000 structures x 125 atoms = 7.5M atoms,
10 models: 75M predicted atoms; SQLite catalog) plus the ``prediction_errors`` rows that pair each
prediction with its reference (the pairing is all the per-atom view needs; the sums are zero
here). Then, each in a fresh process so peak RSS is its own, alternating, ``--repeat`` times:

* ``raw``: DuckDB over the same Parquet files by glob, the model from the Hive partition, the
  element's atomic number from the positions: what an analyst would write by hand;
* ``warehouse``: ``queries.sql.run_sql`` of ``SELECT model, element, sqrt(avg(...)) FROM
  atom_errors GROUP BY ALL`` (catalog attached through the sqlite scanner, the lake's recorded
  files, the joins of the view).

Both return the same numbers (checked). Usage::

    nice python benchmarks/sql_lake.py --workdir /tmp/sql-bench [--structures 60000] [--keep]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

RAW = """
SELECT pf.model, pos.Z AS atomic_number, count(*) AS n_atoms,
       sqrt(avg(((pf.fx - rf.fx)^2 + (pf.fy - rf.fy)^2 + (pf.fz - rf.fz)^2) / 3)) AS force_rmse
FROM read_parquet('{lake}/predicted_forces/*/*.parquet', hive_partitioning = true) pf
JOIN read_parquet('{lake}/reference_forces/*/*.parquet', hive_partitioning = false) rf
  ON rf.structure_id = pf.structure_id AND rf.atom_index = pf.atom_index
JOIN read_parquet('{lake}/positions/*/*.parquet', hive_partitioning = false) pos
  ON pos.structure_id = pf.structure_id AND pos.atom_index = pf.atom_index
GROUP BY ALL ORDER BY ALL
"""

WAREHOUSE = """
SELECT model, element, count(*) AS n_atoms,
       sqrt(avg((dfx * dfx + dfy * dfy + dfz * dfz) / 3)) AS force_rmse
FROM atom_errors GROUP BY ALL ORDER BY ALL
"""


def add_pairs(url: str, lake: str) -> int:
    """One prediction_errors row per prediction: the pairing with its reference (ids as uq.py)."""
    from sqlalchemy import text

    from warehouse import open_warehouse

    wh = open_warehouse(url, lake)
    with wh.engine.begin() as conn:
        rows = conn.execute(text(
            "SELECT p.id, r.id, s.n_atoms FROM predictions p JOIN \"references\" r"
            " ON r.structure_id = p.structure_id JOIN structures s ON s.id = p.structure_id")).all()
        conn.execute(text(
            "INSERT INTO prediction_errors (prediction_id, reference_id, n_atoms, force_n, stress_n)"
            " VALUES (:p, :r, :n, :f, 0)"), [{"p": p, "r": r, "n": n, "f": 3 * n} for p, r, n in rows])
    wh.close()
    return len(rows)


def child(mode: str, url: str, lake: str) -> dict:
    """One timed query, from after the imports (as in a notebook; the CLI's start-up is apart):
    the warehouse's time includes opening the catalog and building its views."""
    import duckdb
    from ase.data import chemical_symbols

    from queries.sql import run_sql
    from warehouse import open_warehouse

    t0 = time.perf_counter()
    if mode == "raw":
        df = duckdb.connect().execute(RAW.format(lake=lake)).df()
        df = df.rename(columns={"atomic_number": "element"})
        df["element"] = [chemical_symbols[z] for z in df.element]
    else:
        df = run_sql(open_warehouse(url, lake), WAREHOUSE)
    seconds = time.perf_counter() - t0
    df = df.sort_values(["model", "element"])
    return {"seconds": seconds, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "rows": len(df), "n_atoms": int(df.n_atoms.sum()), "rmse": df.force_rmse.round(12).tolist()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("--workdir", type=Path, required=True)
    ap.add_argument("--structures", type=int, default=60_000)
    ap.add_argument("--models", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--child", nargs=3, metavar=("MODE", "URL", "LAKE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(*args.child)))
        return
    from uq import generate

    url, lake = f"sqlite:///{args.workdir / 'catalog.sqlite'}", str(args.workdir / "lake")
    if not (args.workdir / "catalog.sqlite").exists():
        args.workdir.mkdir(parents=True, exist_ok=True)
        gen = generate(url, lake, n_structures=args.structures, atoms_per=125,
                       n_models=args.models, chunk=2_000)
        gen["pairs"] = add_pairs(url, lake)
        print(f"generated: {json.dumps(gen)}", file=sys.stderr)
    runs: dict[str, list[dict]] = {"raw": [], "warehouse": []}
    for _ in range(args.repeat):
        for mode in runs:
            out = subprocess.run([sys.executable, __file__, "--workdir", str(args.workdir),
                                  "--child", mode, url, lake], check=True, capture_output=True,
                                 text=True).stdout
            runs[mode].append(json.loads(out))
    raw, wh = runs["raw"][0], runs["warehouse"][0]
    assert raw["n_atoms"] == wh["n_atoms"] and raw["rows"] == wh["rows"], (raw, wh)
    assert max(abs(a - b) for a, b in zip(raw["rmse"], wh["rmse"])) < 1e-9
    t_raw = statistics.median(r["seconds"] for r in runs["raw"])
    t_wh = statistics.median(r["seconds"] for r in runs["warehouse"])
    print(f"| query | median s ({args.repeat} runs) | peak RSS MB |\n|---|---:|---:|")
    print(f"| raw DuckDB over the Parquet globs | {t_raw:.2f} | {max(r['peak_mb'] for r in runs['raw']):.0f} |")
    print(f"| `warehouse sql` on atom_errors | {t_wh:.2f} | {max(r['peak_mb'] for r in runs['warehouse']):.0f} |")
    print(f"\nratio warehouse/raw: {t_wh / t_raw:.2f}x; {wh['n_atoms']:,} predicted atoms,"
          f" {wh['rows']} (model, element) rows, identical RMSEs")
    if not args.keep:
        shutil.rmtree(args.workdir)


if __name__ == "__main__":
    main()

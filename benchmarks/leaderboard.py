#!/usr/bin/env python
"""Benchmark: the leaderboard and a per-element breakdown at DESIGN.md scale, on both engines.

Generates synthetic catalog rows directly into the tables (bulk inserts; COPY on PostgreSQL):
60k structures (3 datasets, 1-4 elements of 16 metals, 20-230 atoms), 30 models, a prediction
per model and structure (0.5 % failed, 1 % missing), their per-structure error sums and
per-species force sums; the rows bypass the writer, so the kept sums are then computed from them
as the migration's backfill does (``warehouse.keptsums.rebuild``, timed). Then times, best of
``--repeat`` after one warm-up:

* the full leaderboard (``queries.leaderboard.leaderboard``: kept sums aggregated + pandas finish),
* the per-element breakdown (``by=["element"]``),
* ``SELECT * FROM v_leaderboard`` and ``v_leaderboard_element``,
* both leaderboards once more with ``use_rollup=False`` (the live join over all prediction rows),
* an ingest of one more model's predictions on every structure, and one of new structures (rows
  written as the benchmark writes them, then the writer's kept-sums step,
  ``warehouse.keptsums.add_run``, timed on its own), each followed by the first leaderboard and
  the first per-element breakdown (timed once: what the first analyst after the ingest waits),
* the same two aggregates in pandas over in-memory frames of the joined per-structure rows
  (loading those frames is not timed): the in-memory baseline the ratio is taken against.

Usage::

    nice python benchmarks/leaderboard.py --url sqlite:////tmp/bench.sqlite
    nice python benchmarks/leaderboard.py --url postgresql://postgres@127.0.0.1:5432/bench_lb

The database must be new or empty (it is created and filled). Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from queries.leaderboard import leaderboard  # noqa: E402
from warehouse import keptsums, open_warehouse  # noqa: E402

ELEMENTS = ["Ag", "Al", "Au", "Cr", "Cu", "Mg", "Mo", "Ni", "Pb", "Pd", "Pt", "Ta", "Ti", "V", "W", "Zr"]


def _bulk(conn, table: str, cols: list[str], rows) -> None:
    """COPY on PostgreSQL, executemany on SQLite, inside the caller's transaction."""
    dbapi = conn.connection.driver_connection
    if conn.dialect.name == "postgresql":
        with dbapi.cursor() as cur, cur.copy(f'COPY "{table}" ({", ".join(cols)}) FROM STDIN') as cp:
            for r in rows:
                cp.write_row(r)
    else:
        q = f'INSERT INTO "{table}" ({", ".join(cols)}) VALUES ({", ".join("?" * len(cols))})'
        dbapi.cursor().executemany(q, rows)


def generate(wh, *, n_structures: int, n_models: int, seed: int = 0) -> dict[str, int]:
    rng = np.random.default_rng(seed)
    n_atoms = rng.integers(20, 231, n_structures)
    n_el = rng.choice([1, 2, 3, 4], n_structures, p=[0.3, 0.4, 0.2, 0.1])
    ds_of = rng.integers(0, 3, n_structures)
    counts = {}
    with wh.engine.begin() as conn:
        conn.execute(text("INSERT INTO ingest_runs (id, kind, started_at, status, warehouse_version)"
                          " VALUES (1, 'benchmark', CURRENT_TIMESTAMP, 'ok', 'bench')"))
        conn.execute(text("INSERT INTO lake_files (id, path, kind, sha256, n_rows, n_bytes)"
                          " VALUES (1, 'bench/none.parquet', 'positions', '', 0, 0)"))
        conn.execute(text("INSERT INTO levels_of_theory (id, name) VALUES (1, 'bench-PBE')"))
        for i in range(3):
            conn.execute(text("INSERT INTO datasets (id, name, level_of_theory_id) VALUES (:i, :n, 1)"),
                         {"i": i + 1, "n": f"bench-{i}"})
        sid = np.arange(1, n_structures + 1)
        comp = []
        for s, k, n in zip(sid, n_el, n_atoms, strict=True):
            els = rng.choice(16, k, replace=False)
            split = np.sort(rng.choice(np.arange(1, n), k - 1, replace=False)) if k > 1 else []
            cnt = np.diff(np.concatenate([[0], split, [n]]))
            comp.append([(int(s), ELEMENTS[e], int(c)) for e, c in zip(els, cnt, strict=True)])
        _bulk(conn, "structures", ["id", "hash", "order_free_hash", "n_atoms", "formula", "elements",
                                   "n_elements", "cell", "pbc", "volume", "lake_file_id", "ingest_run_id"],
              ((int(s), f"h{s}", f"o{s}", int(n), "X", ",".join(sorted(e for _, e, _ in c)), int(k),
                "[[1,0,0],[0,1,0],[0,0,1]]", "TTT", 1.0, 1, 1)
               for s, n, k, c in zip(sid, n_atoms, n_el, comp, strict=True)))
        _bulk(conn, "structure_elements", ["structure_id", "element", "count"],
              (r for c in comp for r in c))
        _bulk(conn, "dataset_members", ["dataset_id", "structure_id", "subset", "ingest_run_id"],
              ((int(d) + 1, int(s), f"sub{s % 5}", 1) for s, d in zip(sid, ds_of, strict=True)))
        _bulk(conn, "references", ["id", "structure_id", "level_of_theory_id", "energy", "has_forces",
                                   "stress_xx", "stress_yy", "stress_zz", "stress_yz", "stress_xz",
                                   "stress_xy", "ingest_run_id"],
              ((int(s), int(s), 1, -3.0 * int(n), True, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1)
               for s, n in zip(sid, n_atoms, strict=True)))
        pid = 0
        counts["predictions"] = counts["prediction_errors"] = counts["prediction_element_errors"] = 0
        for mo in range(1, n_models + 1):
            conn.execute(text("INSERT INTO models (id, name) VALUES (:i, :n)"),
                         {"i": mo, "n": f"model-{mo:02d}"})
            n = _model_rows(conn, rng, mo, pid, sid, n_atoms, comp, run_id=1)
            pid += n[0]
            for k, v in zip(("predictions", "prediction_errors", "prediction_element_errors"), n,
                            strict=True):
                counts[k] += v
    with wh.engine.connect() as conn:
        if wh.dialect == "postgresql":
            conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("VACUUM ANALYZE")
        else:
            conn.exec_driver_sql("ANALYZE")
            conn.commit()
    counts["structures"] = n_structures
    counts["atoms"] = int(n_atoms.sum())
    return counts


def _model_rows(conn, rng, mo, pid, sid, n_atoms, comp, *, run_id: int) -> tuple[int, int, int]:
    """One model's predictions (1 % missing, 0.5 % failed) with their error rows."""
    present = rng.random(len(sid)) > 0.01
    failed = rng.random(len(sid)) < 0.005
    scale = 0.001 * (1 + mo / 10)
    preds, errs, el_errs = [], [], []
    for s, n, ok_p, bad, c in zip(sid, n_atoms, present, failed, comp, strict=True):
        if not ok_p:
            continue
        pid += 1
        preds.append((pid, mo, int(s), "failed" if bad else "ok", None if bad else -3.0 * int(n),
                      False, run_id))
        if bad:
            continue
        de = float(rng.normal(0, scale))
        fa, fs = float(abs(rng.normal(0.05, 0.01)) * 3 * n), float(0.004 * 3 * n)
        errs.append((pid, int(s), int(n), de, fa, fs, 3 * int(n), 0.1, 0.01, 6))
        for _, el, cnt in c:
            el_errs.append((pid, int(s), el, cnt, fa * cnt / n, fs * cnt / n, 3 * cnt))
    _bulk(conn, "predictions", ["id", "model_id", "structure_id", "status", "energy", "has_forces",
                                "ingest_run_id"], preds)
    _bulk(conn, "prediction_errors", ["prediction_id", "reference_id", "n_atoms",
                                      "energy_diff_per_atom", "force_abs_sum", "force_sq_sum",
                                      "force_n", "stress_abs_sum", "stress_sq_sum", "stress_n"], errs)
    _bulk(conn, "prediction_element_errors", ["prediction_id", "reference_id", "element", "n_atoms",
                                              "force_abs_sum", "force_sq_sum", "force_n"], el_errs)
    return len(preds), len(errs), len(el_errs)


def _new_run(conn) -> int:
    run = conn.execute(text("SELECT max(id) FROM ingest_runs")).scalar() + 1
    conn.execute(text("INSERT INTO ingest_runs (id, kind, started_at, status, warehouse_version)"
                      " VALUES (:r, 'benchmark', CURRENT_TIMESTAMP, 'ok', 'bench')"), {"r": run})
    return run


def add_model(wh, *, seed: int = 1) -> tuple[float, float]:
    """One more model evaluated on every structure, as its own ingest run, with the writer's
    kept-sums step before commit: (seconds writing the rows, seconds of that step)."""
    rng = np.random.default_rng(seed)
    with wh.engine.begin() as conn:
        t = time.perf_counter()
        run = _new_run(conn)
        mo = conn.execute(text("SELECT max(id) FROM models")).scalar() + 1
        pid = conn.execute(text("SELECT max(id) FROM predictions")).scalar()
        conn.execute(text("INSERT INTO models (id, name) VALUES (:i, :n)"),
                     {"i": mo, "n": f"model-{mo:02d}"})
        st = conn.execute(text("SELECT id, n_atoms FROM structures ORDER BY id")).all()
        comp: dict[int, list] = {}
        for s, el, cnt in conn.execute(text("SELECT structure_id, element, count FROM structure_elements")):
            comp.setdefault(s, []).append((s, el, cnt))
        _model_rows(conn, rng, mo, pid, [s for s, _ in st], np.array([n for _, n in st]),
                    [comp[s] for s, _ in st], run_id=run)
        write_s = time.perf_counter() - t
        hook_s = _once(lambda: keptsums.add_run(conn, run))
    return write_s, hook_s


def add_structures(wh, *, n: int, seed: int = 2) -> tuple[float, float]:
    """``n`` new structures with members and references in one dataset, as their own ingest run
    (no prediction yet: they count as missing for every model), with the kept-sums step."""
    rng = np.random.default_rng(seed)
    with wh.engine.begin() as conn:
        t = time.perf_counter()
        run = _new_run(conn)
        first = conn.execute(text("SELECT max(id) FROM structures")).scalar() + 1
        ref0 = conn.execute(text('SELECT max(id) FROM "references"')).scalar() + 1
        sid = np.arange(first, first + n)
        n_atoms = rng.integers(20, 231, n)
        _bulk(conn, "structures", ["id", "hash", "order_free_hash", "n_atoms", "formula", "elements",
                                   "n_elements", "cell", "pbc", "volume", "lake_file_id", "ingest_run_id"],
              ((int(s), f"h{s}", f"o{s}", int(k), "Cu", "Cu", 1, "[[1,0,0],[0,1,0],[0,0,1]]", "TTT",
                1.0, 1, run) for s, k in zip(sid, n_atoms, strict=True)))
        _bulk(conn, "structure_elements", ["structure_id", "element", "count"],
              ((int(s), "Cu", int(k)) for s, k in zip(sid, n_atoms, strict=True)))
        _bulk(conn, "dataset_members", ["dataset_id", "structure_id", "subset", "ingest_run_id"],
              ((1, int(s), "new", run) for s in sid))
        _bulk(conn, "references", ["id", "structure_id", "level_of_theory_id", "energy", "has_forces",
                                   "ingest_run_id"],
              ((ref0 + i, int(s), 1, -3.0 * int(k), True, run)
               for i, (s, k) in enumerate(zip(sid, n_atoms, strict=True))))
        write_s = time.perf_counter() - t
        hook_s = _once(lambda: keptsums.add_run(conn, run))
    return write_s, hook_s


def _best(fn, repeat: int) -> float:
    fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def pandas_frames(wh) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The joined per-structure and per-structure-element rows, in memory (not timed)."""
    q = """SELECT mo.name AS model, d.name AS dataset, p.status, s.n_atoms, pe.energy_diff_per_atom AS e,
           pe.force_abs_sum AS f_abs, pe.force_sq_sum AS f_sq, pe.force_n AS f_n,
           pe.stress_abs_sum AS s_abs, pe.stress_sq_sum AS s_sq, pe.stress_n AS s_n
           FROM dataset_members dm JOIN datasets d ON d.id = dm.dataset_id
           JOIN structures s ON s.id = dm.structure_id
           JOIN "references" r ON r.structure_id = dm.structure_id AND r.level_of_theory_id = d.level_of_theory_id
           JOIN predictions p ON p.structure_id = dm.structure_id JOIN models mo ON mo.id = p.model_id
           LEFT JOIN prediction_errors pe ON pe.prediction_id = p.id AND pe.reference_id = r.id"""
    qe = """SELECT mo.name AS model, d.name AS dataset, se.element, pe.energy_diff_per_atom AS e,
           pee.force_abs_sum AS f_abs, pee.force_sq_sum AS f_sq, pee.force_n AS f_n
           FROM dataset_members dm JOIN datasets d ON d.id = dm.dataset_id
           JOIN "references" r ON r.structure_id = dm.structure_id AND r.level_of_theory_id = d.level_of_theory_id
           JOIN structure_elements se ON se.structure_id = dm.structure_id
           JOIN predictions p ON p.structure_id = dm.structure_id JOIN models mo ON mo.id = p.model_id
           LEFT JOIN prediction_errors pe ON pe.prediction_id = p.id AND pe.reference_id = r.id
           LEFT JOIN prediction_element_errors pee ON pee.prediction_id = p.id AND pee.reference_id = r.id
                AND pee.element = se.element"""
    with wh.engine.connect() as conn:
        return pd.read_sql(text(q), conn), pd.read_sql(text(qe), conn)


def pandas_leaderboard(df: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    g = df.assign(e_abs=df["e"].abs(), e_sq=df["e"] ** 2, ok=df.get("status", "ok") == "ok") \
        .groupby(keys, sort=True)
    s = g.agg(n=("e", "size"), n_e=("e", "count"), e_abs=("e_abs", "sum"), e_sq=("e_sq", "sum"),
              f_abs=("f_abs", "sum"), f_sq=("f_sq", "sum"), f_n=("f_n", "sum"))
    return pd.DataFrame({
        "energy_mae": 1000 * s["e_abs"] / s["n_e"], "energy_rmse": 1000 * np.sqrt(s["e_sq"] / s["n_e"]),
        "force_mae": 1000 * s["f_abs"] / s["f_n"], "force_rmse": 1000 * np.sqrt(s["f_sq"] / s["f_n"]),
    })


def _once(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url")
    ap.add_argument("--structures", type=int, default=60_000)
    ap.add_argument("--models", type=int, default=30)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--new-structures", type=int, default=2000)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="bench-lb-")
    url = args.url or f"sqlite:///{tmp}/catalog.sqlite"
    from warehouse import migrate
    from warehouse.db import make_engine

    # a catalog kept from an earlier run is reused as it is (upgraded: the migration's backfill)
    upgrade_s = _once(lambda: migrate.upgrade(make_engine(url)))
    wh = open_warehouse(url, f"{tmp}/lake")
    gen_s = 0.0
    if not wh.counts()["predictions"]:
        gen_s = _once(lambda: generate(wh, n_structures=args.structures, n_models=args.models))
    counts = {k: v for k, v in wh.counts().items() if k in ("structures", "predictions")}
    backfill = 0.0
    if gen_s:  # rows written around the writer: compute the kept sums as the migration does
        backfill = _once(lambda: _in_transaction(wh, keptsums.rebuild))
    full = _best(lambda: leaderboard(wh), args.repeat)
    elem = _best(lambda: leaderboard(wh, by=["element"]), args.repeat)
    view = _best(lambda: _sql(wh, "SELECT * FROM v_leaderboard"), args.repeat)
    view_el = _best(lambda: _sql(wh, "SELECT * FROM v_leaderboard_element"), args.repeat)
    live_full = _once(lambda: leaderboard(wh, use_rollup=False))
    live_elem = _once(lambda: leaderboard(wh, by=["element"], use_rollup=False))
    after = {}
    for what, ingest in (("one more model's predictions", add_model),
                         (f"{args.new_structures} new structures", lambda w: add_structures(
                             w, n=args.new_structures))):
        write_s, hook_s = ingest(wh)
        first = _once(lambda: leaderboard(wh))
        first_el = _once(lambda: leaderboard(wh, by=["element"]))
        after[what] = (write_s, hook_s, first, first_el)
    df, dfe = pandas_frames(wh)
    p_full = _best(lambda: pandas_leaderboard(df, ["model", "dataset"]), args.repeat)
    p_elem = _best(lambda: pandas_leaderboard(dfe, ["model", "dataset", "element"]), args.repeat)
    print(f"engine {wh.dialect}; {counts}; generated in {gen_s:.0f} s;"
          f" kept sums computed from scratch (backfill) in {backfill:.1f} s;"
          f" schema upgrade (with the migration's backfill, on a kept catalog) {upgrade_s:.1f} s")
    print("| query | warehouse (s) | pandas in memory (s) | ratio | live SQL, no kept sums (s) |")
    print("|---|---:|---:|---:|---:|")
    print(f"| full leaderboard ({len(leaderboard(wh))} rows) | {full:.3f} | {p_full:.3f} |"
          f" {full / p_full:.2f} | {live_full:.1f} |")
    print(f"| per-element breakdown ({len(leaderboard(wh, by=['element']))} rows) | {elem:.3f} |"
          f" {p_elem:.3f} | {elem / p_elem:.2f} | {live_elem:.1f} |")
    print(f"| SELECT * FROM v_leaderboard | {view:.3f} | | | |")
    print(f"| SELECT * FROM v_leaderboard_element | {view_el:.3f} | | | |")
    print()
    print("| ingest | its rows written (s) | kept-sums step (s) | first leaderboard after (s)"
          " | first per-element breakdown after (s) |")
    print("|---|---:|---:|---:|---:|")
    for what, (write_s, hook_s, first, first_el) in after.items():
        print(f"| {what} | {write_s:.1f} | {hook_s:.3f} | {first:.3f} | {first_el:.3f} |")
    wh.close()


def _in_transaction(wh, fn) -> None:
    with wh.engine.begin() as conn:
        fn(conn)


def _sql(wh, query: str) -> list:
    with wh.engine.connect() as conn:
        return conn.execute(text(query)).all()


if __name__ == "__main__":
    main()

"""What PostgreSQL's foreign-key triggers cost an ingest, and what the deferred check costs instead.

COPYs one ingest's per-structure rows (10,962 structures as in benchmarks/ingest.py: their
``structures``, ``structure_elements``, ``dataset_members`` and ``references`` rows) into a
fresh warehouse database twice: with the per-row triggers (``WAREHOUSE_PG_KEY_CHECKS=triggers``)
and as the loader sends them where it may (triggers off for the COPY, then
``ingest.writers.bulk._check_keys`` over every key value). Reports, per table, the server backend's CPU
seconds (from /proc: the server must run on this machine) and the client's.

Run:  python benchmarks/pg_foreign_keys.py [--pg postgresql://postgres@127.0.0.1:5432/postgres]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

N = 10_962


def _backend_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rows(run: int, lot: int, ds: int, lf: int) -> dict[str, tuple[tuple[str, ...], list[tuple]]]:
    from ingest.loader import MEMBER_COLS, REFERENCE_COLS, STRUCTURE_COLS

    rng = np.random.default_rng(0)
    cell = "[[11.0, 0.0, 0.0], [0.0, 11.0, 0.0], [0.0, 0.0, 11.0]]"
    return {
        "structures": (STRUCTURE_COLS, [
            (i, f"{i:064x}", f"{i:064d}", 120, "Cu3Ni", "Cu,Ni", 2, cell, "TTT", 1331.0, lf, run)
            for i in range(1, N + 1)]),
        "structure_elements": (("structure_id", "element", "count"),
                               [(i, "Cu", 90) for i in range(1, N + 1)]
                               + [(i, "Ni", 30) for i in range(1, N + 1, 2)]),
        "dataset_members": (MEMBER_COLS, [(ds, i, None, "fcc", "fcc", None, i - 1, run)
                                          for i in range(1, N + 1)]),
        "references": (REFERENCE_COLS, [
            (i, i, lot, float(rng.normal()), None, *rng.normal(size=6).tolist(), True, lf, run)
            for i in range(1, N + 1)]),
    }


def _fresh_warehouse(server: str, name: str) -> str:
    """A new database ``name`` on ``server`` with the warehouse schema; its libpq URL."""
    import psycopg

    from warehouse import open_warehouse

    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    url = server.rsplit("/", 1)[0] + f"/{name}"
    open_warehouse(url, "/nonexistent-lake").close()
    return url


def measure(url: str, mode: str) -> dict[str, tuple[float, float]]:
    import psycopg

    from ingest.writers import bulk
    from warehouse import models as m

    tables = {t.name: t for t in (m.Structure.__table__, m.StructureElement.__table__,
                                   m.DatasetMember.__table__, m.Reference.__table__)}
    out = {}
    with psycopg.connect(url) as conn:
        pid = conn.info.backend_pid
        run = conn.execute("INSERT INTO ingest_runs (kind, started_at, status, warehouse_version)"
                           " VALUES ('bench', now(), 'running', '-') RETURNING id").fetchone()[0]
        lot = conn.execute("INSERT INTO levels_of_theory (name) VALUES ('EMT') RETURNING id").fetchone()[0]
        ds = conn.execute("INSERT INTO datasets (name, level_of_theory_id) VALUES ('d', %s)"
                          " RETURNING id", (lot,)).fetchone()[0]
        lf = conn.execute("INSERT INTO lake_files (path, kind, sha256, n_rows, n_bytes, ingest_run_id)"
                          " VALUES ('p', 'positions', '', 0, 0, %s) RETURNING id", (run,)).fetchone()[0]
        keys: dict = {}
        for name, (cols, rows) in _rows(run, lot, ds, lf).items():
            table = tables[name]
            if mode == "deferred":  # as BackgroundWriter.copy(check_keys_later=True) does
                bulk.note_keys(keys, table, cols, rows)
            c0, s0 = time.process_time(), _backend_cpu(pid)
            bulk._copy_rows(conn, f'COPY "{name}" ({", ".join(cols)}) FROM STDIN', rows,
                            [], triggers=mode == "triggers")
            out[name] = (_backend_cpu(pid) - s0, time.process_time() - c0)
        if mode == "deferred":
            c0, s0, w0 = time.process_time(), _backend_cpu(pid), time.perf_counter()
            bulk._check_keys(conn, keys)
            out["(the deferred check)"] = (_backend_cpu(pid) - s0, time.process_time() - c0)
            print(f"  deferred check: {1000 * (time.perf_counter() - w0):.1f} ms wall", file=sys.stderr)
        conn.rollback()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pg", default=os.environ.get("WAREHOUSE_BENCH_PG",
                                                   "postgresql://postgres@127.0.0.1:5432/postgres"))
    args = ap.parse_args()
    results = {mode: measure(_fresh_warehouse(args.pg, "bench_fk"), mode)
               for mode in ("triggers", "deferred")}
    print("| rows | triggers: server CPU s | deferred: server CPU s | client CPU s (triggers / deferred) |")
    print("|---|---:|---:|---:|")
    names = list(results["deferred"])
    for name in names:
        t = results["triggers"].get(name, (0.0, 0.0))
        d = results["deferred"][name]
        print(f"| {name} | {t[0]:.2f} | {d[0]:.2f} | {t[1]:.2f} / {d[1]:.2f} |")
    tot = [sum(v[0] for v in results[k].values()) for k in ("triggers", "deferred")]
    print(f"| all | {tot[0]:.2f} | {tot[1]:.2f} | |")


if __name__ == "__main__":
    main()

"""Concurrent ingests into one PostgreSQL catalog: 1, 2, 4 and 8 writers at once (issue 15).

Every cluster job ends with `warehouse ingest`, so many run at once. This starts W real
`warehouse ingest structures` processes (the console script, as a job runs it) at the same moment,
each with its own file (distinct structures, the same size), all into one dataset of one fresh
database (created beforehand by a one-structure ingest, as after a cluster's first job; with
``--new-dataset`` the writers create it, and the others wait for the first to commit), and reports per W: the wall time from the start to the last exit, the aggregate atoms/s
(all atoms / that time), the failures (non-zero exits), and whether the counts are exact. The
goal: 0 failures, and 8 writers together no slower than one (aggregate atoms/s of 8 >= of 1).
The W = 1 run is the baseline of the same run: the ratio carries over between machines.

Run:  python benchmarks/concurrency.py                       (8 files of 500 x 256 atoms)
      python benchmarks/concurrency.py --structures 200 --repeat 3
PostgreSQL: --pg postgresql://postgres@127.0.0.1:5432/postgres (databases are created and dropped).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

# This file is benchmarks/concurrency.py: keep its folder off sys.path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from ingest_helpers import write_fcc_xyz  # noqa: E402 - after the path is set

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/postgres"
WAREHOUSE = Path(sys.executable).with_name("warehouse")


def _new_database(server: str) -> tuple[str, str]:
    import psycopg

    name = f"wh_conc_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return name, server.rsplit("/", 1)[0] + f"/{name}"


def _drop_database(server: str, name: str) -> None:
    import psycopg

    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run_writers(server: str, files: list[Path], workdir: Path, seed: Path | None) -> dict:
    """All ``files`` ingested at once, each by its own process, into a fresh catalog (where
    ``seed``, if given, was ingested first: the dataset and level of theory exist)."""
    name, url = _new_database(server)
    lake = workdir / f"lake-{name}"
    try:
        subprocess.run([str(WAREHOUSE), "--url", url, "--lake", str(lake), "db", "upgrade"],
                       check=True, capture_output=True)
        if seed is not None:
            subprocess.run([str(WAREHOUSE), "--url", url, "--lake", str(lake), "ingest",
                            "structures", str(seed), "--dataset", "jobs", "-l", "EMT"],
                           check=True, capture_output=True)
        t0 = time.perf_counter()
        procs = [subprocess.Popen([str(WAREHOUSE), "--url", url, "--lake", str(lake), "ingest",
                                   "structures", str(f), "--dataset", "jobs", "-l", "EMT"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for f in files]
        errors = []
        for p in procs:
            _, err = p.communicate()
            if p.returncode != 0:
                errors.append(err.strip().splitlines()[-1] if err.strip() else f"exit {p.returncode}")
        seconds = time.perf_counter() - t0
        from warehouse import open_warehouse

        with open_warehouse(url, str(lake)) as wh:
            counts = wh.counts()
        n_seed = 1 if seed is not None else 0
        return {"seconds": seconds, "failures": len(errors), "errors": errors[:3],
                "structures": counts["structures"] - n_seed,
                "members": counts["dataset_members"] - n_seed}
    finally:
        subprocess.run(["rm", "-rf", str(lake)], check=False)
        _drop_database(server, name)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pg", default=DEFAULT_PG, help="PostgreSQL server URL (databases are created).")
    ap.add_argument("--structures", type=int, default=500, help="Structures per file (256 atoms each).")
    ap.add_argument("--writers", default="1,2,4,8", help="Writer counts to run (comma-separated).")
    ap.add_argument("--repeat", type=int, default=1, help="Runs per writer count (median reported).")
    ap.add_argument("--new-dataset", action="store_true",
                    help="Every writer names a dataset that does not exist yet (the first to create"
                         " it holds the others until it commits); default: it exists.")
    ap.add_argument("--json", type=Path, help="Also write the results here.")
    args = ap.parse_args()
    counts = [int(w) for w in args.writers.split(",")]
    with tempfile.TemporaryDirectory(prefix="wh-conc-") as tmp:
        workdir = Path(tmp)
        files, atoms = [], 0
        for i in range(max(counts)):
            path = workdir / f"job{i}.xyz"
            atoms = write_fcc_xyz(path, args.structures, reps=4, seed=1000 + i)
            files.append(path)
        seed = None
        if not args.new_dataset:
            seed = workdir / "seed.xyz"
            write_fcc_xyz(seed, 1, reps=2, seed=999)
        results = {}
        print(f"{args.structures} structures x 256 atoms = {atoms:,} atoms per file")
        print(f"{'writers':>7} {'seconds':>8} {'atoms/s':>10} {'vs 1':>6} {'failures':>8} exact")
        for w in counts:
            runs = [run_writers(args.pg, files[:w], workdir, seed) for _ in range(args.repeat)]
            seconds = statistics.median(r["seconds"] for r in runs)
            exact = all(r["structures"] == r["members"] == w * args.structures for r in runs)
            rate = w * atoms / seconds
            results[w] = {"seconds": seconds, "atoms_per_s": rate,
                          "failures": sum(r["failures"] for r in runs), "exact": exact,
                          "errors": [e for r in runs for e in r["errors"]][:3],
                          "all_seconds": [r["seconds"] for r in runs]}
            base = results[counts[0]]["atoms_per_s"]
            print(f"{w:>7} {seconds:>8.2f} {rate:>10,.0f} {rate / base:>6.2f}"
                  f" {results[w]['failures']:>8} {exact}")
            for e in results[w]["errors"]:
                print(f"        {e}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()

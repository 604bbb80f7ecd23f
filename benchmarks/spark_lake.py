#!/usr/bin/env python
"""Benchmark: the per-atom force RMSE per model and element in local-mode Spark, on the lake as is.

Reads the same Parquet files as ``benchmarks/sql_lake.py`` (build them there with ``--keep``)
with pyspark's own Parquet reader: partition discovery gives ``model`` from the
``predicted_forces/model=<name>/`` folders, and ``spark.sql.caseSensitive`` must be on, because
the positions files hold both ``Z`` (atomic number) and ``z`` (coordinate). Then the same query as
the raw DuckDB baseline, timed in the same run, with both results compared.

Needs Java (Debian: ``apt-get install openjdk-17-jre-headless``) and ``pip install pyspark``.

Usage::

    python benchmarks/sql_lake.py --workdir /tmp/sql-bench --keep
    python benchmarks/spark_lake.py --workdir /tmp/sql-bench [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

SPARK_SQL = """
SELECT pf.model, pos.Z AS atomic_number, count(*) AS n_atoms,
       sqrt(avg((pow(pf.fx - rf.fx, 2) + pow(pf.fy - rf.fy, 2) + pow(pf.fz - rf.fz, 2)) / 3)) AS force_rmse
FROM predicted_forces pf
JOIN reference_forces rf ON rf.structure_id = pf.structure_id AND rf.atom_index = pf.atom_index
JOIN positions pos ON pos.structure_id = pf.structure_id AND pos.atom_index = pf.atom_index
GROUP BY pf.model, pos.Z
"""


def spark_session():
    from pyspark.sql import SparkSession

    return (SparkSession.builder.master("local[*]").appName("mlip-warehouse-lake")
            .config("spark.sql.caseSensitive", "true")
            .config("spark.driver.memory", "2g")
            .config("spark.ui.enabled", "false")
            .getOrCreate())


def run_spark(spark, lake: Path):
    for kind in ("predicted_forces", "reference_forces", "positions"):
        # the lake's folders as they are; `model=`/`level=`/`run=` become partition columns
        spark.read.parquet(str(lake / kind)).createOrReplaceTempView(kind)
    return spark.sql(SPARK_SQL).toPandas()


def run_duckdb(lake: Path):
    import duckdb

    from sql_lake import RAW

    return duckdb.connect().execute(RAW.format(lake=lake)).df()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("--workdir", type=Path, required=True)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    lake = args.workdir / "lake"
    if not lake.is_dir():
        sys.exit(f"{lake} is absent: run benchmarks/sql_lake.py --workdir {args.workdir} --keep first")
    t0 = time.perf_counter()
    spark = spark_session()
    start = time.perf_counter() - t0
    times: dict[str, list[float]] = {"spark": [], "duckdb": []}
    results = {}
    for _ in range(args.repeat):
        for name, fn in (("spark", lambda: run_spark(spark, lake)), ("duckdb", lambda: run_duckdb(lake))):
            t = time.perf_counter()
            results[name] = fn()
            times[name].append(time.perf_counter() - t)
    spark.stop()
    a = results["spark"].sort_values(["model", "atomic_number"]).reset_index(drop=True)
    b = results["duckdb"].sort_values(["model", "atomic_number"]).reset_index(drop=True)
    assert (a.n_atoms.to_numpy() == b.n_atoms.to_numpy()).all()
    assert abs(a.force_rmse.to_numpy() - b.force_rmse.to_numpy()).max() < 1e-9
    n = int(a.n_atoms.sum())
    print(f"| engine | median s ({args.repeat} runs) |\n|---|---:|")
    print(f"| Spark local[*] (session start {start:.1f} s, not counted) | {statistics.median(times['spark']):.2f} |")
    print(f"| DuckDB, same files | {statistics.median(times['duckdb']):.2f} |")
    print(f"\n{n:,} predicted atoms, {len(a)} (model, element) rows, identical RMSEs")


if __name__ == "__main__":
    main()

#!/usr/bin/env python
"""Benchmark: what keeping the leaderboard sums costs an ingest, measured inside real ingests.

Every ingest runs ``warehouse.keptsums.add_run`` before it commits; here it is wrapped with a
timer, so each ingest reports its wall time and that step's share of it, in the same run. The
data are small cells (4-8 atoms, 1-3 of Cu/Ni/Al), where the step's per-row cost weighs most
against the ingest's per-atom work: ``--structures`` cells into one dataset, then ``--models``
models' predictions on all of them, then the same cells labelled again at a second level of
theory (new references on predicted structures), then half of them into a second dataset of the
first level (members only). Each ingest goes through ``ingest_run`` and the Loader as the CLI's
do (frames built in memory: no file parsing, which would only add to the ingest's time).

Usage::

    nice python benchmarks/kept_sums.py --url sqlite:////tmp/kept.sqlite
    nice python benchmarks/kept_sums.py --url postgresql://postgres@127.0.0.1:5432/bench_kept

The database must be new or empty. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import ingest.loader as loader  # noqa: E402
from ingest.loader import ingest_run  # noqa: E402
from warehouse import keptsums, open_warehouse  # noqa: E402
from warehouse.records import Frame, Labels, PredictionFrame  # noqa: E402

Z = (29, 28, 13)


def cells(n: int, seed: int) -> list[Frame]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        k = 4 + i % 5
        numbers = np.array([Z[j % (1 + i % 3)] for j in range(k)], dtype=np.int32)
        out.append(Frame(numbers, rng.random((k, 3)) * 4, np.eye(3) * (5 + rng.random()),
                         np.ones(3, bool), i, labels(rng, k), f"c{i % 4}"))
    return out


def labels(rng, k: int) -> Labels:
    return Labels(float(rng.normal(-3 * k, 1)), rng.normal(0, 0.3, (k, 3)), rng.normal(0, 1, 6))


def relabel(frames: list[Frame], seed: int) -> list[Frame]:
    rng = np.random.default_rng(seed)
    return [Frame(f.numbers, f.positions, f.cell, f.pbc, f.index, labels(rng, f.n_atoms),
                  f.config_type) for f in frames]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url")
    ap.add_argument("--structures", type=int, default=20_000)
    ap.add_argument("--models", type=int, default=2)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="bench-kept-")
    wh = open_warehouse(args.url or f"sqlite:///{tmp}/catalog.sqlite", f"{tmp}/lake")
    step: list[float] = []
    real = keptsums.add_run

    def timed(conn, run_id, **hints):
        t = time.perf_counter()
        real(conn, run_id, **hints)
        step.append(time.perf_counter() - t)

    loader.add_run = timed
    frames = cells(args.structures, seed=0)
    n_atoms = sum(f.n_atoms for f in frames)
    rows = []

    def ingest(what: str, fn) -> None:
        step.clear()
        t = time.perf_counter()
        fn()
        wall = time.perf_counter() - t
        rows.append((what, wall, step[0]))

    def structures(fr, dataset, level):
        def run():
            with ingest_run(wh, kind="structures") as ld:
                lid = ld.level_of_theory(level)
                ld.add_frames(fr, dataset_id=ld.dataset(dataset, lid), level_id=lid, path="gen")
        return run

    def predictions(model, seed):
        def run():
            rng = np.random.default_rng(seed)
            preds = [PredictionFrame(Frame(f.numbers, f.positions, f.cell, f.pbc, f.index,
                                           labels(rng, f.n_atoms))) for f in frames]
            with ingest_run(wh, kind="predictions") as ld:
                ld.add_predictions(ld.model(model), preds, path="gen")
        return run

    ingest(f"structures ({len(frames):,} cells, {n_atoms:,} atoms)", structures(frames, "A", "L1"))
    for i in range(args.models):
        ingest(f"predictions of model {i + 1} on them", predictions(f"m{i + 1}", seed=10 + i))
    ingest("the same cells at a second level (new references on predicted structures)",
           structures(relabel(frames, 5), "B", "L2"))
    ingest("half of them into a second dataset (members only)",
           structures(frames[: len(frames) // 2], "C", "L1"))
    with wh.engine.connect() as conn:
        assert keptsums.differences(conn).empty, "kept sums differ from a fresh computation"
    print(f"engine {wh.dialect}")
    print("| ingest | wall (s) | kept-sums step (s) | share |")
    print("|---|---:|---:|---:|")
    for what, wall, hook in rows:
        print(f"| {what} | {wall:.2f} | {hook:.3f} | {100 * hook / wall:.1f} % |")
    wh.close()


if __name__ == "__main__":
    main()

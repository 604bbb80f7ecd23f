"""Shared helpers of the ingest tests: catalog + lake snapshots and generated extended XYZ."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from warehouse import Warehouse


def snapshot(wh: Warehouse) -> tuple[dict[str, int], list[str]]:
    """Row counts (all but ingest_runs, which records failed attempts too) and lake files."""
    counts = {k: v for k, v in wh.counts().items() if k != "ingest_runs"}
    return counts, sorted(wh.lake.walk())


def write_fcc_xyz(path: Path, n_frames: int, *, reps: int = 3, seed: int = 0,
                  symbol: str = "Cu", a: float = 3.6) -> int:
    """Write ``n_frames`` rattled fcc supercells (4 reps^3 atoms) with energy, forces, virial.

    Fast (no ASE): the tests need big files. Returns the number of atoms written.
    """
    rng = np.random.default_rng(seed)
    base = np.array([[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])
    grid = np.array([[i, j, k] for i in range(reps) for j in range(reps) for k in range(reps)])
    frac = (grid[:, None, :] + base[None, :, :]).reshape(-1, 3)
    n = len(frac)
    total = 0
    with open(path, "w") as fh:
        for i in range(n_frames):
            length = a * reps * (1 + 0.01 * rng.standard_normal())
            pos = frac * length + 0.05 * rng.standard_normal((n, 3))
            forces = 0.1 * rng.standard_normal((n, 3))
            lat = " ".join(f"{x:.8f}" for x in (np.eye(3) * length).ravel())
            vir = " ".join(f"{x:.6f}" for x in (np.eye(3) * rng.standard_normal()).ravel())
            fh.write(f'{n}\nLattice="{lat}" Properties=species:S:1:pos:R:3:forces:R:3 '
                     f'energy={-3.5 * n + rng.standard_normal():.8f} virial="{vir}" '
                     f'config_type=gen{i % 3} pbc="T T T"\n')
            block = np.hstack([pos, forces])
            fh.write("\n".join(f"{symbol} " + " ".join(f"{v:.8f}" for v in row) for row in block))
            fh.write("\n")
            total += n
    return total

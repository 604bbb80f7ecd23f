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


STRESS = ("stress_xx", "stress_yy", "stress_zz", "stress_yz", "stress_xz", "stress_xy")


def _forces(wh: Warehouse, rows, id_name: str) -> dict[int, np.ndarray]:
    from warehouse import models as m

    out: dict[int, np.ndarray] = {}
    with wh.session() as s:
        paths = {lf.id: lf.path for lf in s.query(m.LakeFile)}
    by_file: dict[int, list[int]] = {}
    for r in rows:
        if r.lake_file_id is not None:
            by_file.setdefault(r.lake_file_id, []).append(r.id)
    for lf_id, ids in by_file.items():
        t = wh.lake.read(paths[lf_id], filters=[(id_name, "in", ids)]).to_pandas()
        for oid, part in t.sort_values([id_name, "atom_index"]).groupby(id_name):
            out[int(oid)] = part[["fx", "fy", "fz"]].to_numpy()
    return out


def stored_references(wh: Warehouse, dataset: str) -> list[dict]:
    """The dataset's members in file order with their reference labels, read back."""
    from sqlalchemy import select

    from warehouse import models as m

    with wh.session() as s:
        rows = s.execute(
            select(m.DatasetMember, m.Reference, m.LevelOfTheory.name)
            .join(m.Dataset, m.Dataset.id == m.DatasetMember.dataset_id)
            .join(m.Reference, (m.Reference.structure_id == m.DatasetMember.structure_id)
                  & (m.Reference.level_of_theory_id == m.Dataset.level_of_theory_id), isouter=True)
            .join(m.LevelOfTheory, m.LevelOfTheory.id == m.Dataset.level_of_theory_id)
            .where(m.Dataset.name == dataset).order_by(m.DatasetMember.source_index)
        ).all()
    forces = _forces(wh, [r for _, r, _ in rows if r is not None], "reference_id")
    out = []
    for mem, ref, level in rows:
        stress = None if ref is None or ref.stress_xx is None else np.array([getattr(ref, c) for c in STRESS])
        out.append({"structure_id": mem.structure_id, "energy": None if ref is None else ref.energy,
                    "free_energy": None if ref is None else ref.free_energy, "stress": stress,
                    "forces": forces.get(ref.id) if ref is not None else None,
                    "config_type": mem.config_type, "weight": mem.weight, "subset": mem.subset,
                    "split": mem.split, "level": level})
    return out


def stored_predictions(wh: Warehouse, model: str) -> dict[int, dict]:
    """structure id -> the model's stored prediction (energy, stress, forces)."""
    from sqlalchemy import select

    from warehouse import models as m

    with wh.session() as s:
        rows = s.scalars(select(m.Prediction).join(m.Model).where(m.Model.name == model)).all()
    forces = _forces(wh, rows, "prediction_id")
    return {p.structure_id: {
        "energy": p.energy, "status": p.status, "forces": forces.get(p.id),
        "stress": None if p.stress_xx is None else np.array([getattr(p, c) for c in STRESS]),
    } for p in rows}

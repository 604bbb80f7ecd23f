"""Reading stored structures (and their reference labels) back as :class:`Frame` records."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from sqlalchemy import select

from warehouse import models as m
from warehouse.core import Warehouse
from warehouse.errors import NotFound
from warehouse.records import Frame

# Read positions one lake file at a time, a bounded number of structures per read.
READ_CHUNK = 2_000


def iter_dataset_frames(wh: Warehouse, dataset: str) -> Iterator[tuple[int, Frame]]:
    """Yield (structure_id, frame) for every member of ``dataset``, in member order."""
    with wh.session() as s:
        ds = s.scalar(select(m.Dataset).where(m.Dataset.name == dataset))
        if ds is None:
            raise NotFound(f"no dataset named {dataset!r}; `warehouse info` lists them")
        rows = s.execute(
            select(m.Structure.id, m.Structure.cell, m.Structure.pbc, m.LakeFile.path,
                   m.DatasetMember.source_index)
            .join(m.DatasetMember, m.DatasetMember.structure_id == m.Structure.id)
            .join(m.LakeFile, m.LakeFile.id == m.Structure.lake_file_id)
            .where(m.DatasetMember.dataset_id == ds.id)
            .order_by(m.DatasetMember.source_index, m.Structure.id)
        ).all()
    for start in range(0, len(rows), READ_CHUNK):
        chunk = rows[start : start + READ_CHUNK]
        by_path: dict[str, list[int]] = {}
        for r in chunk:
            by_path.setdefault(r.path, []).append(r.id)
        atoms: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for path, ids in by_path.items():
            t = wh.lake.read(path, filters=[("structure_id", "in", ids)]).sort_by(
                [("structure_id", "ascending"), ("atom_index", "ascending")]
            )
            sid = t["structure_id"].to_numpy()
            z = t["Z"].to_numpy().astype(np.int32)
            pos = np.column_stack([t["x"].to_numpy(), t["y"].to_numpy(), t["z"].to_numpy()])
            bounds = np.flatnonzero(np.diff(sid)) + 1
            for s_part, z_part, p_part in zip(
                np.split(sid, bounds), np.split(z, bounds), np.split(pos, bounds)
            ):
                atoms[int(s_part[0])] = (z_part, p_part)
        for r in chunk:
            z, pos = atoms[r.id]
            yield r.id, Frame(
                numbers=z, positions=pos, cell=np.array(r.cell, dtype=np.float64),
                pbc=np.array([c == "T" for c in r.pbc]), index=r.source_index or 0,
            )

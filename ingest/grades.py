"""Per-atom uncertainty or extrapolation grades (e.g. D-optimality gamma) of a model.

Two sources:

* an extended XYZ file whose frames carry a per-atom array (``--array``, default the kind's
  name, e.g. ``gamma``); each frame is matched to a stored structure by its content hash (atoms in
  another order are matched by the order-free hash and the grades permuted back);
* a CSV with a header: ``hash`` (structure content hash) or ``frame`` (a dataset member's frame
  number in its source file; needs ``--dataset``, and ``--subset`` when frame numbers repeat),
  plus ``atom_index`` and ``grade``. Every atom of a structure needs exactly one grade.

Grades are stored in the lake (``atom_grades/model=<m>/kind=<k>/``: structure_id, atom_index,
grade) with one ``atom_grades`` row per structure holding the maximum grade. Ingesting the same
grades again adds nothing. Any bad row refuses the whole file (nothing is written).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
from numpy.typing import NDArray
from sqlalchemy import and_, insert, select

from ingest.atoms import frame_from_atoms, validate_frame
from ingest.loader import IngestSummary, Loader, ingest_run
from ingest.writers.conflicts import with_retries
from ingest.textio import reader_guard
from warehouse import models as m
from warehouse.core import Warehouse
from warehouse.errors import IngestError, missing_file
from warehouse.hashing import sha256_file
from warehouse.records import Frame, PredictionFrame

BATCH_STRUCTURES = 2000


@dataclass(slots=True)
class StructureGrades:
    """Grades of one structure's atoms, in atom order, with how the structure is identified."""

    grades: NDArray[np.float64]
    where: str  # "frame 3" or "line 12", for error messages
    frame: Frame | None = None  # extxyz: the structure itself
    hash: str | None = None  # CSV: content hash
    source_index: int | None = None  # CSV: frame number in the dataset's source


@reader_guard
def parse_grades_extxyz(path: str | Path, array: str) -> Iterator[StructureGrades]:
    """Frames of an extended XYZ file with their per-atom ``array`` (finite, one per atom)."""
    import io

    import ase.io

    from ingest.extxyz import frame_texts

    path = str(path)
    # frame by frame through the checked reader: ase.io.iread indexes the whole file first, in a
    # loop as long as a header's claimed atom count (15 s for a 90-byte file claiming 1e7)
    for text in frame_texts(path):
        i, where = text.index, text.where
        try:
            atoms = ase.io.read(io.StringIO(text.text), format="extxyz")
        except Exception as exc:  # ASE raises many types for malformed input
            raise IngestError(f"cannot read extended XYZ ({type(exc).__name__}: {exc})",
                              path=path, where=where) from exc
        if array not in atoms.arrays:
            have = ", ".join(k for k in atoms.arrays if k not in ("numbers", "positions"))
            raise IngestError(f"no per-atom array {array!r} (arrays here: {have or 'none'});"
                              " pass --array NAME", path=path, where=where)
        g = atoms.arrays[array]
        if g.dtype.kind not in "iuf" or g.shape != (len(atoms),):
            raise IngestError(f"array {array!r} has shape {g.shape} ({g.dtype.kind}); grades need"
                              " one number per atom", path=path, where=where)
        g = g.astype(np.float64)
        _check_finite(g, path, where)
        try:
            frame = validate_frame(frame_from_atoms(atoms, i), path)
        except IngestError as exc:
            raise IngestError(exc.message, path=path,
                              where=where) from exc
        yield StructureGrades(g, where, frame=frame)


@reader_guard
def parse_grades_csv(path: str | Path) -> Iterator[StructureGrades]:
    """Structures of a grades CSV (columns hash|frame, atom_index, grade), atoms in order."""
    path = str(path)
    try:
        df = pd.read_csv(path)
    except (ValueError, OSError) as exc:
        raise IngestError(f"cannot read CSV ({exc})", path=path) from exc
    key = "hash" if "hash" in df.columns else "frame" if "frame" in df.columns else None
    if key is None or missing_cols(df, ("atom_index", "grade")):
        raise IngestError("a grades CSV needs the columns hash (or frame), atom_index and grade;"
                          f" found {', '.join(map(str, df.columns))}", path=path, where="line 1")
    df["_line"] = np.arange(len(df)) + 2
    grade = pd.to_numeric(df["grade"], errors="coerce")
    atom = pd.to_numeric(df["atom_index"], errors="coerce")
    for bad, what in ((grade.isna() | ~np.isfinite(grade.fillna(0)), "grade is not a finite number"),
                      (atom.isna() | (atom < 0) | (atom % 1 != 0), "atom_index is not an integer >= 0")):
        if bad.any():
            raise IngestError(what, path=path, where=f"line {int(df['_line'][bad].iloc[0])}")
    df["grade"], df["atom_index"] = grade.astype(float), atom.astype(np.int64)
    for k, part in df.groupby(key, sort=False):
        where = f"line {int(part['_line'].iloc[0])}"
        part = part.sort_values("atom_index")
        idx = part["atom_index"].to_numpy()
        if not np.array_equal(idx, np.arange(len(idx))):
            raise IngestError(f"structure {k}: atom_index must cover 0..n-1 exactly once",
                              path=path, where=where)
        yield StructureGrades(part["grade"].to_numpy(), where,
                              hash=str(k) if key == "hash" else None,
                              source_index=int(k) if key == "frame" else None)


def missing_cols(df: pd.DataFrame, cols: tuple[str, ...]) -> list[str]:
    return [c for c in cols if c not in df.columns]


def _check_finite(g: NDArray[np.float64], path: str, where: str) -> None:
    if not np.isfinite(g).all():
        raise IngestError(f"grade of atom {int(np.flatnonzero(~np.isfinite(g))[0])} is not finite",
                          path=path, where=where)


def ingest_grades(
    wh: Warehouse,
    path: str | Path,
    *,
    model: str,
    kind: str,
    array: str | None = None,
    dataset: str | None = None,
    subset: str | None = None,
    argv: list[str] | None = None,
) -> IngestSummary:
    """Store per-atom grades of ``model`` (kind ``kind``) from an extended XYZ file or a CSV."""
    path = str(path)
    if not Path(path).is_file():
        raise missing_file(path)
    is_csv = path.lower().endswith((".csv", ".csv.gz"))
    items = parse_grades_csv(path) if is_csv else parse_grades_extxyz(path, array or kind)
    sha = sha256_file(path)

    def attempt(n: int) -> IngestSummary:
        grades = items if n == 0 else (
            parse_grades_csv(path) if is_csv else parse_grades_extxyz(path, array or kind))
        with ingest_run(wh, kind="grades", source=path, source_sha256=sha, argv=argv) as ld:
            model_id = ld.model(model)
            ld.names.lock("grades", model_id, kind)  # one writer of a model's grades at a time
            resolve = _FrameResolver(ld, dataset, subset, path) if is_csv else None
            batch: list[StructureGrades] = []
            for item in grades:
                batch.append(item)
                if len(batch) >= BATCH_STRUCTURES:
                    _store(ld, model_id, model, kind, batch, path, resolve)
                    batch = []
            if batch:
                _store(ld, model_id, model, kind, batch, path, resolve)
        return ld.summary

    return with_retries(attempt, what=path)


class _FrameResolver:
    """Maps CSV keys (hash, or frame number within a dataset) to structure ids and atom counts."""

    def __init__(self, ld: Loader, dataset: str | None, subset: str | None, path: str) -> None:
        self.ld, self.path, self.subset = ld, path, subset
        self.dataset_id = ld.existing_dataset(dataset).id if dataset else None

    def __call__(self, item: StructureGrades) -> tuple[int, int]:
        s, st, dm = self.ld.s, m.Structure, m.DatasetMember
        if item.hash is not None:
            rows = s.execute(select(st.id, st.n_atoms).where(st.hash == item.hash)).all()
            what = f"structure hash {item.hash}"
        else:
            if self.dataset_id is None:
                raise IngestError("frame numbers need --dataset (the dataset they index)",
                                  path=self.path, where=item.where)
            cond = [dm.dataset_id == self.dataset_id, dm.source_index == item.source_index]
            if self.subset is not None:
                cond.append(dm.subset == self.subset)
            rows = s.execute(select(st.id, st.n_atoms).join(dm, dm.structure_id == st.id)
                             .where(and_(*cond))).all()
            what = f"frame {item.source_index}"
            if len(rows) > 1:
                raise IngestError(f"{what} matches {len(rows)} structures of the dataset; pass"
                                  " --subset or use structure hashes", path=self.path, where=item.where)
        if not rows:
            raise IngestError(f"{what} is not in the warehouse; ingest the structures first",
                              path=self.path, where=item.where)
        return rows[0]


def _store(ld: Loader, model_id: int, model: str, kind: str, batch: list[StructureGrades],
           path: str, resolve: _FrameResolver | None) -> None:
    sids, grades = _match(ld, batch, path, resolve)
    have = set(ld.s.scalars(select(m.AtomGrades.structure_id).where(
        m.AtomGrades.model_id == model_id, m.AtomGrades.kind == kind,
        m.AtomGrades.structure_id.in_(sorted(set(sids))))))
    todo: dict[int, NDArray[np.float64]] = {}
    for sid, g in zip(sids, grades, strict=True):
        if sid in have or sid in todo:
            ld.summary.seen("grades")
            continue
        todo[sid] = g
    if not todo:
        return
    lf = ld.reserve_lake_file("atom_grades")
    ld.s.execute(insert(m.AtomGrades), [
        {"model_id": model_id, "structure_id": sid, "kind": kind, "max_grade": float(g.max()),
         "lake_file_id": lf.id, "ingest_run_id": ld.run.id} for sid, g in todo.items()
    ])
    n = np.array([len(g) for g in todo.values()])
    ld.fill_lake_file(lf, "atom_grades", pa.table({
        "structure_id": pa.array(np.repeat(list(todo), n), pa.int64()),
        "atom_index": pa.array(np.concatenate([np.arange(k) for k in n]), pa.int32()),
        "grade": np.concatenate(list(todo.values())),
    }), model=model, kind=kind)
    ld.summary.add("grades", len(todo))


def _match(ld: Loader, batch: list[StructureGrades], path: str, resolve: _FrameResolver | None):
    """Structure id of each item and its grades in the stored atom order."""
    if resolve is None:
        # The loader's prediction matcher: exact hash, else order-free hash with a permutation.
        sids, perms = ld.match_structures([PredictionFrame(it.frame) for it in batch])
        out = []
        for it, sid, perm in zip(batch, sids, perms, strict=True):
            if sid is None:
                raise IngestError(f"structure ({it.frame.n_atoms} atoms) is not in the warehouse;"
                                  " ingest the structures first", path=path, where=it.where)
            out.append(it.grades if perm is None else it.grades[perm])
        return sids, out
    sids = []
    for it in batch:
        sid, n_atoms = resolve(it)
        if len(it.grades) != n_atoms:
            raise IngestError(f"{len(it.grades)} grades for a structure of {n_atoms} atoms",
                              path=path, where=it.where)
        sids.append(sid)
    return sids, [it.grades for it in batch]


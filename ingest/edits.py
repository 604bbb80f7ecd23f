"""Renaming and removing datasets and models (``warehouse dataset|model rename|remove``).

A removal is one transaction: every row that belongs to the thing goes, or none does. Its lake
files are deleted only after the commit (a file deleted first would be lost if the commit failed);
a crash between the two leaves files no row points to, which ``warehouse check --repair``
removes. What a removal deletes:

* a model: its predictions with their error sums, atom grades, training records, ensemble
  memberships, MD runs (series, observables), timings and properties, and its kept
  leaderboard sums. Ingest provenance (``warehouse runs``) stays: it is history.
* a dataset: its memberships; the structures that belong to no other dataset, with their
  references, every model's predictions of them and their grades (a property that pointed at
  such a structure keeps its value and loses the pointer); references of shared structures at
  the dataset's level of theory that no other dataset at that level uses; its kept leaderboard
  sums.

A model's lake files sit under a ``model=<name>`` partition folder; a rename moves them (copies
first, rows updated in the transaction, the old copies deleted after the commit), so that a
DuckDB or Spark reader of the lake sees the new name.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, exists, select, update
from sqlalchemy.orm import Session, aliased

from warehouse import models as m
from warehouse.core import Warehouse
from warehouse.errors import NotFound, WarehouseError
from warehouse.lake import partition_value
from warehouse.names import check_name

IN_CHUNK = 900  # under SQLite's bound-parameter limit


class NameTaken(WarehouseError):
    """A rename to a name another dataset or model already has."""


@dataclass
class Removal:
    """What a removal deleted (or, with ``dry_run``, would delete)."""

    what: str
    name: str
    counts: dict[str, int] = field(default_factory=dict)
    lake_files: list[str] = field(default_factory=list)

    def line(self) -> str:
        parts = [f"{n} {k}" for k, n in self.counts.items() if n]
        parts.append(f"{len(self.lake_files)} lake files")
        return f"{self.what} {self.name!r}: " + ", ".join(parts)


def _chunks(ids: list[int]) -> Iterable[list[int]]:
    for i in range(0, len(ids), IN_CHUNK):
        yield ids[i:i + IN_CHUNK]


def _ids(s: Session, stmt: Any) -> list[int]:
    return sorted({int(i) for i in s.scalars(stmt) if i is not None})


def _delete_in(s: Session, table: Any, column: Any, ids: list[int]) -> int:
    n = 0
    for chunk in _chunks(ids):
        n += s.execute(delete(table).where(column.in_(chunk))).rowcount or 0
    return n


# every (table, lake_file_id column) that can point at a lake file
_LAKE_OWNERS = ((m.Structure, m.Structure.lake_file_id), (m.Reference, m.Reference.lake_file_id),
                (m.Prediction, m.Prediction.lake_file_id),
                (m.TrainingRecord, m.TrainingRecord.lake_file_id),
                (m.AtomGrades, m.AtomGrades.lake_file_id), (m.MDSeries, m.MDSeries.lake_file_id))


def _drop_unused_lake_files(s: Session, candidates: set[int]) -> list[str]:
    """Delete the ``lake_files`` rows among ``candidates`` that no row points to any more;
    their paths, for deletion after the commit."""
    paths = []
    for chunk in _chunks(sorted(candidates)):
        used: set[int] = set()
        for table, col in _LAKE_OWNERS:
            used.update(s.scalars(select(col).where(col.in_(chunk)).distinct()))
        gone = [i for i in chunk if i not in used]
        paths += list(s.scalars(select(m.LakeFile.path).where(m.LakeFile.id.in_(gone))))
        _delete_in(s, m.LakeFile, m.LakeFile.id, gone)
    return sorted(paths)


def _remove_predictions(s: Session, pred_ids: list[int], out: Removal) -> set[int]:
    files = set(_chunked_scalars(s, m.Prediction.lake_file_id, m.Prediction.id, pred_ids))
    _delete_in(s, m.PredictionElementError, m.PredictionElementError.prediction_id, pred_ids)
    _delete_in(s, m.PredictionError, m.PredictionError.prediction_id, pred_ids)
    out.counts["predictions"] = out.counts.get("predictions", 0) + _delete_in(
        s, m.Prediction, m.Prediction.id, pred_ids)
    return files


def _chunked_scalars(s: Session, col: Any, key: Any, ids: list[int]) -> list[int]:
    out: list[int] = []
    for chunk in _chunks(ids):
        out += [i for i in s.scalars(select(col).where(key.in_(chunk))) if i is not None]
    return out


def _finish(wh: Warehouse, s: Session, out: Removal, files: set[int], dry_run: bool) -> Removal:
    out.lake_files = _drop_unused_lake_files(s, files)
    if dry_run:
        s.rollback()
        return out
    s.commit()
    for path in out.lake_files:  # after the commit: a failed commit must find its files
        wh.lake.delete(path)
    return out


# -- models ----------------------------------------------------------------------------------

def _named(s: Session, entity: type, name: str, *, what: str, listed_by: str,
           lock: bool = False) -> Any:
    """The ``entity`` row (a model, a dataset) called ``name``, locked for update with
    ``lock``; else NotFound naming the command that lists them."""
    stmt = select(entity).where(entity.name == name)
    row = s.scalar(stmt.with_for_update() if lock else stmt)
    if row is None:
        raise NotFound(f"no {what} named {name!r}; `{listed_by}` lists them")
    return row


def _model(s: Session, name: str, *, lock: bool = False) -> m.Model:
    return _named(s, m.Model, name, what="model", listed_by="warehouse model list", lock=lock)


def remove_model(wh: Warehouse, name: str, *, dry_run: bool = False) -> Removal:
    """Delete model ``name`` and everything that belongs to it (see the module notes)."""
    out = Removal("model", name)
    with Session(wh.engine) as s:
        mid = _model(s, name, lock=True).id
        files = _remove_predictions(s, _ids(s, select(m.Prediction.id).where(m.Prediction.model_id == mid)), out)
        files |= set(_ids(s, select(m.AtomGrades.lake_file_id).where(m.AtomGrades.model_id == mid)))
        out.counts["atom grades"] = s.execute(delete(m.AtomGrades).where(m.AtomGrades.model_id == mid)).rowcount
        files |= set(_ids(s, select(m.TrainingRecord.lake_file_id).where(m.TrainingRecord.model_id == mid)))
        out.counts["training records"] = s.execute(
            delete(m.TrainingRecord).where(m.TrainingRecord.model_id == mid)).rowcount
        out.counts["ensemble memberships"] = s.execute(
            delete(m.EnsembleMember).where(m.EnsembleMember.model_id == mid)).rowcount
        runs = _ids(s, select(m.MDRun.id).where(m.MDRun.model_id == mid))
        files |= set(_chunked_scalars(s, m.MDSeries.lake_file_id, m.MDSeries.md_run_id, runs))
        _delete_in(s, m.MDSeries, m.MDSeries.md_run_id, runs)
        _delete_in(s, m.MDObservable, m.MDObservable.md_run_id, runs)
        out.counts["MD runs"] = _delete_in(s, m.MDRun, m.MDRun.id, runs)
        out.counts["timings"] = s.execute(delete(m.Timing).where(m.Timing.model_id == mid)).rowcount
        out.counts["properties"] = s.execute(delete(m.Property).where(m.Property.model_id == mid)).rowcount
        # the leaderboard's kept sums of this model (warehouse.keptsums): the foreign key cascades
        # too; deleted here so that the removal does not depend on the engine enforcing it
        s.execute(delete(m.LeaderboardSums).where(m.LeaderboardSums.model_id == mid))
        s.execute(delete(m.Model).where(m.Model.id == mid))
        return _finish(wh, s, out, files, dry_run)


def rename_model(wh: Warehouse, old: str, new: str) -> list[str]:
    """Rename model ``old`` to ``new``; its lake files move to the ``model=<new>`` folders.
    Returns the moved files' new paths."""
    check_name(new, what="model")
    moved: list[tuple[str, str]] = []  # (old path, new path), copied but not yet committed
    with Session(wh.engine) as s:
        model = _model(s, old, lock=True)
        if s.scalar(select(m.Model.id).where(m.Model.name == new)) is not None:
            raise NameTaken(f"a model named {new!r} exists already; remove it or pick another name")
        try:
            for lf in _model_lake_files(s, model.id):
                path = _renamed_path(lf.path, old, new)
                if path != lf.path:
                    wh.lake.fs.create_dir(wh.lake.full(path).rsplit("/", 1)[0], recursive=True)
                    wh.lake.fs.copy_file(wh.lake.full(lf.path), wh.lake.full(path))
                    moved.append((lf.path, path))
                    lf.path = path
            model.name = new
            s.commit()
        except BaseException:
            for _, path in moved:  # the copies of a rename that did not commit
                wh.lake.delete(path)
            raise
    for path, _ in moved:
        wh.lake.delete(path)
    for folder in sorted({p.rsplit("/", 1)[0] for p, _ in moved}):
        _remove_if_empty(wh, folder)
    return [p for _, p in moved]


def _remove_if_empty(wh: Warehouse, folder: str) -> None:
    """Delete the lake folder ``folder`` (relative) if nothing is left in it."""
    from pyarrow import fs as pafs

    full = wh.lake.full(folder)
    try:
        if not wh.lake.fs.get_file_info(pafs.FileSelector(full, recursive=True)):
            wh.lake.fs.delete_dir(full)
    except (OSError, FileNotFoundError):  # gone already, or not ours to judge: leave it
        pass


def _model_lake_files(s: Session, mid: int) -> list[m.LakeFile]:
    owners = [select(m.Prediction.lake_file_id).where(m.Prediction.model_id == mid),
              select(m.TrainingRecord.lake_file_id).where(m.TrainingRecord.model_id == mid),
              select(m.AtomGrades.lake_file_id).where(m.AtomGrades.model_id == mid),
              select(m.MDSeries.lake_file_id).join(m.MDRun, m.MDRun.id == m.MDSeries.md_run_id)
              .where(m.MDRun.model_id == mid)]
    ids = sorted({i for stmt in owners for i in s.scalars(stmt.distinct()) if i is not None})
    out: list[m.LakeFile] = []
    for chunk in _chunks(ids):
        out += s.scalars(select(m.LakeFile).where(m.LakeFile.id.in_(chunk))).all()
    return out


def _renamed_path(path: str, old: str, new: str) -> str:
    parts = path.split("/")
    key = f"model={partition_value(old)}"
    return "/".join(f"model={partition_value(new)}" if p == key else p for p in parts)


# -- datasets --------------------------------------------------------------------------------

def _dataset(s: Session, name: str, *, lock: bool = False) -> m.Dataset:
    return _named(s, m.Dataset, name, what="dataset", listed_by="warehouse info", lock=lock)


def rename_dataset(wh: Warehouse, old: str, new: str) -> None:
    """Rename dataset ``old`` to ``new`` (and the inference timings that name it)."""
    check_name(new, what="dataset")
    with Session(wh.engine) as s:
        ds = _dataset(s, old, lock=True)
        if s.scalar(select(m.Dataset.id).where(m.Dataset.name == new)) is not None:
            raise NameTaken(f"a dataset named {new!r} exists already; remove it or pick another name")
        ds.name = new
        for t in s.scalars(select(m.Timing).where(m.Timing.system == f"dataset {old}")):
            t.system = f"dataset {new}"
            if isinstance(t.extra, dict) and t.extra.get("dataset") == old:
                t.extra = {**t.extra, "dataset": new}
        s.commit()


def remove_dataset(wh: Warehouse, name: str, *, dry_run: bool = False) -> Removal:
    """Delete dataset ``name``, its memberships and what only it holds (see the module notes)."""
    out = Removal("dataset", name)
    with Session(wh.engine) as s:
        ds = _dataset(s, name, lock=True)
        other = aliased(m.DatasetMember)
        members = _ids(s, select(m.DatasetMember.structure_id).where(m.DatasetMember.dataset_id == ds.id))
        only = _ids(s, select(m.DatasetMember.structure_id).where(
            m.DatasetMember.dataset_id == ds.id,
            ~exists().where(other.structure_id == m.DatasetMember.structure_id,
                            other.dataset_id != ds.id)))
        refs = _orphaned_references(s, ds, members, set(only))
        files = set(_chunked_scalars(s, m.Reference.lake_file_id, m.Reference.id, refs))
        _delete_in(s, m.PredictionElementError, m.PredictionElementError.reference_id, refs)
        _delete_in(s, m.PredictionError, m.PredictionError.reference_id, refs)
        out.counts["references"] = _delete_in(s, m.Reference, m.Reference.id, refs)
        preds = sorted(set(_chunked_scalars(s, m.Prediction.id, m.Prediction.structure_id, only)))
        files |= _remove_predictions(s, preds, out)
        files |= set(_chunked_scalars(s, m.AtomGrades.lake_file_id, m.AtomGrades.structure_id, only))
        out.counts["atom grades"] = _delete_in(s, m.AtomGrades, m.AtomGrades.structure_id, only)
        for chunk in _chunks(only):
            s.execute(update(m.Property).where(m.Property.structure_id.in_(chunk))
                      .values(structure_id=None))
        out.counts["members"] = s.execute(
            delete(m.DatasetMember).where(m.DatasetMember.dataset_id == ds.id)).rowcount
        files |= set(_chunked_scalars(s, m.Structure.lake_file_id, m.Structure.id, only))
        _delete_in(s, m.StructureElement, m.StructureElement.structure_id, only)
        out.counts["structures"] = _delete_in(s, m.Structure, m.Structure.id, only)
        for kept in (m.LeaderboardSums, m.LeaderboardExpected):  # warehouse.keptsums, as above
            s.execute(delete(kept).where(kept.dataset_id == ds.id))
        s.execute(delete(m.Dataset).where(m.Dataset.id == ds.id))
        return _finish(wh, s, out, files, dry_run)


def _orphaned_references(s: Session, ds: m.Dataset, members: list[int], only: set[int]) -> list[int]:
    """References that only this dataset uses: every one of its own structures', and those of
    shared structures at its level that no other dataset at that level holds."""
    other = aliased(m.DatasetMember)
    out: list[int] = []
    for chunk in _chunks(members):
        rows = s.execute(select(m.Reference.id, m.Reference.structure_id, m.Reference.level_of_theory_id)
                         .where(m.Reference.structure_id.in_(chunk))).all()
        shared_here = {sid for sid in s.scalars(
            select(other.structure_id).join(m.Dataset, m.Dataset.id == other.dataset_id)
            .where(other.structure_id.in_(chunk), other.dataset_id != ds.id,
                   m.Dataset.level_of_theory_id == ds.level_of_theory_id))}
        out += [rid for rid, sid, lot in rows if sid in only
                or (lot == ds.level_of_theory_id and sid not in shared_here)]
    return sorted(out)

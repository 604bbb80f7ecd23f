"""The one writer: records in, catalog rows and lake files out, in one transaction.

Usage::

    with ingest_run(wh, kind="structures", source=path) as loader:
        level = loader.level_of_theory("PBE-PAW-520")
        ds = loader.dataset("pbte", level)
        loader.add_frames(parse_extxyz(path), dataset_id=ds, level_id=level, path=path)
    print(loader.summary.line())

Everything ``ingest_run`` does lands at commit or not at all: on any exception (Ctrl-C included)
the catalog transaction is rolled back, the lake files it wrote are deleted, and the run's
provenance row (registered as ``running`` before anything was written) is marked ``failed`` with
the reason. A kill -9 can leave lake files without rows and the row ``running``; ``warehouse
check --repair`` removes the files once the run's lock shows its process gone, and marks the row.

The loader composes the writer's parts (``ingest/writers/``): ``names`` (race-free get-or-create),
``lakefiles`` (reserve, write, complete), ``bulk`` (the batch path: COPY on PostgreSQL, ids,
key checks), ``conflicts`` (collisions with concurrent ingests retried); matching and error sums
are its own methods below.
"""

from __future__ import annotations

import signal
import traceback
from collections.abc import Callable, Iterable, Iterator
from itertools import repeat
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
from sqlalchemy import insert, select, text, update
from sqlalchemy.orm import Session

from ingest import interrupts
from ingest.interrupts import critical, watch_engine
from ingest.writers.bulk import BulkPath, as_float
from ingest.writers.conflicts import conflict_of
from ingest.writers.errorsums import PredictionWriter
from ingest.writers.lakefiles import LakeFiles
from ingest.writers.matching import Matcher
from ingest.writers.names import Names
from ingest.writers.readback import atom_index, chunks
from warehouse import models as m
from warehouse.core import Warehouse
from warehouse.db import BEGIN_IMMEDIATE
from warehouse.errors import IngestError
from warehouse.identity import bind_lake
from warehouse.keptsums import add_run
from warehouse.lake import LakeTransaction, numpy_table
from warehouse.locks import RunLock, advisory_key
from warehouse.names import check_name
from warehouse.provenance import new_run, now, run_ended
from warehouse.records import BATCH_ATOMS, Frame, FrameBatch, PredictionFrame

STRUCTURE_COLS = ("id", "hash", "order_free_hash", "n_atoms", "formula", "elements", "n_elements",
                  "cell", "pbc", "volume", "lake_file_id", "ingest_run_id")
MEMBER_COLS = ("dataset_id", "structure_id", "split", "subset", "config_type", "weight",
               "source_index", "ingest_run_id")
REFERENCE_COLS = ("id", "structure_id", "level_of_theory_id", "energy", "free_energy", "stress_xx",
                  "stress_yy", "stress_zz", "stress_yz", "stress_xz", "stress_xy", "has_forces",
                  "lake_file_id", "ingest_run_id")
# the tables that the batch path writes in bulk (Loader._rows), lake-file rows included: all of
# them are COPYed with triggers off in the deferred key-check mode, so all must be checked for
# triggers of their own (ingest.writers.bulk.key_check_mode)
# Ingest runs this process committed, in order: an interrupt that lands after a commit (a signal
# is held off during it, then raised) must not be reported as "nothing kept" (cli.early).
COMMITTED_RUNS: list[int] = []

BULK_TABLES = (m.LakeFile, m.Structure, m.StructureElement, m.DatasetMember, m.Reference,
               m.Prediction, m.PredictionError, m.PredictionElementError)


@dataclass
class IngestSummary:
    kind: str
    run_id: int | None = None
    added: dict[str, int] = field(default_factory=dict)
    present: dict[str, int] = field(default_factory=dict)
    refused: int = 0
    notes: list[str] = field(default_factory=list)

    def add(self, what: str, n: int = 1) -> None:
        self.added[what] = self.added.get(what, 0) + n

    def seen(self, what: str, n: int = 1) -> None:
        self.present[what] = self.present.get(what, 0) + n

    @property
    def nothing_new(self) -> bool:
        return not any(self.added.values())

    def line(self) -> str:
        def fmt(d: dict[str, int]) -> str:
            return ", ".join(f"{v} {k}" for k, v in d.items() if v) or "nothing"

        run = f"run {self.run_id}" if self.run_id is not None else "no run: nothing to do"
        head = f"{self.kind} ({run}): added {fmt(self.added)}"
        head += f"; already present {fmt(self.present)}; refused {self.refused}"
        if self.nothing_new:
            head += " -- nothing new was added"
        return head

    def as_dict(self) -> dict[str, Any]:
        return {"added": self.added, "present": self.present, "refused": self.refused}


def _batches(frames: Iterable[Any], n_atoms_of) -> Iterator[list[Any]]:
    batch: list[Any] = []
    atoms = 0
    for item in frames:
        batch.append(item)
        atoms += n_atoms_of(item)
        if atoms >= BATCH_ATOMS:
            yield batch
            batch, atoms = [], 0
    if batch:
        yield batch


class Loader:
    """Writes one ingest's records; created by :func:`ingest_run`."""

    def __init__(self, wh: Warehouse, session: Session, lake: LakeTransaction, run: m.IngestRun,
                 *, side: Any = None):
        self.wh = wh
        self.s = session  # the ingest's one session/transaction; writers may add rows to it
        self.lake = lake
        self.run = run
        self.summary = IngestSummary(kind=run.kind, run_id=run.id)
        self.names = Names(session, run.id, self.summary.add)
        self._sid_by_hash: dict[str, int] = {}
        self.bulk = BulkPath(session, wh.engine, [t.__table__ for t in BULK_TABLES], side=side)
        self.files = LakeFiles(session, lake, self.bulk, run.id)
        # what this ingest added (its rows are invisible to the second connection)
        self._members_added: set[tuple[int, int]] = set()  # (dataset id, structure id)
        self._refs_added: set[tuple[int, int]] = set()  # (level of theory id, structure id)
        self._created: set[int] = set()  # ids of the structures this ingest created
        # whether a batch held a structure stored before this ingest (warehouse.keptsums.add_run)
        self.older_structures = False
        self.matcher = Matcher(self)  # which stored structure a frame is (hash, tolerance)
        self.predictions = PredictionWriter(self)  # predictions and their error sums

    # -- named things (ingest.writers.names) -------------------------------------------------

    def level_of_theory(self, name: str | None, **attrs: Any) -> int:
        return self.names.level_of_theory(
            None if name is None else check_name(name, what="level of theory"), **attrs)

    def dataset(self, name: str, level_id: int, *, description: str | None = None) -> int:
        return self.names.dataset(check_name(name, what="dataset"), level_id,
                                  description=description)

    def existing_dataset(self, name: str) -> m.Dataset:
        return self.names.existing_dataset(name)

    def model(self, name: str, **attrs: Any) -> int:
        return self.names.model(check_name(name, what="model"), **attrs)

    # -- lake files (ingest.writers.lakefiles) and the batch path (ingest.writers.bulk) --------

    def reserve_lake_file(self, kind: str) -> m.LakeFile:
        """A ``lake_files`` row to own a batch of rows, before the file exists (see
        :class:`ingest.writers.lakefiles.LakeFiles`)."""
        return self.files.reserve(kind)

    def fill_lake_file(self, lf: m.LakeFile | int, table_name: str, table: pa.Table, *,
                       background: bool = False, **parts: object) -> None:
        """Write ``table`` under ``<lake>/<table_name>/<key=value>.../`` and complete ``lf``
        (with ``background``, by a worker thread, completed by :meth:`flush_lake_files`)."""
        self.files.fill(lf, table_name, table, background=background, **parts)

    def flush_lake_files(self) -> None:
        """Wait for the background lake writes; record each file's path and sha256 on its row."""
        self.files.flush()

    def _reserve_lake_file_id(self, kind: str) -> int:
        return self.files.reserve_id(kind)

    def _start_background_writes(self) -> None:
        self.bulk.start()

    def _new_ids(self, table: Any, n: int) -> list[int]:
        return self.bulk.new_ids(table, n)

    def _read_conn(self) -> Any:
        """Where the batch path reads committed rows and allocates ids."""
        return self.bulk.read_conn()

    def _rows(self, table: type, columns: tuple[str, ...], rows: list[tuple]) -> None:
        self.bulk.rows(table.__table__, columns, rows)

    def _finish_background(self) -> None:
        """Before commit: the background lake files recorded, the background COPYs done (their
        errors raised here), both workers stopped."""
        self.flush_lake_files()
        try:
            self.bulk.finish()
        except IngestError as exc:  # the key check's: it knows no file
            if exc.path is not None or self.run.source_uri is None:
                raise
            raise IngestError(str(exc), path=self.run.source_uri) from exc
        self._stop_background()

    def _stop_background(self) -> None:
        """Let background work finish (lake files are then known to the lake transaction, for a
        rollback to remove; no COPY is left running on the connection) and stop the workers."""
        self.bulk.stop()
        self.files.stop()

    # -- structures and references ------------------------------------------------------------

    def _lookup_hashes(self, hashes: list[str]) -> dict[str, int]:
        """Structure id of each of ``hashes`` that is stored: this ingest's own (remembered,
        invisible to the side connection) or committed ones."""
        todo = sorted({h for h in hashes if h not in self._sid_by_hash})
        self._sid_by_hash.update(self.bulk.lookup_hashes(todo))
        return {h: self._sid_by_hash[h] for h in hashes if h in self._sid_by_hash}

    def add_frames(
        self,
        frames: Iterable[Frame],
        *,
        dataset_id: int,
        level_id: int,
        path: str,
        subset: str | None = None,
        split: str | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> list[int]:
        """Store structures (deduplicated), their dataset membership and their reference labels.

        Returns the structure id of every frame, in order. ``progress(n_structures, n_atoms)`` is
        called after each batch.
        """
        batches = (FrameBatch.from_frames(b) for b in _batches(frames, lambda f: f.n_atoms))
        return self.add_batches(batches, dataset_id=dataset_id, level_id=level_id, subset=subset,
                                split=split, progress=progress)

    def add_batches(
        self,
        batches: Iterable[FrameBatch],
        *,
        dataset_id: int,
        level_id: int,
        subset: str | None = None,
        split: str | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> list[int]:
        """:meth:`add_frames` for frames already in batches (a columnar reader's output)."""
        all_ids: list[int] = []
        for batch in batches:
            # the previous batch's lake files were written meanwhile, beside its statements
            self.flush_lake_files()
            all_ids += self._add_frame_batch(batch, dataset_id, level_id, subset, split)
            if progress is not None:
                progress(len(batch), batch.n_atoms)
        self.flush_lake_files()
        return all_ids

    def _add_frame_batch(
        self, b: FrameBatch, dataset_id: int, level_id: int, subset: str | None,
        split: str | None,
    ) -> list[int]:
        hashes, free = b.identity()
        # First every statement whose answer the rows need (what exists, new ids); then the
        # rows, which on PostgreSQL a worker writes while the next ones are built.
        self._start_background_writes()
        known = self._lookup_hashes(hashes)
        new: list[int] = []  # positions in the batch of structures not stored yet
        seen: set[str] = set()
        for i, h in enumerate(hashes):
            if h not in known and h not in seen:
                seen.add(h)
                new.append(i)
        if new:
            ids = self._new_ids(m.Structure.__table__, len(new))
            self._sid_by_hash.update({hashes[i]: sid for i, sid in zip(new, ids, strict=True)})
            self._created.update(ids)
        self.summary.add("structures", len(new))
        self.summary.seen("structures", len(b) - len(new))
        sids = [self._sid_by_hash[h] for h in hashes]
        # Only structures known before this batch can already have members or references.
        old = {sids[i] for i, h in enumerate(hashes) if h in known}
        self.older_structures = self.older_structures or not old <= self._created
        self._lock_parents(dataset_id, level_id, old)
        members = self._existing(m.DatasetMember, m.DatasetMember.dataset_id, dataset_id, old,
                                 self._members_added)
        refs = self._existing(m.Reference, m.Reference.level_of_theory_id, level_id, old,
                              self._refs_added)
        todo: list[int] = []  # positions in the batch of frames whose labels become references
        for i, sid in enumerate(sids):
            if not b.has_labels(i):
                continue
            if sid in refs:
                self.summary.seen("references")
                continue
            refs.add(sid)
            self._refs_added.add((level_id, sid))
            todo.append(i)
        has_forces = b.has_forces.tolist()
        with_forces = [k for k, i in enumerate(todo) if has_forces[i]]
        ref_ids = self._new_ids(m.Reference.__table__, len(todo))

        if new:
            self._write_structures(b, new, hashes, free, ids, self._reserve_lake_file_id("positions"))
        self._write_members(b, sids, dataset_id, subset, split, members)
        if todo:
            forces_lf = self._reserve_lake_file_id("reference_forces") if with_forces else None
            self._write_references(b, sids, level_id, todo, ref_ids, with_forces, forces_lf)
            # predictions can exist only for structures stored before this batch
            self._errors_for_new_references(
                [rid for rid, i in zip(ref_ids, todo, strict=True) if sids[i] in old])
        return sids

    def _lock_parents(self, dataset_id: int, level_id: int, old: set[int]) -> None:
        self.bulk.lock_parents([(m.Dataset.__tablename__, dataset_id),
                                (m.LevelOfTheory.__tablename__, level_id)], old)

    def _existing(self, table: type, scope_col: Any, scope: int, sids: set[int],
                  added: set[tuple[int, int]]) -> set[int]:
        """Which of ``sids`` already have a row in ``table`` (members, references) for ``scope``
        (a dataset, a level of theory): added by this ingest, or committed before."""
        found = {sid for sid in sids if (scope, sid) in added}
        conn = self._read_conn()
        for chunk in chunks(sorted(sids - found)):
            found.update(conn.execute(select(table.structure_id).where(
                scope_col == scope, table.structure_id.in_(chunk))).scalars())
        return found

    def _write_structures(self, b: FrameBatch, new: list[int], hashes: list[str],
                          free: list[str], ids: list[int], lf_id: int) -> None:
        new_arr = np.asarray(new, dtype=np.int64)
        n_new = b.counts[new_arr]
        d = b.description()  # usually computed by the reader process already
        run_id = self.run.id

        def pick(column: list) -> list:
            return column if len(new) == len(b) else [column[i] for i in new]

        # columns zipped into rows (a Python loop over the structures cost ~3x as much)
        rows = list(zip(ids, pick(hashes), pick(free), pick(b.counts.tolist()), pick(d.formulas),
                        pick(d.elements_text), pick(d.n_elements), pick(d.cell_json),
                        pick(d.pbc_text), pick(d.volumes), repeat(lf_id), repeat(run_id)))
        elements = [(sid, e, c) for sid, i in zip(ids, new, strict=True)
                    for e, c in zip(d.symbols[i], d.counts[i], strict=True)]
        self._rows(m.Structure, STRUCTURE_COLS, rows)
        self._rows(m.StructureElement, ("structure_id", "element", "count"), elements)
        if len(new) == len(b):
            numbers, pos = b.numbers, b.positions
        else:
            mask = np.repeat(np.isin(np.arange(len(b)), new_arr), b.counts)
            numbers, pos = b.numbers[mask], b.positions[mask]
        table = numpy_table({
            "structure_id": np.repeat(np.asarray(ids, dtype=np.int64), n_new),
            "atom_index": atom_index(n_new),
            "Z": numbers.astype(np.int16),
            "x": pos[:, 0], "y": pos[:, 1], "z": pos[:, 2],
        })
        self.fill_lake_file(lf_id, "positions", table, background=True, run=self.run.id)

    def _write_members(
        self, b: FrameBatch, sids: list[int], dataset_id: int, subset: str | None,
        split: str | None, existing: set[int],
    ) -> None:
        run_id = self.run.id
        if not existing and len(set(sids)) == len(sids):
            # the common case, every structure new to the dataset and none twice: columns zipped
            existing.update(sids)
            self._members_added.update(zip(repeat(dataset_id), sids))
            subsets = b.config_type if subset is None else repeat(subset)
            rows = list(zip(repeat(dataset_id), sids, repeat(split), subsets, b.config_type,
                            b.weight, b.index, repeat(run_id)))
        else:
            rows = []
            for sid, ctype, weight, index in zip(sids, b.config_type, b.weight, b.index,
                                                 strict=True):
                if sid in existing:
                    self.summary.seen("members")
                    continue
                existing.add(sid)
                self._members_added.add((dataset_id, sid))
                rows.append((dataset_id, sid, split, subset if subset is not None else ctype,
                             ctype, weight, index, run_id))
        self._rows(m.DatasetMember, MEMBER_COLS, rows)
        self.summary.add("members", len(rows))

    def _write_references(self, b: FrameBatch, sids: list[int], level_id: int, todo: list[int],
                          ref_ids: list[int], with_forces: list[int],
                          lf_id: int | None) -> None:
        has_forces = b.has_forces.tolist()
        run_id = self.run.id
        stresses = [b.stress[i] for i in todo]
        if stresses and all(s is not None for s in stresses):  # the common case: stacked once
            stress_cols = np.stack(stresses).T.tolist()
        else:
            no_stress = (None,) * 6
            stress_cols = list(zip(*(no_stress if s is None else s.tolist() for s in stresses),
                                   strict=True))
        hf = [has_forces[i] for i in todo]
        rows = list(zip(ref_ids, [sids[i] for i in todo], repeat(level_id),
                        [as_float(b.energy[i]) for i in todo],
                        [as_float(b.free_energy[i]) for i in todo], *stress_cols, hf,
                        [lf_id if h else None for h in hf], repeat(run_id)))
        self._rows(m.Reference, REFERENCE_COLS, rows)
        if with_forces:
            frames = np.zeros(len(b), dtype=np.bool_)
            frames[[todo[k] for k in with_forces]] = True
            n = b.counts[frames]
            forces = b.forces if frames.all() else b.forces[np.repeat(frames, b.counts)]
            self.fill_lake_file(lf_id, "reference_forces", numpy_table({
                "reference_id": np.repeat(np.array([ref_ids[k] for k in with_forces], np.int64), n),
                "structure_id": np.repeat(np.array([sids[todo[k]] for k in with_forces], np.int64), n),
                "atom_index": atom_index(n),
                "fx": forces[:, 0], "fy": forces[:, 1], "fz": forces[:, 2],
            }), background=True, level=level_id)
        self.summary.add("references", len(ref_ids))

    # -- predictions --------------------------------------------------------------------------

    def add_predictions(
        self, model_id: int, items: Iterable[PredictionFrame], *, path: str,
        progress: Callable[[int, int], None] | None = None,
    ) -> None:
        """Store a model's predictions, matched to stored structures (ingest.writers.matching:
        by content hash, by the order-free hash with the per-atom arrays permuted back, or
        within a tolerance). Predictions of structures not in the warehouse are refused as a
        whole, with the count and the first examples. ``progress(n_structures, n_atoms)`` is
        called after each batch."""
        batches = ((FrameBatch.from_frames([p.frame for p in batch]), [p.status for p in batch],
                    [p.message for p in batch])
                   for batch in _batches(items, lambda p: p.frame.n_atoms))
        self._add_prediction_batches(model_id, batches, path=path, progress=progress)

    def add_prediction_batches(
        self, model_id: int, batches: Iterable[FrameBatch], *, path: str,
        progress: Callable[[int, int], None] | None = None,
    ) -> None:
        """:meth:`add_predictions` for batches of frames whose labels are the predictions, all
        ``ok`` (a columnar reader's output)."""
        self._add_prediction_batches(
            model_id, ((b, ["ok"] * len(b), [None] * len(b)) for b in batches), path=path,
            progress=progress)

    def _add_prediction_batches(
        self, model_id: int, batches: Iterable[tuple[FrameBatch, list[str], list[str | None]]],
        *, path: str, progress: Callable[[int, int], None] | None,
    ) -> None:
        missing: list[str] = []
        total = 0
        for b, status, message in batches:
            total += len(b)
            self.flush_lake_files()  # the previous batch's, written meanwhile
            sids, perms = self.matcher.match(b)
            missing += [f"frame {b.index[i]} ({int(b.counts[i])} atoms)"
                        for i, sid in enumerate(sids) if sid is None]
            self.predictions.add(model_id, b, sids, perms, status, message)
            if progress is not None:
                progress(len(b), b.n_atoms)
        self.flush_lake_files()
        if missing:
            raise IngestError(
                f"{len(missing)} of {total} structures are not in the warehouse (first: "
                + "; ".join(missing[:5])
                + "); ingest them first with `warehouse ingest structures`",
                path=path,
            )

    def match_structures(self, batch: list[PredictionFrame]) -> tuple[list[int | None], list[np.ndarray | None]]:
        """Stored structure id of each frame (None if absent) and, for a frame whose atoms come in
        another order, the permutation that puts its per-atom arrays in stored order."""
        return self.matcher.match(FrameBatch.from_frames([p.frame for p in batch]))

    def _errors_for_new_references(self, ref_ids: list[int]) -> None:
        self.predictions.errors_for_new_references(ref_ids)

    def add_training_record(self, model_id: int, source: str, table: pa.Table, summary: dict) -> None:
        lf = self.reserve_lake_file("training")
        model_name = self.s.get(m.Model, model_id).name
        self.fill_lake_file(lf, "training", table, model=model_name)
        self.s.add(m.TrainingRecord(
            model_id=model_id, source=source, summary=summary, lake_file_id=lf.id,
            ingest_run_id=self.run.id,
        ))
        self.summary.add("training records")


@contextmanager
def ingest_run(
    wh: Warehouse,
    *,
    kind: str,
    source: str | None = None,
    source_sha256: str | None = None,
    argv: list[str] | None = None,
    notes: str | None = None,
) -> Iterator[Loader]:
    """One ingest, one transaction: yields a :class:`Loader`; commits, or undoes everything.

    Before it writes anything the run is registered: its ``running`` row committed and its run
    lock held (``warehouse.locks.RunLock``) until after the commit or rollback, so that
    ``warehouse check --repair`` leaves its lake files alone meanwhile. On PostgreSQL, ingests of
    the same source (same sha256) queue on an advisory lock: the later ones find the rows of the
    first "already present" instead of colliding with them (``ingest.writers.conflicts``).
    """
    watch_engine(wh.engine)
    run_id, run_lock = _register(wh, new_run(kind, source_uri=source, source_sha256=source_sha256,
                                             argv=argv, notes=notes))
    # SQLite: the write lock from BEGIN on (warehouse.db.BEGIN_IMMEDIATE), so that no other writer
    # commits between this ingest's look-ups and its inserts
    session = Session(wh.engine.execution_options(**{BEGIN_IMMEDIATE: True}), expire_on_commit=False)
    lake_txn = LakeTransaction(wh.lake, run_id)
    loader = None
    try:
        run = session.get(m.IngestRun, run_id)
        if source_sha256 is not None and wh.dialect == "postgresql":
            session.execute(text("SELECT pg_advisory_xact_lock(:k)"),
                            {"k": advisory_key(f"source:{kind}:{source_sha256}")})
        loader = Loader(wh, session, lake_txn, run, side=run_lock.conn)
        yield loader
        with critical():
            loader._finish_background()
            # the leaderboard's kept sums, in this transaction: the one place they are added to
            session.flush()
            add_run(session.connection(), run.id, older_structures=loader.older_structures)
            run.status, run.finished_at = "ok", now()
            run.counts = loader.summary.as_dict()
            session.commit()
            COMMITTED_RUNS.append(run_id)
    except BaseException as exc:
        # the failed statement's cursor and result, kept alive by the traceback's frames, would
        # hold a SQLite connection (and its write lock) open past the rollback below
        traceback.clear_frames(exc.__traceback__)
        if loader is not None:
            loader._stop_background()  # its files are in lake_txn.written once it stops
        try:
            session.rollback()
        except Exception:  # a broken connection: the database undoes the transaction itself
            pass
        session.close()  # give the connection back before the failure is recorded
        # An interrupt can land after COMMIT succeeded but before it returned: then the rows
        # exist and their lake files must stay.
        if not _landed(wh, run_id):
            lake_txn.rollback()
            _record_failure(wh, run_id, exc)
        raise
    finally:
        session.close()
        run_lock.release()
        run_ended()


def _register(wh: Warehouse, run: m.IngestRun) -> tuple[int, RunLock]:
    """Commit ``run`` as ``running`` with its run lock held before anyone can see the row,
    binding the lake to the catalog on first use."""
    lock = RunLock(wh.engine)
    fields = {c: getattr(run, c) for c in _RUN_FIELDS}
    try:
        if wh.dialect == "postgresql":
            conn = lock.connect()  # autocommit: the id is drawn and locked, then the row is made
            run_id = conn.scalar(text("SELECT nextval(pg_get_serial_sequence('ingest_runs', 'id'))"))
            lock.hold(run_id)
            bind_lake(wh, conn)
            conn.execute(insert(m.IngestRun).values(id=run_id, **fields, status="running"))
            return run_id, lock
        with wh.engine.execution_options(**{BEGIN_IMMEDIATE: True}).begin() as conn:
            bind_lake(wh, conn)
            run_id = conn.execute(insert(m.IngestRun).values(**fields, status="running")
                                  .returning(m.IngestRun.id)).scalar_one()
            lock.hold(run_id)  # inside the transaction: the row is seen only with the lock held
        return run_id, lock
    except BaseException:
        lock.release()
        raise


_RUN_FIELDS = ("kind", "source_uri", "source_sha256", "argv", "user", "host", "started_at",
               "warehouse_version", "library_versions", "notes")


def _landed(wh: Warehouse, run_id: int) -> bool:
    try:
        with Session(wh.engine) as s:
            return s.scalar(select(m.IngestRun.status).where(m.IngestRun.id == run_id)) == "ok"
    except Exception:  # cannot tell: undoing the lake files is the safe side of a failed ingest
        return False


def _record_failure(wh: Warehouse, run_id: int, exc: BaseException) -> None:
    """Mark the run's row failed with the reason, in its own small transaction."""
    message = str(exc) or type(exc).__name__
    if conflict_of(exc) is not None:
        message = f"undone to be retried: a concurrent ingest wrote the same rows ({message})"
    elif interrupts.received is not None and not isinstance(exc, interrupts.Interrupted):
        # the signal's exception, replaced on its way by C code (see interrupts.received)
        message = f"interrupted by signal {signal.Signals(interrupts.received).name} ({message})"
    try:
        with wh.engine.begin() as conn:
            conn.execute(update(m.IngestRun).where(m.IngestRun.id == run_id).values(
                status="failed", finished_at=now(), message=message[:2000]))
    except Exception:  # the database itself may be what failed; the original error matters more
        pass

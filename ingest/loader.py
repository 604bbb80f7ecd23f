"""The one writer: records in, catalog rows and lake files out, in one transaction.

Usage::

    with ingest_run(wh, kind="structures", source=path) as loader:
        level = loader.level_of_theory("PBE-PAW-520")
        ds = loader.dataset("pbte", level)
        loader.add_frames(parse_extxyz(path), dataset_id=ds, level_id=level, path=path)
    print(loader.summary.line())

Everything ``ingest_run`` does lands at commit or not at all: on any exception (Ctrl-C included)
the catalog transaction is rolled back, the lake files it wrote are deleted, and a separate
``failed`` provenance row records what was attempted. A kill -9 can leave lake files without rows;
``warehouse check --repair`` removes them (they are never referenced, so never read).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Iterator
from itertools import repeat
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
from ase.data import chemical_symbols
from sqlalchemy import insert, select, text
from sqlalchemy.orm import Session

from ingest.interrupts import critical
from ingest.bulk import BackgroundWriter, allocate_ids, as_float, bulk_insert, key_check_mode
from warehouse.records import BATCH_ATOMS, Frame, FrameBatch, Labels, PredictionFrame
from warehouse import models as m
from warehouse.core import Warehouse
from warehouse.describe import composition, reduced_formula
from warehouse.errors import IngestError, NotFound
from warehouse.errorsums import calc_element_force_sums, calc_error_sums
from warehouse.hashing import structure_hashes, structure_hashes_batch
from warehouse.lake import LakeTransaction, numpy_table
from warehouse.provenance import new_run, now, run_ended

# Keep IN (...) lists well under SQLite's 32,766 bound-parameter limit.
IN_CHUNK = 900
# Two files describe the same structure when every atom is within this distance (Å, minimum
# image) of an atom of the same species: files written with 8 decimals differ by 5e-9 Å.
MATCH_TOL = 1e-5
# The tolerant match reads each candidate's positions from the lake; a file of structures that
# are genuinely absent from a large same-cell dataset (AIMD snapshots) must not read them all for
# every frame. Past this many candidates a frame counts as unmatched (and is reported as such).
MATCH_MAX_CANDIDATES = 64
UNKNOWN_LEVEL = "unspecified"
STRUCTURE_COLS = ("id", "hash", "order_free_hash", "n_atoms", "formula", "elements", "n_elements",
                  "cell", "pbc", "volume", "lake_file_id", "ingest_run_id")
MEMBER_COLS = ("dataset_id", "structure_id", "split", "subset", "config_type", "weight",
               "source_index", "ingest_run_id")
LAKE_FILE_COLS = ("id", "path", "kind", "sha256", "n_rows", "n_bytes", "ingest_run_id")
REFERENCE_COLS = ("id", "structure_id", "level_of_theory_id", "energy", "free_energy", "stress_xx",
                  "stress_yy", "stress_zz", "stress_yz", "stress_xz", "stress_xy", "has_forces",
                  "lake_file_id", "ingest_run_id")
# Ids taken from a sequence at a time on PostgreSQL (Loader._new_ids): a few batches' worth.
ID_BLOCK = 4096
ID_BLOCKS = {"lake_files": 32}
_COMPLETE_LAKE_FILE = text("UPDATE lake_files SET path = :path, sha256 = :sha256, n_rows = :n_rows,"
                           " n_bytes = :n_bytes WHERE id = :id")
# the tables that the batch path writes in bulk (Loader._rows), lake-file rows included: all of
# them are COPYed with triggers off in the deferred key-check mode, so all must be checked for
# triggers of their own (ingest.bulk.key_check_mode)
BULK_TABLES = (m.LakeFile, m.Structure, m.StructureElement, m.DatasetMember, m.Reference)
STRESS_COLS = ("stress_xx", "stress_yy", "stress_zz", "stress_yz", "stress_xz", "stress_xy")
SYMBOLS = np.array(chemical_symbols)


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

        head = f"{self.kind} (run {self.run_id}): added {fmt(self.added)}"
        head += f"; already present {fmt(self.present)}; refused {self.refused}"
        if self.nothing_new:
            head += " -- nothing new was added"
        return head

    def as_dict(self) -> dict[str, Any]:
        return {"added": self.added, "present": self.present, "refused": self.refused}


def _atom_index(counts: np.ndarray) -> np.ndarray:
    """0..n-1 for every structure's n atoms, concatenated (int32, as the lake stores it)."""
    counts = np.asarray(counts, dtype=np.int64)
    out = np.arange(int(counts.sum()), dtype=np.int32)
    out -= np.repeat((np.cumsum(counts) - counts).astype(np.int32), counts)
    return out


def _chunks(items: list[Any], size: int = IN_CHUNK) -> Iterator[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


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


def _stress_dict(stress: np.ndarray | None) -> dict[str, float | None]:
    if stress is None:
        return dict.fromkeys(STRESS_COLS)
    return {c: float(v) for c, v in zip(STRESS_COLS, stress, strict=True)}


def _stress_of(row: Any) -> np.ndarray | None:
    vals = [getattr(row, c) for c in STRESS_COLS]
    return None if any(v is None for v in vals) else np.array(vals, dtype=np.float64)


class Loader:
    """Writes one ingest's records; created by :func:`ingest_run`."""

    def __init__(self, wh: Warehouse, session: Session, lake: LakeTransaction, run: m.IngestRun):
        self.wh = wh
        self.s = session  # the ingest's one session/transaction; writers may add rows to it
        self.lake = lake
        self.run = run
        self.summary = IngestSummary(kind=run.kind, run_id=run.id)
        self._sid_by_hash: dict[str, int] = {}
        self._pool = None  # a worker thread for background lake writes, made on first use
        self._pending: list[tuple[int, Any]] = []  # (lake_files id, future of its WrittenFile)
        # PostgreSQL, once the first batch comes: this transaction's writes go through a worker
        # (BackgroundWriter); what the loader must know (committed rows, new ids) is read over a
        # second, autocommit connection, so reading never waits for the writes
        self._writer: BackgroundWriter | None = None
        self._side: Any = None
        self._key_checks = "triggers"  # or "deferred": see ingest.bulk's notes on foreign keys
        self._locked: set[tuple[str, int]] = set()  # parents locked FOR KEY SHARE ("deferred")
        self._id_pool: dict[str, list[int]] = {}  # table -> ids taken from its sequence, unused
        # what this ingest added (its rows are invisible to the second connection)
        self._members_added: set[tuple[int, int]] = set()  # (dataset id, structure id)
        self._refs_added: set[tuple[int, int]] = set()  # (level of theory id, structure id)

    # -- named things -------------------------------------------------------------------------

    def level_of_theory(self, name: str | None, **attrs: Any) -> int:
        name = name or UNKNOWN_LEVEL
        lot = self.s.scalar(select(m.LevelOfTheory).where(m.LevelOfTheory.name == name))
        if lot is None:
            lot = m.LevelOfTheory(name=name, **{k: v for k, v in attrs.items() if v is not None})
            self.s.add(lot)
            self.s.flush()
            self.summary.add("levels of theory")
        return lot.id

    def dataset(self, name: str, level_id: int, *, description: str | None = None) -> int:
        ds = self.s.scalar(select(m.Dataset).where(m.Dataset.name == name))
        if ds is None:
            ds = m.Dataset(
                name=name, level_of_theory_id=level_id, description=description,
                created_run_id=self.run.id,
            )
            self.s.add(ds)
            self.s.flush()
            self.summary.add("datasets")
        elif ds.level_of_theory_id != level_id:
            have = self.s.get(m.LevelOfTheory, ds.level_of_theory_id)
            want = self.s.get(m.LevelOfTheory, level_id)
            raise IngestError(
                f"dataset {name!r} holds labels at level of theory {have.name!r}, not"
                f" {want.name!r}; use another dataset name or the same --level-of-theory"
            )
        return ds.id

    def existing_dataset(self, name: str) -> m.Dataset:
        ds = self.s.scalar(select(m.Dataset).where(m.Dataset.name == name))
        if ds is None:
            raise NotFound(f"no dataset named {name!r}; `warehouse info` lists them")
        return ds

    def model(self, name: str, **attrs: Any) -> int:
        model = self.s.scalar(select(m.Model).where(m.Model.name == name))
        if model is None:
            model = m.Model(
                name=name, created_run_id=self.run.id,
                **{k: v for k, v in attrs.items() if v is not None},
            )
            self.s.add(model)
            self.s.flush()
            self.summary.add("models")
        return model.id

    # -- lake helpers -------------------------------------------------------------------------

    def reserve_lake_file(self, kind: str) -> m.LakeFile:
        """A ``lake_files`` row to own a batch of rows, before the file exists.

        Rows that point at the file can then be inserted (and get their ids) first; the file,
        keyed by those ids, is written next and :meth:`fill_lake_file` records its path and
        sha256. All of it is one transaction, so no reader ever sees the row without the file.
        """
        lf = m.LakeFile(
            path=f"pending/{self.run.id}/{uuid.uuid4().hex}", kind=kind, sha256="", n_rows=0,
            n_bytes=0, ingest_run_id=self.run.id,
        )
        self.s.add(lf)
        self.s.flush()
        return lf

    def fill_lake_file(self, lf: m.LakeFile | int, table_name: str, table: pa.Table, *,
                       background: bool = False, **parts: object) -> None:
        """Write ``table`` under ``<lake>/<table_name>/<key=value>.../`` and complete ``lf``.

        With ``background``, the file is written by a worker thread (Parquet encoding and
        compression run outside the GIL, beside this thread's database statements) and ``lf``
        is completed by the next :meth:`flush_lake_files`, which the loader calls before the
        next batch and before commit.
        """
        lf_id = lf if isinstance(lf, int) else lf.id
        if not background:
            self._complete(lf_id, self.lake.write(table_name, table, **parts))
            if not isinstance(lf, int):
                self.s.expire(lf)  # completed by a statement: read back on next use
            return
        if self._pool is None:
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="warehouse-lake")
        self._pending.append((lf_id, self._pool.submit(self.lake.write, table_name, table, **parts)))

    def flush_lake_files(self) -> None:
        """Wait for the background lake writes; record each file's path and sha256 on its row."""
        pending, self._pending = self._pending, []
        for lf_id, future in pending:
            self._complete(lf_id, future.result())

    def _complete(self, lf_id: int, wf) -> None:
        if self._writer is not None:
            self._writer.execute(
                "UPDATE lake_files SET path = %s, sha256 = %s, n_rows = %s, n_bytes = %s"
                " WHERE id = %s", (wf.path, wf.sha256, wf.n_rows, wf.n_bytes, lf_id))
            return
        # a textual statement: the ORM's UPDATE costs ~2 ms a file to build
        self.s.execute(_COMPLETE_LAKE_FILE, {
            "id": lf_id, "path": wf.path, "sha256": wf.sha256, "n_rows": wf.n_rows,
            "n_bytes": wf.n_bytes})

    def _reserve_lake_file_id(self, kind: str) -> int:
        """:meth:`reserve_lake_file` for the batch writers: its id, its row written as the
        batch's other rows are (by the background writer on PostgreSQL), not by the ORM."""
        lf_id = self._new_ids(m.LakeFile.__table__, 1)[0]
        self._rows(m.LakeFile, LAKE_FILE_COLS, [
            (lf_id, f"pending/{self.run.id}/{uuid.uuid4().hex}", kind, "", 0, 0, self.run.id)])
        return lf_id

    def _start_background_writes(self) -> None:
        if self._writer is None and self.s.bind.dialect.name == "postgresql":
            self._side = self.wh.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            self._writer = BackgroundWriter(self.s.connection())
            self._key_checks = key_check_mode(self._side, [t.__table__ for t in BULK_TABLES])

    def _new_ids(self, table: Any, n: int) -> list[int]:
        """``n`` fresh ids of ``table``. With a side connection (PostgreSQL), drawn from blocks
        taken from the table's sequence (a batch then needs no round trip for its ids; the
        unused rest of a block is a gap in the ids, as a rolled-back ingest leaves one)."""
        if self._side is None:
            return allocate_ids(self._read_conn(), table, n).tolist()
        pool = self._id_pool.setdefault(table.name, [])
        if len(pool) < n:
            block = max(n - len(pool), ID_BLOCKS.get(table.name, ID_BLOCK))
            pool += allocate_ids(self._side, table, block).tolist()
        out = pool[:n]
        del pool[:n]
        return out

    def _read_conn(self) -> Any:
        """Where the batch path reads committed rows and allocates ids."""
        return self._side if self._side is not None else self.s.connection()

    def _finish_background(self) -> None:
        """Before commit: the background lake files recorded, the background COPYs done (their
        errors raised here), both workers stopped."""
        self.flush_lake_files()
        if self._writer is not None:
            self._writer.check_keys()
            try:
                self._writer.wait()
            except IngestError as exc:  # the key check's: it knows no file
                if exc.path is not None or self.run.source_uri is None:
                    raise
                raise IngestError(str(exc), path=self.run.source_uri) from exc
        self._stop_background()

    def _stop_background(self) -> None:
        """Let background work finish (lake files are then known to the lake transaction, for a
        rollback to remove; no COPY is left running on the connection) and stop the workers."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._side is not None:
            self._side.close()
            self._side = None
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    # -- structures and references ------------------------------------------------------------

    def _lookup_hashes(self, hashes: list[str]) -> dict[str, int]:
        found: dict[str, int] = {}
        todo = sorted({h for h in hashes if h not in self._sid_by_hash})
        conn = self._read_conn()  # this ingest's own structures are in _sid_by_hash already
        if self.s.bind.dialect.name == "postgresql":
            # one parameter: PostgreSQL plans IN (...) with thousands of parameters slowly, and
            # psycopg quotes a text array element by element (a regex each); hashes are hex, so
            # one comma-joined string is the array
            rows = conn.exec_driver_sql(
                "SELECT hash, id FROM structures WHERE hash = ANY(string_to_array(%s, ','))",
                (",".join(todo),))
            found.update({h: i for h, i in rows})
            todo = []
        sqlite = self.s.bind.dialect.name == "sqlite"
        for chunk in _chunks(todo):
            if sqlite:  # SQLAlchemy renders an IN list's parameters one by one: ~10 µs each
                rows = conn.exec_driver_sql(
                    f"SELECT hash, id FROM structures WHERE hash IN ({', '.join('?' * len(chunk))})",
                    tuple(chunk))
            else:
                rows = conn.execute(
                    select(m.Structure.hash, m.Structure.id).where(m.Structure.hash.in_(chunk)))
            found.update({h: i for h, i in rows})
        self._sid_by_hash.update(found)
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
            with critical():  # an interrupt waits for the batch's statements (ingest.interrupts)
                # the previous batch's lake files were written meanwhile, beside its statements
                self.flush_lake_files()
                all_ids += self._add_frame_batch(batch, dataset_id, level_id, subset, split)
            if progress is not None:
                progress(len(batch), batch.n_atoms)
        with critical():
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
        self.summary.add("structures", len(new))
        self.summary.seen("structures", len(b) - len(new))
        sids = [self._sid_by_hash[h] for h in hashes]
        # Only structures known before this batch can already have members or references.
        old = {sids[i] for i, h in enumerate(hashes) if h in known}
        if self._key_checks == "deferred":
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
        """With deferred key checks (ingest.bulk): lock the parent rows that may predate this
        ingest ``FOR KEY SHARE``, as the foreign-key triggers would, so that none is deleted
        before it commits."""
        for table, key in ((m.Dataset, dataset_id), (m.LevelOfTheory, level_id)):
            if (table.__tablename__, key) not in self._locked:
                self._locked.add((table.__tablename__, key))
                self._writer.execute(
                    f'SELECT 1 FROM "{table.__tablename__}" WHERE id = %s FOR KEY SHARE', (key,))
        if old:
            self._writer.execute(
                "SELECT 1 FROM structures WHERE id = ANY(%s::bigint[]) FOR KEY SHARE", (sorted(old),))

    def _existing(self, table: type, scope_col: Any, scope: int, sids: set[int],
                  added: set[tuple[int, int]]) -> set[int]:
        """Which of ``sids`` already have a row in ``table`` (members, references) for ``scope``
        (a dataset, a level of theory): added by this ingest, or committed before."""
        found = {sid for sid in sids if (scope, sid) in added}
        conn = self._read_conn()
        for chunk in _chunks(sorted(sids - found)):
            found.update(conn.execute(select(table.structure_id).where(
                scope_col == scope, table.structure_id.in_(chunk))).scalars())
        return found

    def _rows(self, table: type, columns: tuple[str, ...], rows: list[tuple]) -> None:
        """Insert ``rows``: by the background writer on PostgreSQL (their foreign keys checked
        before commit instead of per row, where allowed: ingest.bulk), at once elsewhere."""
        if self._writer is not None:
            self._writer.copy(table.__table__, columns, rows,
                              check_keys_later=self._key_checks == "deferred")
        else:
            bulk_insert(self.s.connection(), table.__table__, columns, rows)

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
            "atom_index": _atom_index(n_new),
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
                "atom_index": _atom_index(n),
                "fx": forces[:, 0], "fy": forces[:, 1], "fz": forces[:, 2],
            }), background=True, level=level_id)
        self.summary.add("references", len(ref_ids))

    # -- predictions --------------------------------------------------------------------------

    def add_predictions(
        self, model_id: int, items: Iterable[PredictionFrame], *, path: str,
        progress: Callable[[int, int], None] | None = None,
    ) -> None:
        """Store a model's predictions, matched to stored structures by content hash.

        A structure listed with its atoms in another order is matched by the order-free hash and
        its forces are permuted back. Predictions of structures not in the warehouse are refused
        as a whole, with the count and the first examples. ``progress(n_structures, n_atoms)``
        is called after each batch.
        """
        missing: list[str] = []
        total = 0
        for batch in _batches(items, lambda p: p.frame.n_atoms):
            total += len(batch)
            with critical():
                missing += self._add_prediction_batch(model_id, batch)
            if progress is not None:
                progress(len(batch), sum(p.frame.n_atoms for p in batch))
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
        frames = [p.frame for p in batch]
        hashed = list(zip(*structure_hashes_batch(
            np.concatenate([f.numbers for f in frames]),
            np.concatenate([f.positions for f in frames]).reshape(-1, 3),
            np.stack([f.cell for f in frames]), np.stack([f.pbc for f in frames]),
            np.fromiter((f.n_atoms for f in frames), dtype=np.int64, count=len(frames)),
        ), strict=True))
        known = self._lookup_hashes([h for h, _, _ in hashed])
        sids: list[int | None] = []
        perms: list[np.ndarray | None] = []
        for p, (h, free, order) in zip(batch, hashed, strict=True):
            if h in known:
                sids.append(known[h])
                perms.append(None)
                continue
            row = self.s.execute(
                select(m.Structure.id, m.Structure.lake_file_id)
                .where(m.Structure.order_free_hash == free).limit(1)
            ).first()
            if row is None:
                # Written with other precision (a coordinate on the other side of a 1e-6 Å
                # rounding step): look for the same atoms within MATCH_TOL.
                sid, perm = self._match_within_tolerance(p.frame)
                sids.append(sid)
                perms.append(perm)
                continue
            stored = self._stored_frame(row.id, row.lake_file_id)
            _, _, stored_order = structure_hashes(*stored)
            # stored atom stored_order[k] is the same atom as this file's atom order[k]
            perm = np.empty_like(order)
            perm[stored_order] = order
            sids.append(row.id)
            perms.append(perm)
        return sids, perms

    def _match_within_tolerance(self, frame: Frame) -> tuple[int | None, np.ndarray | None]:
        """The stored structure with the same species, cell (and pbc) and positions within
        ``MATCH_TOL`` Å (minimum image), in any atom order; (None, None) if there is none.

        Candidates share n_atoms, formula and pbc and have the same cell within the tolerance;
        their positions are compared by a nearest-neighbour search over periodic images.
        """
        formula = reduced_formula(*composition(frame.numbers))
        stmt = select(m.Structure.id, m.Structure.cell, m.Structure.pbc, m.Structure.lake_file_id).where(
            m.Structure.n_atoms == frame.n_atoms, m.Structure.formula == formula)
        examined = 0
        for sid, cell, pbc, lf_id in self.s.execute(stmt):
            cell = np.asarray(cell, dtype=np.float64)
            if "".join("T" if x else "F" for x in frame.pbc) != pbc:
                continue
            if np.abs(cell - frame.cell).max() > MATCH_TOL:
                continue
            examined += 1
            if examined > MATCH_MAX_CANDIDATES:
                break
            z, pos, _, _ = self._stored_frame(sid, lf_id)
            perm = _tolerant_permutation(z, pos, frame, cell)
            if perm is not None:
                return sid, perm
        return None, None

    def _stored_frame(self, sid: int, lake_file_id: int) -> tuple[np.ndarray, ...]:
        path = self.s.get(m.LakeFile, lake_file_id).path
        t = self.wh.lake.read(path, filters=[("structure_id", "=", sid)]).sort_by("atom_index")
        st = self.s.get(m.Structure, sid)
        pos = np.column_stack([t["x"].to_numpy(), t["y"].to_numpy(), t["z"].to_numpy()])
        return t["Z"].to_numpy(), pos, np.array(st.cell), np.array([c == "T" for c in st.pbc])

    def _add_prediction_batch(self, model_id: int, batch: list[PredictionFrame]) -> list[str]:
        sids, perms = self.match_structures(batch)
        missing = [
            f"frame {p.frame.index} ({p.frame.n_atoms} atoms)"
            for p, sid in zip(batch, sids, strict=True) if sid is None
        ]
        existing: set[int] = set()
        for chunk in _chunks(sorted({s for s in sids if s is not None})):
            existing.update(self.s.scalars(
                select(m.Prediction.structure_id).where(
                    m.Prediction.model_id == model_id, m.Prediction.structure_id.in_(chunk)
                )
            ))
        todo: list[tuple[PredictionFrame, int, Labels]] = []
        for p, sid, perm in zip(batch, sids, perms, strict=True):
            if sid is None:
                continue
            if sid in existing:
                self.summary.seen("predictions")
                continue
            existing.add(sid)
            labels = p.frame.labels
            if perm is not None and labels.forces is not None:
                labels = Labels(labels.energy, labels.forces[perm], labels.stress, labels.free_energy)
            todo.append((p, sid, labels))
        if todo:
            self._insert_predictions(model_id, todo)
        return missing

    def _insert_predictions(self, model_id: int, todo: list[tuple[PredictionFrame, int, Labels]]) -> None:
        with_forces = [(sid, lab) for p, sid, lab in todo if p.status == "ok" and lab.forces is not None]
        lf = self.reserve_lake_file("predicted_forces") if with_forces else None
        rows = []
        for p, sid, lab in todo:
            ok = p.status == "ok"
            rows.append({
                "model_id": model_id, "structure_id": sid, "status": p.status,
                "message": p.message, "energy": lab.energy if ok else None,
                **_stress_dict(lab.stress if ok else None),
                "has_forces": ok and lab.forces is not None,
                "lake_file_id": lf.id if (lf and ok and lab.forces is not None) else None,
                "ingest_run_id": self.run.id,
            })
        result = self.s.execute(
            insert(m.Prediction).returning(m.Prediction.id, sort_by_parameter_order=True), rows
        )
        pred_ids = [r[0] for r in result]
        if with_forces:
            pid_of = {sid: pid for (_, sid, _), pid in zip(todo, pred_ids, strict=True)}
            model_name = self.s.get(m.Model, model_id).name
            self.fill_lake_file(lf, "predicted_forces", _forces_table(
                [pid_of[sid] for sid, _ in with_forces], [sid for sid, _ in with_forces],
                [lab.forces for _, lab in with_forces], id_name="prediction_id",
            ), model=model_name)
        n_failed = sum(p.status != "ok" for p, _, _ in todo)
        self.summary.add("predictions", len(todo) - n_failed)
        self.summary.add("failed predictions", n_failed)
        forces_of = {pid_of[sid]: lab.forces for sid, lab in with_forces} if with_forces else {}
        ok_ids = [pid for (p, _, _), pid in zip(todo, pred_ids, strict=True) if p.status == "ok"]
        self._compute_errors(
            select(m.Prediction, m.Reference)
            .join(m.Reference, m.Reference.structure_id == m.Prediction.structure_id),
            m.Prediction.id, ok_ids, known_pred_forces=forces_of,
        )

    # -- error sums ---------------------------------------------------------------------------

    def _errors_for_new_references(self, ref_ids: list[int]) -> None:
        if not ref_ids:
            return
        self.flush_lake_files()  # the new references' forces are read back from the lake
        self._compute_errors(
            select(m.Prediction, m.Reference)
            .join(m.Reference, m.Reference.structure_id == m.Prediction.structure_id)
            .where(m.Prediction.status == "ok"),
            m.Reference.id, ref_ids,
        )

    def _compute_errors(self, stmt, key_col, ids: list[int], known_pred_forces=None) -> None:
        known_pred_forces = known_pred_forces or {}
        for chunk in _chunks(ids):
            pairs = self.s.execute(stmt.where(key_col.in_(chunk))).all()
            if not pairs:
                continue
            pred_forces = dict(known_pred_forces)
            need = [p for p, _ in pairs if p.has_forces and p.id not in pred_forces]
            pred_forces.update(self._read_forces(need, "prediction_id"))
            ref_forces = self._read_forces([r for _, r in pairs if r.has_forces], "reference_id")
            sids = {p.structure_id for p, _ in pairs}
            info = self._structure_info(sids)
            symbols = self._symbols(info) if ref_forces else {}
            rows, el_rows = [], []
            for p, r in pairs:
                n = info[p.structure_id][0]
                fp, fr = pred_forces.get(p.id), ref_forces.get(r.id)
                e = calc_error_sums(
                    n_atoms=n, energy_pred=p.energy, energy_ref=r.energy,
                    forces_pred=fp, forces_ref=fr,
                    stress_pred=_stress_of(p), stress_ref=_stress_of(r),
                )
                rows.append({"prediction_id": p.id, "reference_id": r.id, **_asdict(e)})
                if fp is not None and fr is not None:
                    for el in calc_element_force_sums(symbols[p.structure_id], fp, fr):
                        el_rows.append({"prediction_id": p.id, "reference_id": r.id, **_asdict(el)})
            self.s.execute(insert(m.PredictionError), rows)
            if el_rows:
                self.s.execute(insert(m.PredictionElementError), el_rows)

    def _read_forces(self, owners: list[Any], id_name: str) -> dict[int, np.ndarray]:
        by_file: dict[int, list[int]] = {}
        for o in owners:
            by_file.setdefault(o.lake_file_id, []).append(o.id)
        out: dict[int, np.ndarray] = {}
        for lf_id, ids in by_file.items():
            path = self.s.get(m.LakeFile, lf_id).path
            t = self.wh.lake.read(path, filters=[(id_name, "in", ids)])
            out.update(_split_forces(t, id_name))
        return out

    def _structure_info(self, sids: set[int]) -> dict[int, tuple[int, int]]:
        """structure id -> (n_atoms, lake_file_id), in one query per chunk."""
        out: dict[int, tuple[int, int]] = {}
        for chunk in _chunks(sorted(sids)):
            rows = self.s.execute(
                select(m.Structure.id, m.Structure.n_atoms, m.Structure.lake_file_id)
                .where(m.Structure.id.in_(chunk))
            )
            out.update({i: (n, lf) for i, n, lf in rows})
        return out

    def _symbols(self, info: dict[int, tuple[int, int]]) -> dict[int, np.ndarray]:
        by_file: dict[int, list[int]] = {}
        for sid, (_, lf_id) in info.items():
            by_file.setdefault(lf_id, []).append(sid)
        out: dict[int, np.ndarray] = {}
        for lf_id, ids in by_file.items():
            path = self.s.get(m.LakeFile, lf_id).path
            t = self.wh.lake.read(
                path, columns=["structure_id", "atom_index", "Z"],
                filters=[("structure_id", "in", ids)],
            ).sort_by([("structure_id", "ascending"), ("atom_index", "ascending")])
            sid_arr, z = t["structure_id"].to_numpy(), t["Z"].to_numpy()
            bounds = np.flatnonzero(np.diff(sid_arr)) + 1
            for part_sid, part_z in zip(np.split(sid_arr, bounds), np.split(z, bounds)):
                out[int(part_sid[0])] = SYMBOLS[part_z]
        return out

    def add_training_record(self, model_id: int, source: str, table: pa.Table, summary: dict) -> None:
        lf = self.reserve_lake_file("training")
        model_name = self.s.get(m.Model, model_id).name
        self.fill_lake_file(lf, "training", table, model=model_name)
        self.s.add(m.TrainingRecord(
            model_id=model_id, source=source, summary=summary, lake_file_id=lf.id,
            ingest_run_id=self.run.id,
        ))
        self.summary.add("training records")


def _tolerant_permutation(
    z_stored: np.ndarray, pos_stored: np.ndarray, frame: Frame, cell: np.ndarray
) -> np.ndarray | None:
    """perm such that frame atom perm[i] is stored atom i (all within MATCH_TOL), or None."""
    from scipy.spatial import cKDTree

    if not np.array_equal(np.sort(z_stored), np.sort(frame.numbers)):
        return None
    pbc = frame.pbc
    if pbc.any():
        inv = np.linalg.inv(cell)
        fs, ff = pos_stored @ inv, frame.positions @ inv
        fs[:, pbc] %= 1.0
        ff[:, pbc] %= 1.0
        # compare in Cartesian space with periodic images of the frame's atoms around the cell
        shifts = np.array(np.meshgrid(*[[-1, 0, 1] if p else [0] for p in pbc])).T.reshape(-1, 3)
        images = (ff[None, :, :] + shifts[:, None, :]).reshape(-1, 3) @ cell
        tree = cKDTree(images)
        dist, idx = tree.query(fs @ cell, distance_upper_bound=MATCH_TOL * 10)
        idx = idx % len(ff)
    else:
        tree = cKDTree(frame.positions)
        dist, idx = tree.query(pos_stored, distance_upper_bound=MATCH_TOL * 10)
    if not np.all(dist <= MATCH_TOL) or len(np.unique(idx)) != len(idx):
        return None
    if not np.array_equal(frame.numbers[idx], z_stored):
        return None
    return idx.astype(np.int64)


def _asdict(obj: Any) -> dict[str, Any]:
    return {k: getattr(obj, k) for k in obj.__slots__}


def _forces_table(ids: list[int], sids: list[int], forces: list[np.ndarray], *, id_name: str) -> pa.Table:
    n = np.array([len(f) for f in forces])
    stacked = np.concatenate(forces)
    return numpy_table({
        id_name: np.repeat(np.asarray(ids, dtype=np.int64), n),
        "structure_id": np.repeat(np.asarray(sids, dtype=np.int64), n),
        "atom_index": _atom_index(n),
        "fx": stacked[:, 0], "fy": stacked[:, 1], "fz": stacked[:, 2],
    })


def _split_forces(t: pa.Table, id_name: str) -> dict[int, np.ndarray]:
    t = t.sort_by([(id_name, "ascending"), ("atom_index", "ascending")])
    ids = t[id_name].to_numpy()
    f = np.column_stack([t["fx"].to_numpy(), t["fy"].to_numpy(), t["fz"].to_numpy()])
    bounds = np.flatnonzero(np.diff(ids)) + 1
    return {int(i[0]): part for i, part in zip(np.split(ids, bounds), np.split(f, bounds))}


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
    """One ingest, one transaction: yields a :class:`Loader`; commits, or undoes everything."""
    run = new_run(kind, source_uri=source, source_sha256=source_sha256, argv=argv, notes=notes)
    fields = {c: getattr(run, c) for c in _RUN_FIELDS}  # kept apart from the ORM object
    session = Session(wh.engine, expire_on_commit=False)
    lake_txn = None
    loader = None
    run_id = None
    try:
        session.add(run)
        session.flush()
        run_id = run.id
        lake_txn = LakeTransaction(wh.lake, run.id)
        loader = Loader(wh, session, lake_txn, run)
        yield loader
        with critical():
            loader._finish_background()
            run.status, run.finished_at = "ok", now()
            run.counts = loader.summary.as_dict()
            session.commit()
    except BaseException as exc:
        if loader is not None:
            loader._stop_background()  # its files are in lake_txn.written once it stops
        try:
            session.rollback()
        except Exception:  # a broken connection: the database undoes the transaction itself
            pass
        session.close()  # give the connection back before the failure row takes one
        # An interrupt can land after COMMIT succeeded but before it returned: then the rows
        # exist and their lake files must stay.
        if lake_txn is not None and not _landed(wh, run_id):
            lake_txn.rollback()
        _record_failure(wh, fields, exc)
        raise
    finally:
        session.close()
        run_ended()


_RUN_FIELDS = ("kind", "source_uri", "source_sha256", "argv", "user", "host", "started_at",
               "warehouse_version", "library_versions", "notes")


def _landed(wh: Warehouse, run_id: int | None) -> bool:
    if run_id is None:
        return False
    try:
        with Session(wh.engine) as s:
            return s.scalar(select(m.IngestRun.status).where(m.IngestRun.id == run_id)) == "ok"
    except Exception:  # cannot tell: undoing the lake files is the safe side of a failed ingest
        return False


def _record_failure(wh: Warehouse, fields: dict[str, Any], exc: BaseException) -> None:
    """Keep a provenance row of the failed attempt, in its own small transaction."""
    try:
        with Session(wh.engine) as s:
            s.add(m.IngestRun(**fields, finished_at=now(), status="failed",
                              message=(str(exc) or type(exc).__name__)[:2000]))
            s.commit()
    except Exception:  # the database itself may be what failed; the original error matters more
        pass

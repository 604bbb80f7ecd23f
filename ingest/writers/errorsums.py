"""Predictions and their error sums, written a batch at a time as columns.

A batch of a model's predictions (already matched to stored structures, per-atom arrays in the
stored atom order) becomes: ``predictions`` rows, one ``predicted_forces`` lake file, and the
error sums of every (prediction, reference) pair of the batch (``prediction_errors``, and per
species ``prediction_element_errors``; DESIGN.md, Metrics). The sums are computed for all pairs
at once (:func:`warehouse.errorsums.calc_batch_error_sums`, equal bit for bit to the
per-structure functions) and every table's rows are sent as the structures path sends its rows
(``Loader._rows``: COPY on PostgreSQL, one executemany on SQLite), from columns: no per-structure
statement, ORM object or lake read.

References added after their structures' predictions get their sums when they are stored
(:meth:`PredictionWriter.errors_for_new_references`), reading the predictions back.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import repeat
from typing import TYPE_CHECKING

import numpy as np
from ase.data import chemical_symbols
from numpy.typing import NDArray

from ingest.writers.readback import atom_index, lake_paths, read_atoms, rows_where_in
from warehouse import models as m
from warehouse.errorsums import calc_batch_error_sums
from warehouse.lake import numpy_table
from warehouse.records import FrameBatch

if TYPE_CHECKING:
    from ingest.loader import Loader

STRESS_COLS = ("stress_xx", "stress_yy", "stress_zz", "stress_yz", "stress_xz", "stress_xy")
PREDICTION_COLS = ("id", "model_id", "structure_id", "status", "message", "energy", *STRESS_COLS,
                   "has_forces", "lake_file_id", "ingest_run_id")
ERROR_COLS = ("prediction_id", "reference_id", "n_atoms", "energy_diff_per_atom", "force_abs_sum",
              "force_sq_sum", "force_n", "force_norm_sum", "force_norm_sq_sum", "stress_abs_sum",
              "stress_sq_sum", "stress_n")
ELEMENT_COLS = ("prediction_id", "reference_id", "element", "n_atoms", "force_abs_sum",
                "force_sq_sum", "force_n")
# what a side of the pairs is read back as (references, predictions): see Side.from_rows
SIDE_COLS = ("id", "structure_id", "energy", *STRESS_COLS, "has_forces", "lake_file_id")
SYMBOLS = np.array(chemical_symbols)
NO_STRESS = np.full(6, np.nan)


@dataclass
class Side:
    """One side of (prediction, reference) pairs: K predictions or references as columns."""

    ids: NDArray[np.int64]
    sids: NDArray[np.int64]  # their structures
    n_atoms: NDArray[np.int64]
    energy: NDArray[np.float64]  # NaN: none
    stress: NDArray[np.float64]  # (K, 6); a row of NaN: none
    has_forces: NDArray[np.bool_]
    forces: NDArray[np.float64]  # (atoms of the entries with forces, 3), one entry after the other
    numbers: NDArray[np.integer] | None = None  # species of every entry's atoms, one after the other

    def force_rows(self, entries: NDArray[np.int64]) -> NDArray[np.float64]:
        """The forces of ``entries`` (all with forces), one after the other."""
        n = np.where(self.has_forces, self.n_atoms, 0)
        return self.forces[_gather(np.cumsum(n) - n, self.n_atoms, entries)]

    def number_rows(self, entries: NDArray[np.int64]) -> NDArray[np.integer]:
        assert self.numbers is not None
        return self.numbers[_gather(np.cumsum(self.n_atoms) - self.n_atoms, self.n_atoms, entries)]


def _gather(starts: NDArray[np.int64], n: NDArray[np.int64], entries: NDArray[np.int64]) -> NDArray[np.int64]:
    return np.repeat(starts[entries], n[entries]) + atom_index(n[entries])


def _nullable(values: NDArray[np.float64]) -> list[float | None]:
    return [None if v != v else v for v in values.tolist()]  # NaN -> NULL


def _energies(values: list[float | None]) -> NDArray[np.float64]:
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


def _stresses(values: list[NDArray[np.float64] | None]) -> NDArray[np.float64]:
    if not values:
        return np.empty((0, 6))
    return np.stack([NO_STRESS if v is None else np.asarray(v, np.float64) for v in values])


def pair_rows(pred: Side, ref: Side, pi: NDArray[np.int64], ri: NDArray[np.int64]) -> tuple[list[tuple], list[tuple]]:
    """``prediction_errors`` and ``prediction_element_errors`` rows of the pairs
    (pred entry ``pi[k]``, ref entry ``ri[k]``), which share their structure."""
    wf = pred.has_forces[pi] & ref.has_forces[ri]
    numbers_side, ni = (pred, pi) if pred.numbers is not None else (ref, ri)
    sums, el = calc_batch_error_sums(
        n_atoms=pred.n_atoms[pi], energy_pred=pred.energy[pi], energy_ref=ref.energy[ri],
        stress_pred=pred.stress[pi], stress_ref=ref.stress[ri], with_forces=wf,
        forces_pred=pred.force_rows(pi[wf]), forces_ref=ref.force_rows(ri[wf]),
        numbers=numbers_side.number_rows(ni[wf]),
    )
    pids, rids = pred.ids[pi], ref.ids[ri]
    rows = list(zip(
        pids.tolist(), rids.tolist(), sums.n_atoms.tolist(), _nullable(sums.energy_diff_per_atom),
        _nullable(sums.force_abs_sum), _nullable(sums.force_sq_sum), sums.force_n.tolist(),
        _nullable(sums.force_norm_sum), _nullable(sums.force_norm_sq_sum),
        _nullable(sums.stress_abs_sum), _nullable(sums.stress_sq_sum), sums.stress_n.tolist()))
    el_rows = list(zip(
        pids[el.pair].tolist(), rids[el.pair].tolist(), SYMBOLS[el.number].tolist(),
        el.n_atoms.tolist(), el.force_abs_sum.tolist(), el.force_sq_sum.tolist(),
        el.force_n.tolist()))
    return rows, el_rows


def join_on_structure(pred: Side, ref: Side) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Every (pred entry, ref entry) with the same structure. Either side may hold a structure
    many times: its references at several levels of theory, its predictions by several models
    (new references get the sums of every model's prediction)."""
    order = np.argsort(pred.sids, kind="stable")
    by_sid = pred.sids[order]
    lo = np.searchsorted(by_sid, ref.sids, side="left")
    n = np.searchsorted(by_sid, ref.sids, side="right") - lo
    return order[np.repeat(lo, n) + atom_index(n)], np.repeat(np.arange(len(ref.sids)), n)


class PredictionWriter:
    """Writes a model's predictions and their error sums for one :class:`Loader`."""

    def __init__(self, loader: Loader) -> None:
        self.ld = loader
        self._added: set[tuple[int, int]] = set()  # (model id, structure id) stored by this ingest
        self._model_names: dict[int, str] = {}
        self._locked_models: set[int] = set()

    def add(self, model_id: int, b: FrameBatch, sids: list[int | None],
            perms: list[NDArray[np.int64] | None], status: list[str],
            message: list[str | None]) -> None:
        """Store frame i of ``b`` as ``model_id``'s prediction on structure ``sids[i]`` (None:
        not stored, skipped), its per-atom arrays put in stored order by ``perms[i]``; a
        structure that already has this model's prediction counts as already present."""
        ld = self.ld
        ld._start_background_writes()
        todo = self._new(model_id, sids)
        if not todo:
            return
        ok = np.array([status[i] == "ok" for i in todo], dtype=np.bool_)
        pred = self._side(b, todo, sids, perms, ok)
        lf_id = ld._reserve_lake_file_id("predicted_forces") if pred.has_forces.any() else None
        if model_id not in self._locked_models:
            self._locked_models.add(model_id)
            self._lock("models", np.array([model_id]))
        self._lock("structures", pred.sids)
        stress = np.where(ok[:, None], pred.stress, np.nan).T
        ld._rows(m.Prediction, PREDICTION_COLS, list(zip(
            pred.ids.tolist(), repeat(model_id), pred.sids.tolist(), [status[i] for i in todo],
            [message[i] for i in todo], _nullable(np.where(ok, pred.energy, np.nan)),
            *(_nullable(col) for col in stress), pred.has_forces.tolist(),
            [lf_id if h else None for h in pred.has_forces.tolist()], repeat(ld.run.id))))
        if lf_id is not None:
            self._write_forces(model_id, pred, lf_id)
        n_failed = int((~ok).sum())
        ld.summary.add("predictions", len(todo) - n_failed)
        ld.summary.add("failed predictions", n_failed)
        if ok.any():
            ok_pred = _select(pred, np.flatnonzero(ok))
            self._write_errors(ok_pred, self._references(ok_pred))

    def _new(self, model_id: int, sids: list[int | None]) -> list[int]:
        """Positions of the frames that become new predictions: matched, not stored for this
        model before, the first of their structure in this ingest."""
        ld = self.ld
        ask = [s for s in set(sids) if s is not None and (model_id, s) not in self._added]
        stored = {r[0] for r in rows_where_in(ld._read_conn(), m.Prediction.__table__,
                                              ("structure_id",), "structure_id", ask,
                                              model_id=model_id)}
        todo = []
        for i, sid in enumerate(sids):
            if sid is None:
                continue
            if sid in stored or (model_id, sid) in self._added:
                ld.summary.seen("predictions")
                continue
            self._added.add((model_id, sid))
            todo.append(i)
        return todo

    def _side(self, b: FrameBatch, todo: list[int], sids: list[int | None],
              perms: list[NDArray[np.int64] | None], ok: NDArray[np.bool_]) -> Side:
        """The new predictions as a :class:`Side`, per-atom arrays in stored atom order."""
        frames = np.asarray(todo, dtype=np.int64)
        counts = b.counts[frames]
        starts = b.offsets[:-1][frames]
        take = np.repeat(starts, counts) + atom_index(counts)  # each frame's atoms
        lo = 0
        for i, n in zip(todo, counts.tolist(), strict=True):  # frames listed in another order
            if perms[i] is not None:
                take[lo:lo + n] = take[lo:lo + n][perms[i]]
            lo += n
        has_forces = ok & b.has_forces[frames]
        return Side(
            ids=np.asarray(self.ld._new_ids(m.Prediction.__table__, len(todo)), dtype=np.int64),
            sids=np.array([sids[i] for i in todo], dtype=np.int64), n_atoms=counts,
            energy=_energies([b.energy[i] for i in todo]),
            stress=_stresses([b.stress[i] for i in todo]), has_forces=has_forces,
            forces=b.forces[take[np.repeat(has_forces, counts)]], numbers=b.numbers[take])

    def _write_forces(self, model_id: int, pred: Side, lf_id: int) -> None:
        if model_id not in self._model_names:
            self._model_names[model_id] = rows_where_in(
                self.ld.s.connection(), m.Model.__table__, ("name",), "id", [model_id])[0][0]
        n = pred.n_atoms[pred.has_forces]
        f = pred.forces
        self.ld.fill_lake_file(lf_id, "predicted_forces", numpy_table({
            "prediction_id": np.repeat(pred.ids[pred.has_forces], n),
            "structure_id": np.repeat(pred.sids[pred.has_forces], n),
            "atom_index": atom_index(n),
            "fx": f[:, 0], "fy": f[:, 1], "fz": f[:, 2],
        }), background=True, model=self._model_names[model_id])

    def _references(self, pred: Side) -> Side:
        """The stored references of ``pred``'s structures (any level of theory), their forces
        read back."""
        ld = self.ld
        # references stored by this ingest are visible on its own connection only
        conn = ld.s.connection() if ld._refs_added else ld._read_conn()
        rows = rows_where_in(conn, m.Reference.__table__, SIDE_COLS, "structure_id",
                             pred.sids.tolist())
        return self._side_from_rows(conn, rows, "reference_id",
                                    dict(zip(pred.sids.tolist(), pred.n_atoms.tolist())))

    def errors_for_new_references(self, ref_ids: list[int]) -> None:
        """Error sums of the stored predictions of the structures of ``ref_ids``, references
        just stored by this ingest (their structures predate it): both sides read back."""
        ld = self.ld
        if not ref_ids:
            return
        ld.flush_lake_files()  # the new references' forces are read back from the lake
        conn = ld.s.connection()  # they are visible on this ingest's own connection only
        refs = rows_where_in(conn, m.Reference.__table__, SIDE_COLS, "id", ref_ids)
        sids = sorted({r[1] for r in refs})
        preds = rows_where_in(conn, m.Prediction.__table__, SIDE_COLS, "structure_id", sids,
                              status="ok")
        if not preds:
            return
        structures = rows_where_in(conn, m.Structure.__table__, ("id", "n_atoms", "lake_file_id"),
                                   "id", sids)
        n_of = {sid: n for sid, n, _ in structures}
        ref = self._side_from_rows(conn, refs, "reference_id", n_of)
        file_of = {sid: lf for sid, _, lf in structures}
        files = np.array([file_of[s] for s in ref.sids.tolist()], dtype=np.int64)
        ref.numbers = read_atoms(ld.wh.lake, lake_paths(conn, m.LakeFile.__table__,
                                                        np.unique(files).tolist()),
                                 id_name="structure_id", owners=ref.sids, files=files,
                                 counts=ref.n_atoms, columns=("Z",))["Z"]
        self._write_errors(self._side_from_rows(conn, preds, "prediction_id", n_of), ref)

    def _side_from_rows(self, conn, rows: list[tuple], id_name: str,
                        n_of: dict[int, int]) -> Side:
        """A :class:`Side` of stored rows (SIDE_COLS), forces read from the lake; ``n_of``
        gives each structure's atom count."""
        ids = np.array([r[0] for r in rows], dtype=np.int64)
        sids = np.array([r[1] for r in rows], dtype=np.int64)
        n = np.array([n_of[s] for s in sids.tolist()], dtype=np.int64)
        stress = np.array([r[3:9] for r in rows], dtype=np.float64).reshape(-1, 6)  # None: NaN
        stress[np.isnan(stress).any(axis=1)] = np.nan
        has_forces = np.array([bool(r[9]) for r in rows], dtype=np.bool_)
        files = np.array([-1 if r[10] is None else r[10] for r in rows], dtype=np.int64)
        forces = np.empty((0, 3))
        if has_forces.any():
            got = read_atoms(self.ld.wh.lake, lake_paths(conn, m.LakeFile.__table__,
                                                         np.unique(files[has_forces]).tolist()),
                             id_name=id_name, owners=ids[has_forces], files=files[has_forces],
                             counts=n[has_forces], columns=("fx", "fy", "fz"))
            forces = np.column_stack([got["fx"], got["fy"], got["fz"]])
        energy = np.array([r[2] for r in rows], dtype=np.float64)  # None: NaN
        return Side(ids, sids, n, energy, stress, has_forces, forces)

    def _write_errors(self, pred: Side, ref: Side) -> None:
        pi, ri = join_on_structure(pred, ref)
        if not len(pi):
            return
        self._lock("references", ref.ids[ri])
        rows, el_rows = pair_rows(pred, ref, pi, ri)
        self.ld._rows(m.PredictionError, ERROR_COLS, rows)
        self.ld._rows(m.PredictionElementError, ELEMENT_COLS, el_rows)

    def _lock(self, table: str, ids: NDArray[np.int64]) -> None:
        """With deferred key checks (ingest.writers.bulk): lock the parents of this batch's rows that
        predate the ingest ``FOR KEY SHARE`` before the rows are sent, as the foreign-key
        triggers would, so that none is deleted before it commits (as Loader._lock_parents
        does for structures)."""
        bulk = self.ld.bulk  # ingest.writers.bulk.BulkPath: the PostgreSQL writer
        if bulk.key_checks != "deferred" or not len(ids):
            return
        bulk.writer.execute(f'SELECT 1 FROM "{table}" WHERE id = ANY(%s::bigint[]) FOR KEY SHARE',
                       (sorted(set(ids.tolist())),))


def _select(side: Side, entries: NDArray[np.int64]) -> Side:
    """The ``entries`` of ``side`` as a Side of their own."""
    return Side(side.ids[entries], side.sids[entries], side.n_atoms[entries], side.energy[entries],
                side.stress[entries], side.has_forces[entries], side.force_rows(
                    entries[side.has_forces[entries]]),
                side.number_rows(entries) if side.numbers is not None else None)

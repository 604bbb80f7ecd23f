"""Read what uncertainty analysis needs from the warehouse, streamed in batches of structures.

The catalog gives, per dataset member, the reference at the dataset's level of theory and each
member model's prediction row (energy, status, lake file). Per-atom forces (reference, every
member) and grades are read from the lake for one batch of structures at a time (about
``BATCH_ATOMS`` atoms; one row-group-pruned range read per lake file), reduced to per-atom U and e
at once, and dropped, so that peak memory is a batch of K members' forces plus two float64 numbers
per atom (7.5M atoms x 10 members: well under 2 GB). Float32 lake columns are accepted (promoted).

A structure is used for a quantity only when the reference has that label and every member has an
ok, finite prediction of it; otherwise it is counted as ``no_reference``, ``missing`` (a member has
no prediction, or no grades) or ``failed`` (a member failed or gave NaN) and excluded, never mixed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from ase.data import chemical_symbols
from numpy.typing import NDArray
from sqlalchemy import and_, select

from queries.uq import calc_energy_uq, calc_force_uq, calc_model_force_error, structure_max
from warehouse import models as m
from warehouse.core import Warehouse
from warehouse.errors import NoMatch, NotFound

# Atoms per streamed batch for up to 10 members: K members' float64 forces for 500k atoms is
# 12 MB per member; larger ensembles get proportionally smaller batches (same bytes per batch).
BATCH_ATOMS = 500_000
BATCH_MEMBERS = 10
SYMBOLS = np.array(chemical_symbols)
OK, MISSING, FAILED = 0, 1, 2


@dataclass
class UQData:
    """U and e of one uncertainty source on one or more datasets (stored units: eV, eV/Å).

    ``structures``: one row per dataset member with ``dataset, structure_id, subset, n_atoms,
    n_elements, elements``, per quantity q in (energy, force) ``q_status`` (used | missing |
    failed | no_reference), ``u_q`` and ``e_q`` (NaN unless used). Per-atom arrays cover the atoms
    of force-used structures, in ``structures`` row order: ``atom_row`` (row in ``structures``),
    ``atom_z``, ``atom_u``, ``atom_e``.
    """

    source: str
    kind: str  # "ensemble" | "grades"
    members: list[str]
    datasets: list[str]
    structures: pd.DataFrame
    atom_row: NDArray[np.int64]
    atom_z: NDArray[np.int16]
    atom_u: NDArray[np.float64]
    atom_e: NDArray[np.float64]
    u_scale: float = 1000.0  # stored U -> report units (eV -> meV; grades: 1)
    note: str | None = None
    counts: dict[str, int] = field(default_factory=dict)
    # energy_offset="per-element": each member's fitted shifts (model, dataset, element, ...)
    offsets: pd.DataFrame | None = None

    def atom_symbols(self) -> NDArray[np.str_]:
        return SYMBOLS[self.atom_z]

    def atoms_of(self, structure_id: int, dataset: str | None = None) -> tuple[NDArray, NDArray]:
        """Per-atom (U, e) of one structure, in atom order (empty if it was not used)."""
        st = self.structures
        sel = st["structure_id"] == structure_id
        if dataset is not None:
            sel &= st["dataset"] == dataset
        rows = np.flatnonzero(sel.to_numpy())
        mask = self.atom_row == rows[0] if len(rows) else np.zeros(len(self.atom_row), bool)
        return self.atom_u[mask], self.atom_e[mask]


def read_ensemble_uq(
    wh: Warehouse, *, ensemble: str, datasets: Sequence[str], batch_atoms: int = BATCH_ATOMS,
    energy_offset: str = "none",
) -> UQData:
    """U and e of ensemble ``ensemble`` on ``datasets`` (see the module docstring)."""
    with wh.session() as s:
        ens = s.scalar(select(m.Ensemble).where(m.Ensemble.name == ensemble))
        if ens is None:
            raise NotFound(f"no ensemble named {ensemble!r}; create it with"
                           " `warehouse ensemble add NAME --member MODEL ...`")
        members = s.execute(
            select(m.Model.id, m.Model.name).join(m.EnsembleMember, m.EnsembleMember.model_id == m.Model.id)
            .where(m.EnsembleMember.ensemble_id == ens.id).order_by(m.Model.name)
        ).all()
    if not members:
        raise NoMatch(f"ensemble {ensemble!r} has no members; add some with"
                      f" `warehouse ensemble add {ensemble} --member MODEL`")
    note = None
    if len(members) == 1:
        note = "ensemble of one model: the max-deviation uncertainty is zero by definition"
    return _read(wh, [i for i, _ in members], [n for _, n in members], datasets,
                 source=f"ensemble {ensemble}", note=note, batch_atoms=batch_atoms,
                 energy_offset=energy_offset)


def read_grades_uq(
    wh: Warehouse, *, model: str, kind: str, datasets: Sequence[str], batch_atoms: int = BATCH_ATOMS,
    energy_offset: str = "none",
) -> UQData:
    """Grades ``kind`` of ``model`` as U against that model's own error on ``datasets``."""
    with wh.session() as s:
        mid = s.scalar(select(m.Model.id).where(m.Model.name == model))
        if mid is None:
            raise NotFound(f"no model named {model!r}; `warehouse info` lists what is stored")
        if s.scalar(select(m.AtomGrades.id).where(m.AtomGrades.model_id == mid,
                                                  m.AtomGrades.kind == kind).limit(1)) is None:
            raise NoMatch(f"model {model!r} has no grades of kind {kind!r}; store them with"
                          f" `warehouse ingest grades PATH --model {model} --kind {kind}`")
    return _read(wh, [mid], [model], datasets, source=f"grades {kind} of {model}", grades=kind,
                 batch_atoms=batch_atoms, energy_offset=energy_offset)


def _read(
    wh: Warehouse, model_ids: list[int], names: list[str], datasets: Sequence[str], *,
    source: str, note: str | None = None, grades: str | None = None, batch_atoms: int,
    energy_offset: str = "none",
) -> UQData:
    from queries.selection import check_offset

    check_offset(energy_offset)
    if not datasets:
        raise NoMatch("name at least one dataset (--dataset NAME)")
    parts, atoms, fits = [], [], []
    offset = 0
    for name in datasets:
        st, at, fit = _read_dataset(wh, name, model_ids, grades, batch_atoms, energy_offset)
        if fit is not None:
            fits.append(fit.assign(model=fit["model"].map(dict(enumerate(names)))))
        parts.append(st)
        atoms.append((at[0] + offset, *at[1:]))
        offset += len(st)
    structures = pd.concat(parts, ignore_index=True)
    cat = [np.concatenate([a[i] for a in atoms]) for i in range(4)]
    data = UQData(
        source=source, kind="grades" if grades else "ensemble", members=names,
        datasets=list(datasets), structures=structures, atom_row=cat[0].astype(np.int64),
        atom_z=cat[1].astype(np.int16), atom_u=cat[2], atom_e=cat[3],
        u_scale=1.0 if grades else 1000.0, note=note,
        offsets=pd.concat(fits, ignore_index=True) if fits else None,
    )
    data.counts = {f"{q}_{k}": int(v) for q in ("energy", "force")
                   for k, v in structures[f"{q}_status"].value_counts().items()}
    return data


def _dataset_members(wh: Warehouse, name: str) -> pd.DataFrame:
    dm, s, r = m.DatasetMember, m.Structure, m.Reference
    with wh.session() as sess:
        ds = sess.scalar(select(m.Dataset).where(m.Dataset.name == name))
        if ds is None:
            raise NotFound(f"no dataset named {name!r}; `warehouse info` lists what is stored")
        level = sess.get(m.LevelOfTheory, ds.level_of_theory_id).name
        stmt = (
            select(dm.structure_id, dm.subset, s.n_atoms, s.n_elements, s.elements,
                   s.lake_file_id.label("pos_file"), r.id.label("ref_id"),
                   r.energy.label("ref_energy"), r.has_forces.label("ref_has_forces"),
                   r.lake_file_id.label("ref_file"))
            .join(s, s.id == dm.structure_id)
            .outerjoin(r, and_(r.structure_id == dm.structure_id,
                               r.level_of_theory_id == ds.level_of_theory_id))
            .where(dm.dataset_id == ds.id).order_by(dm.structure_id)
        )
        st = pd.read_sql(stmt, sess.connection())
    if st.empty:
        raise NoMatch(f"dataset {name!r} has no structures")
    if st["ref_id"].isna().all():
        raise NoMatch(
            f"dataset {name!r} has no reference labels at its level of theory {level!r}, so there"
            " is no true error to compare with; ingest them with `warehouse ingest structures`"
        )
    st.insert(0, "dataset", name)
    st["ref_energy"] = pd.to_numeric(st["ref_energy"], errors="coerce").astype(float)
    st["ref_has_forces"] = st["ref_has_forces"].fillna(False).astype(bool)
    st["ds_id"] = ds.id
    return st


def _member_predictions(wh: Warehouse, st: pd.DataFrame, model_ids: list[int]):
    """(status (n, K) of OK/MISSING/FAILED, energy (n, K), force lake file id (n, K), -1 if none)."""
    n, k = len(st), len(model_ids)
    status = np.full((n, k), MISSING, dtype=np.int8)
    energy = np.full((n, k), np.nan)
    ffile = np.full((n, k), -1, dtype=np.int64)
    sids = st["structure_id"].to_numpy()
    p, dm = m.Prediction, m.DatasetMember
    with wh.engine.connect() as conn:
        for j, mid in enumerate(model_ids):
            stmt = (
                select(p.structure_id, p.status, p.energy, p.has_forces, p.lake_file_id)
                .join(dm, and_(dm.structure_id == p.structure_id, dm.dataset_id == int(st["ds_id"].iloc[0])))
                .where(p.model_id == mid)
            )
            pr = pd.read_sql(stmt, conn)
            idx = np.searchsorted(sids, pr["structure_id"].to_numpy())
            ok = (pr["status"] == "ok").to_numpy()
            status[idx, j] = np.where(ok, OK, FAILED)
            energy[idx, j] = pd.to_numeric(pr["energy"], errors="coerce").astype(float).to_numpy()
            has_f = pr["has_forces"].fillna(False).astype(bool).to_numpy() & ok
            ffile[idx, j] = np.where(has_f, pr["lake_file_id"].fillna(-1).astype(np.int64), -1)
    return status, energy, ffile


def _grade_files(wh: Warehouse, st: pd.DataFrame, model_id: int, kind: str):
    """(grade lake file id per member row, -1 if none; max grade per row, NaN if none)."""
    g, dm = m.AtomGrades, m.DatasetMember
    stmt = (
        select(g.structure_id, g.max_grade, g.lake_file_id)
        .join(dm, and_(dm.structure_id == g.structure_id, dm.dataset_id == int(st["ds_id"].iloc[0])))
        .where(g.model_id == model_id, g.kind == kind)
    )
    with wh.engine.connect() as conn:
        gr = pd.read_sql(stmt, conn)
    files = np.full(len(st), -1, dtype=np.int64)
    max_grade = np.full(len(st), np.nan)
    idx = np.searchsorted(st["structure_id"].to_numpy(), gr["structure_id"].to_numpy())
    files[idx] = gr["lake_file_id"].to_numpy()
    max_grade[idx] = pd.to_numeric(gr["max_grade"], errors="coerce").astype(float).to_numpy()
    return files, max_grade


def _statuses(st: pd.DataFrame, status: NDArray, energy: NDArray, ffile: NDArray,
              grade_file: NDArray | None) -> tuple[NDArray, NDArray]:
    """Initial energy and force status per structure (force may still turn 'failed' on NaN)."""
    missing = (status == MISSING).any(axis=1)
    if grade_file is not None:
        missing |= grade_file < 0
    failed = (status == FAILED).any(axis=1)
    e_status = np.select(
        [st["ref_energy"].isna().to_numpy(), missing, failed | ~np.isfinite(energy).all(axis=1)],
        ["no_reference", "missing", "failed"], "used",
    )
    f_status = np.select(
        [~st["ref_has_forces"].to_numpy(), missing, failed | (ffile < 0).any(axis=1)],
        ["no_reference", "missing", "failed"], "used",
    )
    return e_status, f_status


def _shift_energies(wh: Warehouse, name: str, st: pd.DataFrame, status: NDArray,
                    energy: NDArray) -> tuple[NDArray, pd.DataFrame]:
    """Each member's energies minus its per-element offsets, fitted on its own ok structures
    by the leaderboard's fit (:func:`queries.offsets.calc_element_offsets`): a constant per
    element would otherwise dominate both U_E and e_E."""
    from queries.breakdowns import Selection
    from queries.offsets import calc_element_offsets, compositions, shifts_per_structure

    comp = compositions(wh, Selection(datasets=(name,)))
    n = st["n_atoms"].to_numpy()
    ref = st["ref_energy"].to_numpy()
    sids = st["structure_id"].to_numpy()
    errors = []
    for k in range(energy.shape[1]):
        ok = (status[:, k] == OK) & np.isfinite(energy[:, k]) & np.isfinite(ref)
        errors.append(pd.DataFrame({"model": k, "dataset": name, "structure_id": sids[ok],
                                    "e": (energy[ok, k] - ref[ok]) / n[ok]}))
    offsets = calc_element_offsets(pd.concat(errors, ignore_index=True), comp)
    shifts = shifts_per_structure(offsets, comp)
    out = energy.copy()
    for k in range(energy.shape[1]):
        per = shifts[shifts["model"] == k].set_index("structure_id")["shift"]
        out[:, k] -= n * pd.Series(sids).map(per).fillna(0.0).to_numpy()
    return out, offsets


def _read_dataset(wh: Warehouse, name: str, model_ids: list[int], grades: str | None,
                  batch_atoms: int, energy_offset: str = "none"):
    st = _dataset_members(wh, name)
    status, energy, ffile = _member_predictions(wh, st, model_ids)
    fit = None
    if energy_offset == "per-element":
        energy, fit = _shift_energies(wh, name, st, status, energy)
    gfile, max_grade = (None, None)
    if grades is not None:
        gfile, max_grade = _grade_files(wh, st, model_ids[0], grades)
    e_status, f_status = _statuses(st, status, energy, ffile, gfile)
    n_atoms = st["n_atoms"].to_numpy()
    st["u_energy"] = np.nan
    st["e_energy"] = np.nan
    used = e_status == "used"
    u, e = calc_energy_uq(energy[used], st["ref_energy"].to_numpy()[used], n_atoms[used])
    st.loc[used, "u_energy"] = max_grade[used] if grades is not None else u
    st.loc[used, "e_energy"] = e
    st["u_force"] = np.nan
    st["e_force"] = np.nan
    paths = _lake_paths(wh, st, ffile, gfile)
    atoms = []
    batch_atoms = max(1, batch_atoms * BATCH_MEMBERS // max(len(model_ids), BATCH_MEMBERS))
    for rows in _batches(np.flatnonzero(f_status == "used"), n_atoms, batch_atoms):
        atoms.append(_force_batch(wh, st, rows, ffile, gfile, paths, f_status))
    st["energy_status"] = e_status
    st["force_status"] = f_status
    keep = ["dataset", "structure_id", "subset", "n_atoms", "n_elements", "elements",
            "energy_status", "force_status", "u_energy", "e_energy", "u_force", "e_force"]
    empty = (np.zeros(0, np.int64), np.zeros(0, np.int16), np.zeros(0), np.zeros(0))
    cat = tuple(np.concatenate([a[i] for a in atoms]) for i in range(4)) if atoms else empty
    return st[keep].reset_index(drop=True), cat, fit


def _lake_paths(wh: Warehouse, st: pd.DataFrame, ffile: NDArray, gfile: NDArray | None) -> dict[int, str]:
    ids = set(np.unique(ffile[ffile >= 0]).tolist())
    ids |= set(st["ref_file"].dropna().astype(np.int64).tolist())
    ids |= set(st["pos_file"].astype(np.int64).tolist())
    if gfile is not None:
        ids |= set(np.unique(gfile[gfile >= 0]).tolist())
    out: dict[int, str] = {}
    ordered = sorted(ids)
    with wh.session() as s:
        for i in range(0, len(ordered), 900):
            chunk = ordered[i : i + 900]
            out.update(dict(s.execute(select(m.LakeFile.id, m.LakeFile.path).where(m.LakeFile.id.in_(chunk))).all()))
    return out


def _batches(rows: NDArray, n_atoms: NDArray, batch_atoms: int):
    """Split candidate rows (sorted by structure id) into runs of about ``batch_atoms`` atoms."""
    if len(rows) == 0:
        return
    cum = np.cumsum(n_atoms[rows])
    cuts = np.searchsorted(cum, np.arange(batch_atoms, cum[-1], batch_atoms), side="right")
    for part in np.split(rows, np.unique(cuts)):
        if len(part):
            yield part


def _force_batch(wh, st, rows, ffile, gfile, paths, f_status):
    """Per-atom U and e of one batch; marks structures whose forces turn out NaN or incomplete."""
    sids = st["structure_id"].to_numpy()[rows]
    counts = st["n_atoms"].to_numpy()[rows]
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
    layout = (sids, offsets, counts, int(counts.sum()))
    ref = _gather(wh, paths, st["ref_file"].to_numpy()[rows].astype(np.int64), layout,
                  ["fx", "fy", "fz"])
    z = _gather(wh, paths, st["pos_file"].to_numpy()[rows].astype(np.int64), layout, ["Z"])[:, 0]
    forces = np.stack([_gather(wh, paths, ffile[rows, k], layout, ["fx", "fy", "fz"])
                       for k in range(ffile.shape[1])])
    if gfile is not None:
        u = _gather(wh, paths, gfile[rows], layout, ["grade"])[:, 0]
        e = calc_model_force_error(forces[0], ref)
    else:
        u, e = calc_force_uq(forces, ref)
    good_atom = np.isfinite(u) & np.isfinite(e) & np.isfinite(z)
    good = np.logical_and.reduceat(good_atom, offsets) if len(offsets) else np.zeros(0, bool)
    f_status[rows[~good]] = "failed"
    keep_atoms = np.repeat(good, counts)
    st.loc[rows[good], "u_force"] = structure_max(u[keep_atoms], counts[good])
    st.loc[rows[good], "e_force"] = structure_max(e[keep_atoms], counts[good])
    return (np.repeat(rows[good], counts[good]), z[keep_atoms].astype(np.int16),
            u[keep_atoms], e[keep_atoms])


def _gather(wh, paths, file_ids: NDArray, layout, columns: list[str]) -> NDArray[np.float64]:
    """Columns of the lake rows of the batch's structures, laid out atom after atom (NaN = absent)."""
    sids, offsets, counts, n = layout
    out = np.full((n, len(columns)), np.nan)
    lo, hi = int(sids[0]), int(sids[-1])
    for fid in np.unique(file_ids[file_ids >= 0]):
        t = wh.lake.read(paths[int(fid)], columns=["structure_id", "atom_index", *columns],
                         filters=[("structure_id", ">=", lo), ("structure_id", "<=", hi)])
        row_sid = t["structure_id"].to_numpy()
        idx = np.searchsorted(sids, row_sid).clip(0, len(sids) - 1)
        atom = t["atom_index"].to_numpy()
        # only structures of this batch that this file is the source for
        ok = (sids[idx] == row_sid) & (file_ids[idx] == fid) & (atom >= 0) & (atom < counts[idx])
        pos = offsets[idx[ok]] + atom[ok]
        for c, col in enumerate(columns):
            out[pos, c] = t[col].to_numpy()[ok]
    return out

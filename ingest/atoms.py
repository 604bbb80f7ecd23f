"""From ASE ``Atoms`` (whatever file ASE read them from) and from the extended XYZ parser's
dictionaries to validated :class:`Frame` and :class:`FrameBatch` records; the labels come
from :mod:`ingest.labels`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers

from ingest.labels import (
    DEFAULT_KEYS,
    MAX_ENERGY_PER_ATOM,
    MAX_FORCE,
    MAX_STRESS_GPA,
    SYMMETRY_ATOL,
    SYMMETRY_RTOL,
    VOIGT_NAMES,
    LabelKeys,
    LabelSources,
    first_key,
    first_value,
    label_number,
    label_sources,
    labels_from_atoms,
    labels_from_mappings,
)
from ingest.xyzheader import MAX_LENGTH
from warehouse.errors import IngestError
from warehouse.geometry import det3, det3_batch
from warehouse.records import Frame, FrameBatch, Labels
from warehouse.units import ase_stress_to_gpa_rows, virial_to_stress_gpa_rows, voigt_rows

def frame_from_atoms(atoms: Atoms, index: int, *, labels: Labels | None = None,
                     keys: LabelKeys = DEFAULT_KEYS) -> Frame:
    info = atoms.info
    _, config_type = first_value(info, ("config_type",))
    _, weight = first_value(info, ("weight",))
    try:
        labels = labels if labels is not None else labels_from_atoms(atoms, keys=keys)
        weight = None if weight is None else label_number(weight, "weight")
    except ValueError as exc:
        raise IngestError(str(exc), where=f"frame {index}") from exc
    return Frame(
        numbers=np.asarray(atoms.numbers, dtype=np.int32),
        positions=np.asarray(atoms.positions, dtype=np.float64),
        cell=np.asarray(atoms.cell.array, dtype=np.float64),
        pbc=np.asarray(atoms.pbc, dtype=np.bool_),
        index=index,
        labels=labels,
        config_type=None if config_type is None else str(config_type),
        weight=weight,
    )


def _numbers(arrays: dict[str, Any], index: int) -> np.ndarray:
    """Atomic numbers from a ``Z`` column (ASE prefers it) or from ``species`` symbols."""
    if "Z" in arrays:
        return np.asarray(arrays["Z"], dtype=np.int32)
    species = arrays.get("species")
    if species is None:
        raise IngestError("no species (or Z) column", where=f"frame {index}")
    species = np.asarray(species).reshape(-1)
    if (z := _numbers_from_codes(species)) is not None:
        return z
    symbols = [str(s).capitalize() for s in species.tolist()]
    if unknown := sorted({s for s in symbols if s not in atomic_numbers}):
        raise IngestError(f"unknown chemical symbol {unknown[0]!r}", where=f"frame {index}")
    return np.array([atomic_numbers[s] for s in symbols], dtype=np.int32)


def _species_table() -> np.ndarray:
    """Z of every symbol as files write it (Cu, CU, cu, cU), indexed by its two character codes
    (0 for the second of a one-letter symbol); -1 elsewhere."""
    table = np.full((128, 128), -1, dtype=np.int32)
    for symbol, z in atomic_numbers.items():
        variants = {symbol[:1].upper(), symbol[:1].lower()}
        for rest in symbol[1:]:
            variants = {v + c for v in variants for c in (rest.upper(), rest.lower())}
        for v in variants:
            table[ord(v[0]), ord(v[1]) if len(v) > 1 else 0] = z
    return table


_Z_TABLE = _species_table()


def _numbers_from_codes(species: np.ndarray) -> np.ndarray | None:
    """Atomic numbers of a unicode array of symbols by one table look-up (a dict look-up per
    atom costs ~100 ns; this ~5); None if any symbol is not a known 1-2 letter ASCII one."""
    if species.dtype.kind != "U" or species.size == 0:
        return None
    width = species.dtype.itemsize // 4
    codes = np.ascontiguousarray(species).view(np.uint32).reshape(-1, width)
    first = codes[:, 0]
    second = codes[:, 1] if width > 1 else np.zeros_like(first)
    if (width > 2 and codes[:, 2:].any()) or max(int(first.max()), int(second.max())) > 127:
        return None
    z = _Z_TABLE[first, second]
    return z if int(z.min()) >= 0 else None


# Info keys that ASE turns into calculator results (and so do _dict_parts and _dict_plan), in
# its order.
_RESULT_INFO_KEYS = ("energy", "free_energy", "stress")


def _dict_parts(natoms: int, info: dict[str, Any], arrays: dict[str, Any], index: int,
                keys: LabelKeys) -> tuple:
    """Cell, pbc, positions, labels, config_type and weight of a C-parser frame, read as ASE
    would (``info`` is not modified)."""
    info = dict(info)
    lattice = info.pop("Lattice", None)
    where = f"frame {index}"
    cell = np.zeros((3, 3)) if lattice is None else _lattice_cell(lattice, where)
    pbc = info.pop("pbc", None)
    if pbc is None:
        pbc = np.full(3, lattice is not None)
    elif not (isinstance(pbc, np.ndarray) and pbc.dtype == np.bool_ and pbc.shape == (3,)):
        raise IngestError(f"pbc must be three booleans (T or F), got {str(pbc)[:40]!r}", where=where)
    positions = arrays.get("pos", arrays.get("positions"))
    if positions is None:
        raise IngestError("no pos column", where=where)
    # ASE turns these info keys into calculator results and leaves the rest in info
    results = {k: info.pop(k) for k in _RESULT_INFO_KEYS if k in info}
    if "forces" in arrays:
        results["forces"] = arrays["forces"]
    volume = abs(det3(cell)) or None
    _, config_type = first_value(info, ("config_type",))
    _, weight = first_value(info, ("weight",))
    try:
        labels = labels_from_mappings(results, info, arrays, volume, keys, results_are_ase=False)
        weight = None if weight is None else label_number(weight, "weight")
    except ValueError as exc:
        raise IngestError(str(exc), where=where) from exc
    return (cell, pbc, np.asarray(positions, dtype=np.float64).reshape(-1, 3), labels,
            None if config_type is None else str(config_type), weight)


def _lattice_cell(lattice: Any, where: str) -> np.ndarray:
    """The cell (rows = lattice vectors) from the C parser's ``Lattice``: 9 numbers quoted or
    in braces come as the transposed 3x3, the one-dimensional ``[...]`` form as 9 in a row;
    anything else (words, booleans, 8 or 10 numbers, NaN) is refused."""
    a = np.asarray(lattice)
    if a.dtype.kind not in "iuf" or a.size != 9 or a.shape not in ((3, 3), (9,)):
        raise IngestError(f"Lattice must be 9 finite numbers, got {str(lattice)[:60]!r}",
                          where=where)
    cell = a.astype(np.float64).T if a.shape == (3, 3) else a.astype(np.float64).reshape(3, 3)
    if not np.isfinite(cell).all() or np.abs(cell).max() > MAX_LENGTH:
        raise IngestError(f"Lattice has a component that is not finite or above {MAX_LENGTH:g} Å",
                          where=where)
    return cell


def frame_from_dicts(natoms: int, info: dict[str, Any], arrays: dict[str, Any], index: int,
                     keys: LabelKeys = DEFAULT_KEYS) -> Frame:
    """A frame from the ``extxyz`` C parser's (natoms, info, arrays), read as ASE would."""
    cell, pbc, positions, labels, config_type, weight = _dict_parts(natoms, info, arrays, index, keys)
    return Frame(numbers=_numbers(arrays, index), positions=positions, cell=cell, pbc=pbc,
                 index=index, labels=labels, config_type=config_type, weight=weight)


def batch_from_dicts(raw: list[tuple[int, int, dict[str, Any], dict[str, Any]]], path: str,
                     keys: LabelKeys = DEFAULT_KEYS) -> FrameBatch:
    """A validated :class:`FrameBatch` from C-parser frames ``(index, natoms, info, arrays)``.

    Per frame only the header is looked at in Python; species, finiteness and cells are checked
    once for the whole batch. The first invalid frame is then explained by :func:`validate_frame`,
    so the errors are those of the frame-by-frame path.
    """
    if raw and (batch := _batch_by_plan(raw, path, keys)) is not None:
        return batch
    cells, pbcs, positions, labels, ctypes, weights, species = [], [], [], [], [], [], []
    for index, natoms, info, arrays in raw:
        try:
            cell, pbc, pos, lab, ctype, weight = _dict_parts(natoms, info, arrays, index, keys)
        except IngestError as exc:
            raise IngestError(str(exc), path=path, where=exc.where) from exc
        sp = arrays.get("species") if "Z" not in arrays else None
        n = len(sp) if sp is not None else -1
        forces = lab.forces
        if (sp is None or pos.shape != (n, 3) or getattr(sp, "ndim", 0) != 1
                or (forces is not None and forces.shape != (n, 3))):
            # unusual (a Z column) or inconsistent: the frame-by-frame path reads or explains it
            frame = validate_frame(frame_from_dicts(natoms, info, arrays, index, keys), path)
            sp, pos, lab = frame.numbers, frame.positions, frame.labels
        cells.append(cell)
        pbcs.append(pbc)
        positions.append(pos)
        labels.append(lab)
        ctypes.append(ctype)
        weights.append(weight)
        species.append(sp)
    counts = np.fromiter((len(p) for p in positions), dtype=np.int64, count=len(positions))
    numbers = _batch_numbers(species, raw, path, keys)
    has_forces = np.fromiter((lab.forces is not None for lab in labels), dtype=np.bool_,
                             count=len(labels))
    forces = [lab.forces if lab.forces is not None else np.zeros((len(p), 3))
              for lab, p in zip(labels, positions, strict=True)]
    batch = FrameBatch(
        counts=counts, numbers=numbers, positions=np.concatenate(positions),
        cells=np.stack(cells), pbcs=np.stack(pbcs), index=[r[0] for r in raw],
        energy=[lab.energy for lab in labels], free_energy=[lab.free_energy for lab in labels],
        stress=[lab.stress for lab in labels],
        forces=np.concatenate(forces).astype(np.float64, copy=False), has_forces=has_forces,
        config_type=ctypes, weight=weights,
    )
    return validate_batch(batch, path)


@dataclass(frozen=True, slots=True)
class _DictPlan:
    """Where :func:`_dict_parts` finds each part of a C-parser frame with given info and array
    keys: the same for every frame with those keys."""

    lattice: bool
    pbc: bool
    positions: str
    labels: LabelSources
    config_type: str | None
    weight: str | None


def _dict_plan(info: tuple[str, ...], arrays: tuple[str, ...], keys: LabelKeys) -> _DictPlan | None:
    """The plan of :func:`_dict_parts` for frames with these keys; None where a frame needs the
    frame-by-frame path (a Z column, no species or positions, a required key missing)."""
    if "Z" in arrays or "species" not in arrays:
        return None
    positions = "pos" if "pos" in arrays else "positions" if "positions" in arrays else None
    if positions is None:
        return None
    rest = tuple(k for k in info if k not in ("Lattice", "pbc", *_RESULT_INFO_KEYS))
    results = [k for k in _RESULT_INFO_KEYS if k in info] + (["forces"] if "forces" in arrays else [])
    labels = label_sources(results, rest, arrays, keys)
    if labels.missing is not None:
        return None
    in_rest = dict.fromkeys(rest, "info")
    ctype, weight = first_key(in_rest, ("config_type",)), first_key(in_rest, ("weight",))
    return _DictPlan(lattice="Lattice" in info, pbc="pbc" in info, positions=positions,
                     labels=labels, config_type=ctype and ctype[1], weight=weight and weight[1])


def _batch_by_plan(raw: list[tuple[int, int, dict[str, Any], dict[str, Any]]], path: str,
                   keys: LabelKeys) -> FrameBatch | None:
    """:func:`batch_from_dicts` for a batch whose frames all read the same way (the usual case:
    the same keys, or other keys that change nothing, such as ``initial_magmoms``): each part
    read for all frames at once, converted as one array (same operations, so the same values as
    frame by frame). None where anything differs from the plain case (keys,
    shapes, a value that does not convert): the frame-by-frame path then reads or explains it.

    Values are looked up by key name only: the C parser never gives None for a key it read.
    """
    plans: dict[tuple, _DictPlan | None] = {}  # by the frames' keys (a few kinds per file)
    for _, _, info, arrays in raw:
        sig = (tuple(info), tuple(arrays))
        if sig not in plans:
            plans[sig] = _dict_plan(*sig, keys)
    plan = next(iter(plans.values()))
    if plan is None or any(other != plan for other in plans.values()):
        return None
    infos = [r[2] for r in raw]
    arrays = [r[3] for r in raw]
    n_frames = len(raw)
    try:
        species = [a["species"] for a in arrays]
        n = [len(s) for s in species]
        positions = [a[plan.positions] for a in arrays]
        forces_key = plan.labels.forces[1] if plan.labels.forces is not None else None
        forces = [a[forces_key] for a in arrays] if forces_key is not None else None
        if ([getattr(s, "shape", None) for s in species] != [(k,) for k in n]
                or [getattr(p, "shape", None) for p in positions] != [(k, 3) for k in n]
                or (forces is not None
                    and [getattr(f, "shape", None) for f in forces] != [(k, 3) for k in n])):
            return None
        if plan.lattice:
            # quoted or {} 9 numbers come transposed; the 1-D [...] form comes as 9 in a row
            lattices = np.array([i["Lattice"] for i in infos])
            if lattices.dtype.kind not in "iuf":
                return None  # words or booleans: the frame path names the frame
            if lattices.shape == (n_frames, 3, 3):
                cells = np.ascontiguousarray(lattices.transpose(0, 2, 1), dtype=np.float64)
            elif lattices.shape == (n_frames, 9):
                cells = lattices.reshape(n_frames, 3, 3).astype(np.float64)
            else:
                return None
        else:
            cells = np.zeros((n_frames, 3, 3))
        if plan.pbc:
            pbcs = np.array([i["pbc"] for i in infos])
            if pbcs.shape != (n_frames, 3) or pbcs.dtype != np.bool_:
                return None
        else:
            pbcs = np.full((n_frames, 3), plan.lattice)
        src = plan.labels
        energy = ([label_number(i[src.energy[1]], "energy") for i in infos] if src.energy is not None
                  else [None] * n_frames)
        free_energy = ([label_number(i[src.free_energy[1]], "free_energy") for i in infos]
                       if src.free_energy is not None else [None] * n_frames)
        stress: list[np.ndarray | None] = [None] * n_frames
        if src.stress is not None or src.virial is not None:
            key = (src.stress or src.virial)[1]
            tensors = np.array([i[key] for i in infos])
            if tensors.dtype.kind not in "iuf":
                return None  # words or booleans are no stress: the frame path names the frame
            if tensors.shape[1:] == (6,) and keys.voigt_order is not None:
                voigt = tensors[:, [keys.voigt_order.index(n) for n in VOIGT_NAMES]].astype(np.float64)
            elif tensors.shape[1:] in ((9,), (3, 3)) and _symmetric_rows(
                    tensors.reshape(n_frames, 9).astype(np.float64)):
                voigt = voigt_rows(tensors.astype(np.float64))
            else:
                return None  # six numbers with no order, asymmetric: the frame path explains
            if src.stress is not None:
                gpa = ase_stress_to_gpa_rows(voigt)
            else:
                volumes = np.abs(det3_batch(cells))
                if not volumes.all():
                    return None  # a virial needs a volume: the frame path names the frame
                gpa = virial_to_stress_gpa_rows(voigt, volumes)
            stress = list(gpa)
        ctypes = ([str(i[plan.config_type]) for i in infos] if plan.config_type is not None
                  else [None] * n_frames)
        weights = ([float(i[plan.weight]) for i in infos] if plan.weight is not None
                   else [None] * n_frames)
        numbers = _batch_numbers(species, raw, path, keys)
        counts = np.asarray(n, dtype=np.int64)
        batch = FrameBatch(
            counts=counts, numbers=numbers,
            positions=np.concatenate(positions).astype(np.float64, copy=False),
            cells=cells, pbcs=pbcs, index=[r[0] for r in raw], energy=energy,
            free_energy=free_energy, stress=stress,
            forces=(np.concatenate(forces).astype(np.float64, copy=False) if forces is not None
                    else np.zeros((int(counts.sum()), 3))),
            has_forces=np.full(n_frames, forces is not None), config_type=ctypes, weight=weights,
        )
    except (TypeError, ValueError, KeyError, IngestError):
        return None
    return validate_batch(batch, path)


def _symmetric_rows(rows: np.ndarray) -> bool:
    """:func:`tensor_to_voigt`'s checks (finite, symmetric) on (F, 9) rows at once."""
    if not np.isfinite(rows).all():
        return False
    t = rows.reshape(-1, 3, 3)
    tol = SYMMETRY_RTOL * np.abs(rows).max(axis=1) + SYMMETRY_ATOL
    return bool((np.abs(t - t.transpose(0, 2, 1)).max(axis=(1, 2)) <= tol).all())


def _batch_numbers(species: list[np.ndarray], raw: list, path: str, keys: LabelKeys) -> np.ndarray:
    """Atomic numbers of the whole batch: one table look-up when every frame has plain symbols."""
    if all(s.dtype.kind == "U" for s in species):
        z = _numbers_from_codes(np.concatenate(species))
        if z is not None:
            return z
    out = []
    for sp, (index, _, _, arrays) in zip(species, raw, strict=True):
        try:
            out.append(sp if sp.dtype.kind == "i" else _numbers(arrays, index))
        except IngestError as exc:
            raise IngestError(str(exc), path=path, where=exc.where) from exc
    return np.concatenate(out).astype(np.int32, copy=False)


def validate_batch(batch: FrameBatch, path: str) -> FrameBatch:
    """:func:`validate_frame` for every frame of ``batch``, vectorised over the batch.

    Shapes are the builder's to check (a batch's arrays are aligned by construction); this finds
    the frames with no atoms, unknown species, NaN/inf, or a missing or degenerate periodic cell,
    and lets :func:`validate_frame` explain the first of them.
    """
    bad = batch.counts == 0
    offsets = batch.offsets

    def flag_atoms(atom_bad: np.ndarray) -> None:
        frames = np.searchsorted(offsets, np.flatnonzero(atom_bad), side="right") - 1
        bad[frames] = True

    z = batch.numbers
    if z.size and (int(z.min()) < 1 or int(z.max()) > 118):
        flag_atoms((z < 1) | (z > 118))
    for arr, bound in ((batch.positions, MAX_LENGTH), (batch.forces, MAX_FORCE)):
        # one pass finds NaN, inf and values beyond the bound alike (a NaN fails every <=)
        if arr.size and not (arr.max() <= bound and arr.min() >= -bound):  # no temporary
            flag_atoms(~(np.abs(arr) <= bound).all(axis=1))
    c, p = batch.cells, batch.pbcs
    if c.size and not (c.max() <= MAX_LENGTH and c.min() >= -MAX_LENGTH):
        bad |= ~(np.abs(c) <= MAX_LENGTH).all(axis=(1, 2))
    periodic = p.any(axis=1)
    if periodic.any():
        with np.errstate(over="ignore", invalid="ignore"):  # a huge cell is flagged above
            lengths = np.sqrt((c * c).sum(axis=2))
            det = (c[:, 0, 0] * (c[:, 1, 1] * c[:, 2, 2] - c[:, 1, 2] * c[:, 2, 1])
                   - c[:, 0, 1] * (c[:, 1, 0] * c[:, 2, 2] - c[:, 1, 2] * c[:, 2, 0])
                   + c[:, 0, 2] * (c[:, 1, 0] * c[:, 2, 1] - c[:, 1, 1] * c[:, 2, 0]))
            degenerate = ((lengths < 1e-8) & p).any(axis=1) | ~(np.abs(det) >= 1e-8)
        bad |= periodic & degenerate
    if not _labels_look_finite(batch):
        for i, (e, s) in enumerate(zip(batch.energy, batch.stress, strict=True)):
            if (e is not None and not abs(e) <= MAX_ENERGY_PER_ATOM * max(int(batch.counts[i]), 1)) or (
                    s is not None and (s.shape != (6,) or not np.abs(s).max() <= MAX_STRESS_GPA)):
                bad[i] = True
    if bad.any():
        i = int(np.argmax(bad))
        validate_frame(batch.frame(i), path)
        raise IngestError("invalid frame", path=path, where=f"frame {batch.index[i]}")
    return batch


def _labels_look_finite(batch: FrameBatch) -> bool:
    """Every energy finite and every stress six finite numbers, checked for the whole batch at
    once; False sends :func:`validate_batch` through the frames one by one to find which."""
    energies = [e for e in batch.energy if e is not None]
    if energies:
        per_atom = np.abs(np.array(energies)) / np.maximum(
            batch.counts[[e is not None for e in batch.energy]], 1)
        if not per_atom.max() <= MAX_ENERGY_PER_ATOM:
            return False
    stresses = [s for s in batch.stress if s is not None]
    if not stresses:
        return True
    try:
        rows = np.stack(stresses)
    except ValueError:  # shapes differ
        return False
    return rows.shape[1:] == (6,) and bool(np.abs(rows).max() <= MAX_STRESS_GPA)


def validate_frame(frame: Frame, path: str) -> Frame:
    """Check shapes, finiteness and the cell; raise :class:`IngestError` naming file and frame."""
    where = f"frame {frame.index}"
    n = frame.n_atoms
    if n == 0:
        raise IngestError("frame has no atoms", path=path, where=where)
    if frame.positions.shape != (n, 3):
        raise IngestError(
            f"positions have shape {frame.positions.shape}, expected ({n}, 3)", path=path, where=where
        )
    if frame.numbers.min() < 1 or frame.numbers.max() > 118:
        raise IngestError("unknown chemical species", path=path, where=where)
    if not np.isfinite(frame.positions.sum()) and not np.isfinite(frame.positions).all():
        raise IngestError("positions contain NaN or inf", path=path, where=where)
    if not np.abs(frame.positions).max() <= MAX_LENGTH:
        raise IngestError(f"a coordinate is above {MAX_LENGTH:g} Å in size", path=path, where=where)
    if not np.isfinite(frame.cell).all() or not np.abs(frame.cell).max() <= MAX_LENGTH:
        raise IngestError(f"a Lattice (cell) component is NaN, inf or above {MAX_LENGTH:g} Å",
                          path=path, where=where)
    if frame.pbc.any():
        c = frame.cell
        lengths = np.sqrt((c * c).sum(axis=1))
        det = (c[0, 0] * (c[1, 1] * c[2, 2] - c[1, 2] * c[2, 1])
               - c[0, 1] * (c[1, 0] * c[2, 2] - c[1, 2] * c[2, 0])
               + c[0, 2] * (c[1, 0] * c[2, 1] - c[1, 1] * c[2, 0]))
        if (lengths[frame.pbc] < 1e-8).any() or not abs(det) >= 1e-8:
            raise IngestError(
                "periodic frame has no (or a degenerate) cell; give a Lattice or set pbc false",
                path=path,
                where=where,
            )
    validate_labels(frame.labels, n, path=path, where=where)
    return frame


def validate_labels(labels: Labels, n_atoms: int, *, path: str, where: str) -> None:
    if labels.energy is not None and not math.isfinite(labels.energy):
        raise IngestError(f"energy is {labels.energy}", path=path, where=where)
    if labels.energy is not None and abs(labels.energy) > MAX_ENERGY_PER_ATOM * max(n_atoms, 1):
        raise IngestError(f"energy {labels.energy:g} eV is above {MAX_ENERGY_PER_ATOM:g} eV per"
                          " atom in size", path=path, where=where)
    if labels.forces is not None:
        f = labels.forces
        if f.shape != (n_atoms, 3):
            raise IngestError(
                f"forces have {f.size // 3 if f.ndim else 0} rows for {n_atoms} atoms"
                f" (shape {f.shape})",
                path=path,
                where=where,
            )
        if not np.isfinite(f.sum()) and not np.isfinite(f).all():
            bad = int(np.argwhere(~np.isfinite(f))[0][0])
            raise IngestError(f"forces contain NaN or inf (atom {bad})", path=path, where=where)
        if f.size and not np.abs(f).max() <= MAX_FORCE:
            bad = int(np.argwhere(np.abs(f) > MAX_FORCE)[0][0])
            raise IngestError(f"a force is above {MAX_FORCE:g} eV/Å in size (atom {bad})",
                              path=path, where=where)
    if labels.stress is not None:
        s = labels.stress
        if s.shape != (6,):
            raise IngestError(f"stress has shape {s.shape}, expected 6", path=path, where=where)
        if not np.all(np.isfinite(s)):
            raise IngestError("stress contains NaN or inf", path=path, where=where)
        if not np.abs(s).max() <= MAX_STRESS_GPA:
            raise IngestError(f"a stress component is above {MAX_STRESS_GPA:g} GPa in size",
                              path=path, where=where)

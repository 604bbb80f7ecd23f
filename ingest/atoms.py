"""From ASE ``Atoms`` (whatever file ASE read them from) to validated :class:`Frame` records.

Labels are looked for where the real files put them: a calculator's results (ASE's own extxyz,
VASP, ase.db), then per-frame keys and per-atom arrays under the names other programs use
(GPUMD's ``energy=``/``Energy=``, ``force:R:3``, ``virial=``/``Virial=``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers

from warehouse.geometry import det3
from warehouse.records import Frame, FrameBatch, Labels
from warehouse.errors import IngestError
from warehouse.units import ase_stress_to_gpa, virial_to_stress_gpa

ENERGY_KEYS = ("energy", "Energy", "total_energy", "dft_energy", "REF_energy")
FORCE_ARRAYS = ("forces", "force", "Forces", "dft_forces", "REF_forces")
STRESS_KEYS = ("stress", "Stress", "dft_stress", "REF_stress")
VIRIAL_KEYS = ("virial", "Virial", "virials", "REF_virial")


@dataclass(frozen=True, slots=True)
class LabelKeys:
    """Where to find labels: key names in order of preference, and whether a calculator's results
    win over them (``calc_first``). Names in ``required`` must be present in every frame."""

    energy: tuple[str, ...] = ENERGY_KEYS
    forces: tuple[str, ...] = FORCE_ARRAYS
    stress: tuple[str, ...] = STRESS_KEYS
    virial: tuple[str, ...] = VIRIAL_KEYS
    calc_first: bool = True
    required: tuple[str, ...] = ()


DEFAULT_KEYS = LabelKeys()
# A predictions file often carries the reference too: the *_pred names win over plain ones.
PREDICTION_KEYS = LabelKeys(
    energy=("energy_pred", "pred_energy", "predicted_energy", *ENERGY_KEYS),
    forces=("forces_pred", "pred_forces", "predicted_forces", "force_pred", *FORCE_ARRAYS),
    stress=("stress_pred", "pred_stress", "predicted_stress", *STRESS_KEYS),
    virial=("virial_pred", "pred_virial", "predicted_virial", *VIRIAL_KEYS),
    calc_first=False,
)


def prediction_keys(*, energy: str | None = None, forces: str | None = None,
                    stress: str | None = None, virial: str | None = None) -> LabelKeys:
    """PREDICTION_KEYS with the named keys put first and made required."""
    named = {"energy": energy, "forces": forces, "stress": stress, "virial": virial}
    fields = {k: (v,) for k, v in named.items() if v}
    if stress and not virial:
        fields["virial"] = ()
    if virial and not stress:
        fields["stress"] = ()
    return LabelKeys(**{**{k: getattr(PREDICTION_KEYS, k) for k in named}, **fields},
                     calc_first=False, required=tuple(v for v in named.values() if v))


def _calc_results(atoms: Atoms) -> dict[str, Any]:
    calc = atoms.calc
    return dict(getattr(calc, "results", {}) or {}) if calc is not None else {}


def _first(mapping: dict[str, Any], keys: tuple[str, ...]) -> tuple[str | None, Any]:
    """The first of ``keys`` present in ``mapping``; exact spelling first, then any case (GPUMD
    lower-cases every key it reads, so ``Energy=`` and ``energy=`` mean the same to it)."""
    for key in keys:
        if key in mapping and mapping[key] is not None:
            return key, mapping[key]
    lowered = {k.lower(): k for k in mapping}
    for key in keys:
        k = lowered.get(key.lower())
        if k is not None and mapping[k] is not None:
            return k, mapping[k]
    return None, None


def _float(value: Any, what: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what} is not a number ({value!r})") from exc


def labels_from_mappings(
    results: dict[str, Any],
    info: dict[str, Any],
    arrays: dict[str, Any],
    volume: float | None,
    keys: LabelKeys = DEFAULT_KEYS,
) -> Labels:
    """Energy, forces and stress in warehouse units from a calculator's ``results`` (looked at
    first), per-frame ``info`` keys and per-atom ``arrays``.

    Stress keys are ASE's convention (eV/Å^3, positive = tensile, 3x3 or Voigt); virial keys are
    the total virial in eV (GPUMD: 9 components; 6 are read in Voigt order xx yy zz yz xz xy),
    converted by ``sigma = -W / V``.
    """
    if not keys.calc_first and results:
        info = {**info, **{k: v for k, v in results.items() if k != "forces"}}
        arrays = {**arrays, **({"forces": results["forces"]} if "forces" in results else {})}
        results = {}
    for name in keys.required:
        if name not in info and name not in arrays:
            have = ", ".join(sorted({*info, *arrays})) or "nothing"
            raise ValueError(f"has no key {name!r} (it has: {have})")
    energy_keys, force_keys = keys.energy, keys.forces
    stress_keys, virial_keys = keys.stress, keys.virial
    labels = Labels()
    energy = results.get("energy")
    if energy is None:
        _, energy = _first(info, energy_keys)
    labels.energy = None if energy is None else _float(energy, "energy")
    if results.get("free_energy") is not None:
        labels.free_energy = _float(results["free_energy"], "free_energy")
    forces = results.get("forces")
    if forces is None:
        _, forces = _first(arrays, force_keys)
    labels.forces = None if forces is None else np.asarray(forces, dtype=np.float64)
    stress = results.get("stress")
    if stress is None:
        _, stress = _first(info, stress_keys)
    if stress is not None:
        labels.stress = ase_stress_to_gpa(np.asarray(stress, dtype=np.float64))
    else:
        _, virial = _first(info, virial_keys)
        if virial is not None:
            if not volume:
                raise ValueError("a virial needs a periodic cell with a volume")
            labels.stress = virial_to_stress_gpa(np.asarray(virial, dtype=np.float64), volume)
    return labels


def labels_from_atoms(atoms: Atoms, *, use_calculator: bool = True,
                      keys: LabelKeys = DEFAULT_KEYS) -> Labels:
    """Collect energy, forces and stress in warehouse units (see ``warehouse.units``)."""
    results = _calc_results(atoms) if use_calculator else {}
    volume = abs(det3(atoms.cell.array)) or None
    return labels_from_mappings(results, atoms.info, dict(atoms.arrays), volume, keys)


def frame_from_atoms(atoms: Atoms, index: int, *, labels: Labels | None = None,
                     keys: LabelKeys = DEFAULT_KEYS) -> Frame:
    info = atoms.info
    _, config_type = _first(info, ("config_type",))
    _, weight = _first(info, ("weight",))
    try:
        labels = labels if labels is not None else labels_from_atoms(atoms, keys=keys)
        weight = None if weight is None else _float(weight, "weight")
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


def _dict_parts(natoms: int, info: dict[str, Any], arrays: dict[str, Any], index: int,
                keys: LabelKeys) -> tuple:
    """Cell, pbc, positions, labels, config_type and weight of a C-parser frame, read as ASE
    would (``info`` is not modified)."""
    info = dict(info)
    lattice = info.pop("Lattice", None)
    cell = np.zeros((3, 3)) if lattice is None else np.asarray(lattice, dtype=np.float64).T
    pbc = np.asarray(info.pop("pbc", [lattice is not None] * 3), dtype=np.bool_).reshape(-1)
    positions = arrays.get("pos", arrays.get("positions"))
    if positions is None:
        raise IngestError("no pos column", where=f"frame {index}")
    # ASE turns these info keys into calculator results and leaves the rest in info
    results = {k: info.pop(k) for k in ("energy", "free_energy", "stress") if k in info}
    if "forces" in arrays:
        results["forces"] = arrays["forces"]
    volume = abs(det3(cell)) or None
    _, config_type = _first(info, ("config_type",))
    _, weight = _first(info, ("weight",))
    try:
        labels = labels_from_mappings(results, info, arrays, volume, keys)
        weight = None if weight is None else _float(weight, "weight")
    except ValueError as exc:
        raise IngestError(str(exc), where=f"frame {index}") from exc
    return (cell, pbc if pbc.shape == (3,) else np.repeat(pbc[:1], 3),
            np.asarray(positions, dtype=np.float64).reshape(-1, 3), labels,
            None if config_type is None else str(config_type), weight)


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
    for arr in (batch.positions, batch.forces):
        if not np.isfinite(arr.sum()):
            flag_atoms(~np.isfinite(arr).all(axis=1))
    c, p = batch.cells, batch.pbcs
    periodic = p.any(axis=1)
    if periodic.any():
        lengths = np.sqrt((c * c).sum(axis=2))
        det = (c[:, 0, 0] * (c[:, 1, 1] * c[:, 2, 2] - c[:, 1, 2] * c[:, 2, 1])
               - c[:, 0, 1] * (c[:, 1, 0] * c[:, 2, 2] - c[:, 1, 2] * c[:, 2, 0])
               + c[:, 0, 2] * (c[:, 1, 0] * c[:, 2, 1] - c[:, 1, 1] * c[:, 2, 0]))
        with np.errstate(invalid="ignore"):
            degenerate = ((lengths < 1e-8) & p).any(axis=1) | ~(np.abs(det) >= 1e-8)
        bad |= periodic & degenerate
    for i, (e, s) in enumerate(zip(batch.energy, batch.stress, strict=True)):
        if (e is not None and not math.isfinite(e)) or (
                s is not None and (s.shape != (6,) or not np.isfinite(s).all())):
            bad[i] = True
    if bad.any():
        i = int(np.argmax(bad))
        validate_frame(batch.frame(i), path)
        raise IngestError("invalid frame", path=path, where=f"frame {batch.index[i]}")
    return batch


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
    if labels.stress is not None:
        s = labels.stress
        if s.shape != (6,):
            raise IngestError(f"stress has shape {s.shape}, expected 6", path=path, where=where)
        if not np.all(np.isfinite(s)):
            raise IngestError("stress contains NaN or inf", path=path, where=where)

"""From ASE ``Atoms`` (whatever file ASE read them from) to validated :class:`Frame` records.

Labels are looked for where the real files put them: a calculator's results (ASE's own extxyz,
VASP, ase.db), then per-frame keys and per-atom arrays under the names other programs use
(GPUMD's ``energy=``/``Energy=``, ``force:R:3``, ``virial=``/``Virial=``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from ase import Atoms

from warehouse.records import Frame, Labels
from warehouse.errors import IngestError
from warehouse.units import ase_stress_to_gpa, virial_to_stress_gpa

ENERGY_KEYS = ("energy", "Energy", "total_energy", "dft_energy", "REF_energy")
FORCE_ARRAYS = ("forces", "force", "Forces", "dft_forces", "REF_forces")
STRESS_KEYS = ("stress", "Stress", "dft_stress", "REF_stress")
VIRIAL_KEYS = ("virial", "Virial", "virials", "REF_virial")


def _calc_results(atoms: Atoms) -> dict[str, Any]:
    calc = atoms.calc
    return dict(getattr(calc, "results", {}) or {}) if calc is not None else {}


def _first(mapping: dict[str, Any], keys: tuple[str, ...]) -> tuple[str | None, Any]:
    for key in keys:
        if key in mapping and mapping[key] is not None:
            return key, mapping[key]
    return None, None


def labels_from_atoms(
    atoms: Atoms,
    *,
    energy_keys: tuple[str, ...] = ENERGY_KEYS,
    force_keys: tuple[str, ...] = FORCE_ARRAYS,
    stress_keys: tuple[str, ...] = STRESS_KEYS,
    virial_keys: tuple[str, ...] = VIRIAL_KEYS,
    use_calculator: bool = True,
) -> Labels:
    """Collect energy, forces and stress in warehouse units (see ``warehouse.units``)."""
    results = _calc_results(atoms) if use_calculator else {}
    info = atoms.info
    labels = Labels()
    _, energy = _first(results, ("energy",)) if use_calculator else (None, None)
    if energy is None:
        _, energy = _first(info, energy_keys)
    labels.energy = None if energy is None else float(energy)
    if use_calculator and results.get("free_energy") is not None:
        labels.free_energy = float(results["free_energy"])
    forces = results.get("forces") if use_calculator else None
    if forces is None:
        _, forces = _first(dict(atoms.arrays), force_keys)
    labels.forces = None if forces is None else np.asarray(forces, dtype=np.float64)
    stress = results.get("stress") if use_calculator else None
    if stress is None:
        _, stress = _first(info, stress_keys)
    if stress is not None:
        labels.stress = ase_stress_to_gpa(np.asarray(stress, dtype=np.float64))
    else:
        _, virial = _first(info, virial_keys)
        if virial is not None:
            labels.stress = virial_to_stress_gpa(np.asarray(virial), atoms.get_volume())
    return labels


def frame_from_atoms(atoms: Atoms, index: int, *, labels: Labels | None = None) -> Frame:
    info = atoms.info
    config_type = info.get("config_type")
    weight = info.get("weight")
    return Frame(
        numbers=np.asarray(atoms.numbers, dtype=np.int32),
        positions=np.asarray(atoms.positions, dtype=np.float64),
        cell=np.asarray(atoms.cell.array, dtype=np.float64),
        pbc=np.asarray(atoms.pbc, dtype=np.bool_),
        index=index,
        labels=labels if labels is not None else labels_from_atoms(atoms),
        config_type=None if config_type is None else str(config_type),
        weight=None if weight is None else float(weight),
    )


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
    if np.any(frame.numbers < 1) or np.any(frame.numbers > 118):
        raise IngestError("unknown chemical species", path=path, where=where)
    if not np.all(np.isfinite(frame.positions)):
        raise IngestError("positions contain NaN or inf", path=path, where=where)
    if frame.pbc.any():
        lengths = np.linalg.norm(frame.cell, axis=1)
        if np.any(lengths[frame.pbc] < 1e-8) or abs(np.linalg.det(frame.cell)) < 1e-8:
            raise IngestError(
                "periodic frame has no (or a degenerate) cell; give a Lattice or set pbc false",
                path=path,
                where=where,
            )
    validate_labels(frame.labels, n, path=path, where=where)
    return frame


def validate_labels(labels: Labels, n_atoms: int, *, path: str, where: str) -> None:
    if labels.energy is not None and not np.isfinite(labels.energy):
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
        if not np.all(np.isfinite(f)):
            bad = int(np.argwhere(~np.isfinite(f))[0][0])
            raise IngestError(f"forces contain NaN or inf (atom {bad})", path=path, where=where)
    if labels.stress is not None:
        s = labels.stress
        if s.shape != (6,):
            raise IngestError(f"stress has shape {s.shape}, expected 6", path=path, where=where)
        if not np.all(np.isfinite(s)):
            raise IngestError("stress contains NaN or inf", path=path, where=where)

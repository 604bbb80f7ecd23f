"""Where a structure's labels are found, and what they mean: the key names of each program
(:class:`LabelKeys`; the ``*_pred`` names of predictions files), the Voigt order of six-number
stresses and virials, the physical bounds of a label, and energy, forces and stress collected
in warehouse units from a calculator's results, per-frame keys and per-atom arrays.

Labels are looked for where the real files put them: a calculator's results (ASE's own extxyz,
VASP, ase.db), then per-frame keys and per-atom arrays under the names other programs use
(GPUMD's ``energy=``/``Energy=``, ``force:R:3``, ``virial=``/``Virial=``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
from ase import Atoms

from warehouse.geometry import det3
from warehouse.records import Labels
from warehouse.units import ase_stress_to_gpa, full_to_voigt, virial_to_stress_gpa


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
    # The order of a six-component stress or virial in the file (``--voigt-order``): none is
    # assumed, since programs differ (GPUMD's is xx yy zz xy yz zx, ours xx yy zz yz xz xy).
    voigt_order: tuple[str, ...] | None = None


DEFAULT_KEYS = LabelKeys()

# Physical bounds (docs/INPUT.md): beyond them a value is a broken file, not a structure. (A
# coordinate's bound, MAX_LENGTH, is in ingest.xyzheader: the header check uses it too.)
MAX_FORCE = 1e4  # eV/Å
MAX_ENERGY_PER_ATOM = 1e6  # eV (all-electron total energies of the heaviest atoms are ~1e5)
MAX_STRESS_GPA = 1e6
# A predictions file often carries the reference too: the *_pred names win over plain ones.
PREDICTION_KEYS = LabelKeys(
    energy=("energy_pred", "pred_energy", "predicted_energy", *ENERGY_KEYS),
    forces=("forces_pred", "pred_forces", "predicted_forces", "force_pred", *FORCE_ARRAYS),
    stress=("stress_pred", "pred_stress", "predicted_stress", *STRESS_KEYS),
    virial=("virial_pred", "pred_virial", "predicted_virial", *VIRIAL_KEYS),
    calc_first=False,
)


def prediction_keys(*, energy: str | None = None, forces: str | None = None,
                    stress: str | None = None, virial: str | None = None,
                    voigt_order: tuple[str, ...] | None = None) -> LabelKeys:
    """PREDICTION_KEYS with the named keys put first and made required."""
    named = {"energy": energy, "forces": forces, "stress": stress, "virial": virial}
    fields = {k: (v,) for k, v in named.items() if v}
    if stress and not virial:
        fields["virial"] = ()
    if virial and not stress:
        fields["stress"] = ()
    return LabelKeys(**{**{k: getattr(PREDICTION_KEYS, k) for k in named}, **fields},
                     calc_first=False, required=tuple(v for v in named.values() if v),
                     voigt_order=voigt_order)


def _calc_results(atoms: Atoms) -> dict[str, Any]:
    calc = atoms.calc
    return dict(getattr(calc, "results", {}) or {}) if calc is not None else {}


def first_value(mapping: dict[str, Any], keys: tuple[str, ...]) -> tuple[str | None, Any]:
    """The first of ``keys`` present in ``mapping`` with a value (not None); exact spelling
    first, then any case (GPUMD lower-cases every key it reads, so ``Energy=`` and ``energy=``
    mean the same to it): :func:`first_key` on the keys that have values."""
    found = first_key(dict.fromkeys((k for k, v in mapping.items() if v is not None), ""), keys)
    return (None, None) if found is None else (found[1], mapping[found[1]])


def label_number(value: Any, what: str) -> float:
    """A label's one number: a flag, a boolean, a word or an array is never an energy (Python
    would read ``True`` as 1.0 and a one-element array as its element)."""
    if isinstance(value, bool | np.bool_):
        raise ValueError(f"{what} is a flag or a boolean ({value!r}), not a number;"
                         f" write {what}=<value>")
    if isinstance(value, np.ndarray) and value.ndim > 0:
        raise ValueError(f"{what} is {value.size} values, not one number")
    if isinstance(value, str | bytes) or not isinstance(value, int | float | np.number):
        raise ValueError(f"{what} is not a number ({str(value)[:40]!r})")
    return float(value)


# A 3x3 stress or virial must be symmetric: |t_ij - t_ji| <= SYMMETRY_RTOL * max|t| + SYMMETRY_ATOL
# (in the file's own units; files print 8-16 digits, so an honest tensor passes with room).
SYMMETRY_RTOL = 1e-5
SYMMETRY_ATOL = 1e-9
VOIGT_NAMES = ("xx", "yy", "zz", "yz", "xz", "xy")
_SYNONYMS = {"zy": "yz", "zx": "xz", "yx": "xy"}


def parse_voigt_order(text: str) -> tuple[str, ...]:
    """``--voigt-order``: six comma-separated components, e.g. ``xx,yy,zz,xy,yz,zx``."""
    names = tuple(_SYNONYMS.get(w.strip().lower(), w.strip().lower()) for w in text.split(","))
    if sorted(names) != sorted(VOIGT_NAMES):
        raise ValueError(f"--voigt-order must name xx, yy, zz, yz, xz and xy once each, got {text!r}")
    return names


def tensor_to_voigt(values: Any, what: str, order: tuple[str, ...] | None) -> np.ndarray:
    """Six components xx yy zz yz xz xy of a stress or virial given as a symmetric 3x3 (9
    numbers) or as 6 numbers in the stated ``order`` (refused without one)."""
    t = np.asarray(values, dtype=np.float64).reshape(-1)
    if t.size == 9:
        m = t.reshape(3, 3)
        if not np.isfinite(t).all():
            raise ValueError(f"{what} contains NaN or inf")
        if (np.abs(m - m.T) > SYMMETRY_RTOL * np.abs(t).max() + SYMMETRY_ATOL).any():
            raise ValueError(f"{what} is not symmetric (|t_ij - t_ji| above {SYMMETRY_RTOL:g}"
                             " of its largest component)")
        return full_to_voigt(t)
    if t.size == 6:
        if order is None:
            raise ValueError(f"{what} has 6 components in an order the file does not state;"
                             " pass --voigt-order (e.g. xx,yy,zz,yz,xz,xy)")
        return t[[order.index(n) for n in VOIGT_NAMES]]
    raise ValueError(f"{what} must have 9 (3x3) or 6 components, got {t.size}")


def voigt_to_full(voigt: np.ndarray) -> np.ndarray:
    xx, yy, zz, yz, xz, xy = voigt
    return np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]])


@dataclass(frozen=True, slots=True)
class LabelSources:
    """Where each label of a frame is: ``(mapping, key)`` with mapping ``"results"``, ``"info"``
    or ``"arrays"``, or None; ``missing`` is the first required key absent, if any. Depends only
    on which keys are present, so frames with the same keys share one (see
    :func:`batch_from_dicts`)."""

    energy: tuple[str, str] | None
    free_energy: tuple[str, str] | None
    forces: tuple[str, str] | None
    stress: tuple[str, str] | None
    virial: tuple[str, str] | None  # looked for only where there is no stress
    missing: str | None


def first_key(where: dict[str, str], names: tuple[str, ...]) -> tuple[str, str] | None:
    """``(where[k], k)`` for the first of ``names`` in ``where``; exact spelling first, then any
    case (as :func:`first_value`)."""
    for name in names:
        if name in where:
            return where[name], name
    lowered = {k.lower(): k for k in where}
    for name in names:
        k = lowered.get(name.lower())
        if k is not None:
            return where[k], k
    return None


def label_sources(results: Iterable[str], info: Iterable[str], arrays: Iterable[str],
                  keys: LabelKeys = DEFAULT_KEYS) -> LabelSources:
    """Which of the keys present in a calculator's ``results``, the per-frame ``info`` and the
    per-atom ``arrays`` give energy, free energy, forces and stress (or a virial): results
    first unless ``keys.calc_first`` is false (then they count as info keys and arrays)."""
    res = set(results)
    in_info = dict.fromkeys(info, "info")
    in_arrays = dict.fromkeys(arrays, "arrays")
    if not keys.calc_first and res:
        in_info.update((k, "results") for k in results if k != "forces")
        if "forces" in res:
            in_arrays["forces"] = "results"
        res = set()
    missing = next((n for n in keys.required if n not in in_info and n not in in_arrays), None)
    stress = ("results", "stress") if "stress" in res else first_key(in_info, keys.stress)
    return LabelSources(
        energy=("results", "energy") if "energy" in res else first_key(in_info, keys.energy),
        free_energy=("results", "free_energy") if "free_energy" in res else None,
        forces=("results", "forces") if "forces" in res else first_key(in_arrays, keys.forces),
        stress=stress,
        virial=None if stress is not None else first_key(in_info, keys.virial),
        missing=missing,
    )


def labels_from_mappings(
    results: dict[str, Any],
    info: dict[str, Any],
    arrays: dict[str, Any],
    volume: float | None,
    keys: LabelKeys = DEFAULT_KEYS,
    *,
    results_are_ase: bool = True,
) -> Labels:
    """Energy, forces and stress in warehouse units from a calculator's ``results`` (looked at
    first), per-frame ``info`` keys and per-atom ``arrays``; a key whose value is None counts
    as absent (:func:`label_sources` says where each label is).

    Stress keys are ASE's convention (eV/Å^3, positive = tensile, 3x3 or Voigt); virial keys are
    the total virial in eV (GPUMD: 9 components; 6 are read in Voigt order xx yy zz yz xz xy),
    converted by ``sigma = -W / V``. A 3x3 must be symmetric; six numbers from a file key are
    read only in the order ``keys.voigt_order`` states (a calculator's results are ASE's Voigt
    order unless ``results_are_ase`` is false: the C parser's frames put file keys there).
    """
    present = {"results": {k: v for k, v in results.items() if v is not None},
               "info": {k: v for k, v in info.items() if v is not None},
               "arrays": {k: v for k, v in arrays.items() if v is not None}}
    src = label_sources(present["results"], present["info"], present["arrays"], keys)
    if src.missing is not None:
        have = ", ".join(sorted({*info, *arrays, *(results if not keys.calc_first else ())}))
        raise ValueError(f"has no key {src.missing!r} (it has: {have or 'nothing'})")

    def value(where: tuple[str, str] | None) -> Any:
        return None if where is None else present[where[0]][where[1]]

    labels = Labels()
    energy = value(src.energy)
    labels.energy = None if energy is None else label_number(energy, "energy")
    if src.free_energy is not None:
        labels.free_energy = label_number(value(src.free_energy), "free_energy")
    forces = value(src.forces)
    labels.forces = None if forces is None else _array(forces, src.forces[1])
    if src.stress is not None:
        trusted = src.stress[0] == "results" and results_are_ase
        voigt = tensor_to_voigt(_array(value(src.stress), src.stress[1]), src.stress[1],
                                VOIGT_NAMES if trusted else keys.voigt_order)
        labels.stress = ase_stress_to_gpa(voigt)
    elif src.virial is not None:
        if not volume:
            raise ValueError("a virial needs a periodic cell with a volume")
        voigt = tensor_to_voigt(_array(value(src.virial), src.virial[1]), src.virial[1],
                                keys.voigt_order)
        labels.stress = virial_to_stress_gpa(voigt, volume)
    return labels


def _array(value: Any, what: str) -> np.ndarray:
    """A label array of real numbers (not words, not booleans)."""
    a = np.asarray(value)
    if a.dtype.kind not in "iuf":
        raise ValueError(f"{what} is not an array of numbers ({str(value)[:40]!r})")
    return a.astype(np.float64)


def labels_from_atoms(atoms: Atoms, *, use_calculator: bool = True,
                      keys: LabelKeys = DEFAULT_KEYS) -> Labels:
    """Collect energy, forces and stress in warehouse units (see ``warehouse.units``)."""
    results = _calc_results(atoms) if use_calculator else {}
    volume = abs(det3(atoms.cell.array)) or None
    return labels_from_mappings(results, atoms.info, dict(atoms.arrays), volume, keys)

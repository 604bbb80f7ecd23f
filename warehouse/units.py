"""Unit and sign conventions, and the converters from each source's own.

Stored: energy eV (total per structure), forces eV/Å, stress GPa with ASE's sign (positive =
tensile; sigma = (1/V) dE/d(eps)) in Voigt order xx yy zz yz xz xy. Converters are applied at
ingest, never at query time, and each states the convention it converts from.
"""

from __future__ import annotations

import numpy as np
from ase.units import GPa as _EV_PER_A3_PER_GPA
from numpy.typing import NDArray

EV_PER_A3_TO_GPA = 1.0 / _EV_PER_A3_PER_GPA  # 160.21766...
VOIGT_ORDER = ("xx", "yy", "zz", "yz", "xz", "xy")

# Index pairs of the Voigt components in a 3x3 tensor, and their row-major flat indices.
_VOIGT_IJ = ((0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1))
_VOIGT_FLAT = np.array([3 * i + j for i, j in _VOIGT_IJ])


def full_to_voigt(tensor: NDArray[np.float64]) -> NDArray[np.float64]:
    """3x3 (or 9 values, row-major) -> 6 Voigt components xx yy zz yz xz xy."""
    return np.asarray(tensor, dtype=np.float64).reshape(9)[_VOIGT_FLAT]


def ase_stress_to_gpa(stress: NDArray[np.float64]) -> NDArray[np.float64]:
    """ASE stress (eV/Å^3, ASE sign, Voigt or 3x3) -> GPa, ASE sign, Voigt."""
    s = np.asarray(stress, dtype=np.float64)
    if s.size == 9:
        s = full_to_voigt(s)
    if s.shape != (6,):
        raise ValueError(f"stress must have 6 or 9 components, got {s.size}")
    return s * EV_PER_A3_TO_GPA


def virial_to_stress_gpa(virial: NDArray[np.float64], volume: float) -> NDArray[np.float64]:
    """Total virial W (eV; 9 row-major or 6 Voigt-ordered components) -> stress in GPa, ASE sign.

    Source convention (GPUMD, extxyz ``virial=``): W = -V * sigma_ASE, i.e. positive under
    compression, so sigma = -W / V.
    """
    w = np.asarray(virial, dtype=np.float64)
    if w.size == 9:
        w = full_to_voigt(w)
    if w.shape != (6,):
        raise ValueError(f"virial must have 6 or 9 components, got {w.size}")
    return -w / volume * EV_PER_A3_TO_GPA


def voigt_rows(tensors: NDArray[np.float64]) -> NDArray[np.float64] | None:
    """(F, 6) Voigt rows of F tensors given as (F, 6), (F, 9) or (F, 3, 3), as
    :func:`full_to_voigt` picks them; None for any other shape."""
    t = np.asarray(tensors, dtype=np.float64)
    if t.ndim == 2 and t.shape[1] == 6:
        return t
    if t.shape[1:] in ((9,), (3, 3)):
        return t.reshape(len(t), 9)[:, _VOIGT_FLAT]
    return None


def ase_stress_to_gpa_rows(voigt: NDArray[np.float64]) -> NDArray[np.float64]:
    """:func:`ase_stress_to_gpa` of (F, 6) Voigt rows (the same operation, so the same bits)."""
    return voigt * EV_PER_A3_TO_GPA


def virial_to_stress_gpa_rows(voigt: NDArray[np.float64],
                              volumes: NDArray[np.float64]) -> NDArray[np.float64]:
    """:func:`virial_to_stress_gpa` of (F, 6) Voigt rows and their (F,) volumes (the same
    operations in the same order, so the same bits)."""
    return -voigt / volumes[:, None] * EV_PER_A3_TO_GPA


def gpumd_voigt_to_ase_order(values: NDArray[np.float64]) -> NDArray[np.float64]:
    """GPUMD ``.out`` files order 6 components as xx yy zz xy yz zx; ours is xx yy zz yz xz xy."""
    v = np.asarray(values, dtype=np.float64)
    return v[..., [0, 1, 2, 4, 5, 3]]


def vasp_kbar_to_gpa(stress_kbar: NDArray[np.float64]) -> NDArray[np.float64]:
    """VASP stress (kbar, positive = compressive) -> GPa, ASE sign: -0.1 x value."""
    return -0.1 * np.asarray(stress_kbar, dtype=np.float64)

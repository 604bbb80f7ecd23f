"""Per-structure error sums of a prediction against a reference (pure numpy).

These are what ``prediction_errors`` stores, so that any MAE/RMSE over any grouping is an exact SQL
aggregate (DESIGN.md, Metrics): energy per atom, forces per Cartesian component (atom-weighted when
pooled), stress per Voigt component.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray


@dataclass(frozen=True, slots=True)
class ErrorSums:
    n_atoms: int
    energy_diff_per_atom: float | None
    force_abs_sum: float | None
    force_sq_sum: float | None
    force_n: int
    force_norm_sum: float | None
    force_norm_sq_sum: float | None
    stress_abs_sum: float | None
    stress_sq_sum: float | None
    stress_n: int


@dataclass(frozen=True, slots=True)
class ElementForceSums:
    element: str
    n_atoms: int
    force_abs_sum: float
    force_sq_sum: float
    force_n: int


def calc_error_sums(
    *,
    n_atoms: int,
    energy_pred: float | None,
    energy_ref: float | None,
    forces_pred: NDArray[np.float64] | None,
    forces_ref: NDArray[np.float64] | None,
    stress_pred: NDArray[np.float64] | None,
    stress_ref: NDArray[np.float64] | None,
) -> ErrorSums:
    """Error sums of one structure; a quantity missing on either side contributes nothing."""
    de = None
    if energy_pred is not None and energy_ref is not None:
        de = (energy_pred - energy_ref) / n_atoms
    fa = fs = fn_sum = fn_sq = None
    fn = 0
    if forces_pred is not None and forces_ref is not None:
        d = np.asarray(forces_pred, dtype=np.float64) - np.asarray(forces_ref, dtype=np.float64)
        fa, fs, fn = float(np.abs(d).sum()), float((d * d).sum()), d.size
        norms = np.sqrt((d * d).sum(axis=1))
        fn_sum, fn_sq = float(norms.sum()), float((norms * norms).sum())
    sa = ss = None
    sn = 0
    if stress_pred is not None and stress_ref is not None:
        ds = np.asarray(stress_pred, dtype=np.float64) - np.asarray(stress_ref, dtype=np.float64)
        sa, ss, sn = float(np.abs(ds).sum()), float((ds * ds).sum()), ds.size
    return ErrorSums(n_atoms, de, fa, fs, fn, fn_sum, fn_sq, sa, ss, sn)


def calc_element_force_sums(
    symbols: NDArray[np.str_], forces_pred: NDArray[np.float64], forces_ref: NDArray[np.float64]
) -> list[ElementForceSums]:
    """Force error sums split by the species of each atom."""
    d = np.asarray(forces_pred, dtype=np.float64) - np.asarray(forces_ref, dtype=np.float64)
    out = []
    for el in np.unique(symbols):
        sel = d[symbols == el]
        out.append(
            ElementForceSums(str(el), len(sel), float(np.abs(sel).sum()), float((sel**2).sum()), sel.size)
        )
    return out

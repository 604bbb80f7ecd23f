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


# -- many structures at once ------------------------------------------------------------------
#
# The loader computes the sums of a whole batch of (prediction, reference) pairs in a few numpy
# calls (ingest.writers.errorsums). The values are those of calc_error_sums and
# calc_element_force_sums bit for bit: each sum is taken over the same numbers in the same
# order, as numpy's pairwise summation of one contiguous run (segment_sums), so a structure's
# stored sums do not depend on how it was batched.


def segment_sums(rows: NDArray[np.float64], lengths: NDArray[np.int64]) -> NDArray[np.float64]:
    """The sum of each segment of ``rows`` (segments back to back, ``lengths[k]`` rows each),
    equal bit for bit to ``rows[lo:hi].sum()``.

    numpy sums a contiguous run pairwise (blocks of 8, then halves), so the result depends on
    the run's length; ``np.add.reduceat`` sums another way and differs in the last bits.
    Segments of one length are therefore summed together, as the rows of a 2-D array, which
    numpy reduces run by run exactly as it reduces a single run.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    rows = np.ascontiguousarray(rows, dtype=np.float64)
    # the width from the shape, not -1: numpy cannot infer it for no rows (a batch whose pairs
    # all lack forces on one side)
    flat = rows.reshape(len(rows), int(np.prod(rows.shape[1:])))
    width = flat.shape[1]
    starts = np.cumsum(lengths) - lengths
    out = np.zeros(len(lengths), dtype=np.float64)
    for n in np.unique(lengths).tolist():
        if n == 0:
            continue
        seg = np.flatnonzero(lengths == n)
        if len(seg) == len(lengths):  # one length (equal cells): the rows are the segments
            block = flat
        else:
            block = flat[(starts[seg, None] + np.arange(n)).ravel()]
        out[seg] = block.reshape(len(seg), n * width).sum(axis=1)
    return out


@dataclass(frozen=True, slots=True)
class BatchErrorSums:
    """:class:`ErrorSums` of P pairs as columns; NaN where the per-pair value is None."""

    n_atoms: NDArray[np.int64]
    energy_diff_per_atom: NDArray[np.float64]
    force_abs_sum: NDArray[np.float64]
    force_sq_sum: NDArray[np.float64]
    force_n: NDArray[np.int64]
    force_norm_sum: NDArray[np.float64]
    force_norm_sq_sum: NDArray[np.float64]
    stress_abs_sum: NDArray[np.float64]
    stress_sq_sum: NDArray[np.float64]
    stress_n: NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class BatchElementSums:
    """:class:`ElementForceSums` of many (pair, species) as columns: ``pair`` indexes the pairs."""

    pair: NDArray[np.int64]
    number: NDArray[np.int64]  # atomic number of the species
    n_atoms: NDArray[np.int64]
    force_abs_sum: NDArray[np.float64]
    force_sq_sum: NDArray[np.float64]
    force_n: NDArray[np.int64]


def calc_batch_error_sums(
    *,
    n_atoms: NDArray[np.int64],
    energy_pred: NDArray[np.float64],
    energy_ref: NDArray[np.float64],
    stress_pred: NDArray[np.float64],
    stress_ref: NDArray[np.float64],
    with_forces: NDArray[np.bool_],
    forces_pred: NDArray[np.float64],
    forces_ref: NDArray[np.float64],
    numbers: NDArray[np.integer],
) -> tuple[BatchErrorSums, BatchElementSums]:
    """:func:`calc_error_sums` and :func:`calc_element_force_sums` of P pairs at once.

    Per pair (P,): ``n_atoms``, energies (NaN = missing), stresses (P, 6; a row with a NaN =
    missing) and ``with_forces`` (both sides have forces). Per atom, for the pairs with forces
    only, one pair after the other in atom order: ``forces_pred``, ``forces_ref`` (M, 3) and
    ``numbers`` (M,), the species. Values missing on either side give NaN sums and a zero count,
    as None and 0 in :class:`ErrorSums`.
    """
    n_atoms = np.asarray(n_atoms, dtype=np.int64)
    with_forces = np.asarray(with_forces, dtype=np.bool_)
    n_pairs = len(n_atoms)
    de = (np.asarray(energy_pred, np.float64) - np.asarray(energy_ref, np.float64)) / n_atoms
    ds = np.asarray(stress_pred, np.float64).reshape(-1, 6) - np.asarray(stress_ref, np.float64).reshape(-1, 6)
    has_stress = ~np.isnan(ds).any(axis=1)
    ones = np.ones(n_pairs, dtype=np.int64)
    s_abs = np.where(has_stress, segment_sums(np.abs(ds), ones), np.nan)
    s_sq = np.where(has_stress, segment_sums(ds * ds, ones), np.nan)

    counts = n_atoms[with_forces]
    d = np.asarray(forces_pred, np.float64) - np.asarray(forces_ref, np.float64)
    sq = d * d
    norms = np.sqrt(sq.sum(axis=1))
    f_cols = [np.full(n_pairs, np.nan) for _ in range(4)]
    for col, values in zip(f_cols, (np.abs(d), sq, norms, norms * norms), strict=True):
        col[with_forces] = segment_sums(values, counts)
    sums = BatchErrorSums(
        n_atoms, de, f_cols[0], f_cols[1], np.where(with_forces, 3 * n_atoms, 0), f_cols[2],
        f_cols[3], s_abs, s_sq, np.where(has_stress, 6, 0))
    return sums, _element_sums(np.flatnonzero(with_forces), counts, numbers, d)


def _element_sums(pairs: NDArray[np.int64], counts: NDArray[np.int64], numbers: NDArray[np.integer],
                  d: NDArray[np.float64]) -> BatchElementSums:
    """Force sums per (pair, species): each pair's atoms of one species, in atom order, are a
    segment (a stable sort by pair, then species), summed as calc_element_force_sums sums them."""
    pair_of_atom = np.repeat(pairs, counts)
    key = pair_of_atom * 256 + np.asarray(numbers, dtype=np.int64)  # atomic numbers < 256
    order = np.argsort(key, kind="stable")
    keys, n = np.unique(key[order], return_counts=True)
    sel = d[order]
    return BatchElementSums(keys // 256, keys % 256, n, segment_sums(np.abs(sel), n),
                            segment_sums(sel * sel, n), 3 * n)

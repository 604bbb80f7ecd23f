"""Content identity of structures, and file checksums.

A structure's identity (DESIGN.md) is the sha256 of its species, its positions wrapped into the cell
along periodic directions and rounded to 1e-6 Å, its cell rounded likewise, and its pbc, in atom
order. The order-free hash is the same over atoms sorted by (species, rounded position), so a file
that lists the same atoms in another order is recognised and its per-atom arrays permuted back.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

ROUND = 1e-6  # Å
_SCALE = 1.0 / ROUND


def structure_hashes(
    numbers: NDArray[np.integer],
    positions: NDArray[np.float64],
    cell: NDArray[np.float64],
    pbc: NDArray[np.bool_],
) -> tuple[str, str, NDArray[np.int64]]:
    """Return (hash, order-free hash, canonical order) of one structure.

    ``canonical order`` is the permutation that sorts the atoms for the order-free hash: two
    files with the same atoms in different orders have the same sorted arrays, so
    ``a_order[argsort(b_order)]`` maps file b's atoms onto file a's. One structure is a batch of
    one (:func:`structure_hashes_batch`), so both give the same digests.
    """
    numbers = np.asarray(numbers, dtype=np.int32)
    hashes, free, orders = structure_hashes_batch(
        numbers, np.asarray(positions, dtype=np.float64).reshape(-1, 3),
        np.asarray(cell, dtype=np.float64).reshape(1, 3, 3),
        np.asarray(pbc, dtype=np.bool_).reshape(1, 3), np.array([len(numbers)]),
    )
    return hashes[0], free[0], orders[0]


def sha256_file(path: str | Path, *, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _inverse_3x3(cells: NDArray[np.float64]) -> NDArray[np.float64]:
    """Inverses of stacked 3x3 matrices by the adjugate, with elementwise operations only.

    Elementwise ufuncs round each result the same way whatever the array length, so a structure
    hashes identically alone or inside a batch (a BLAS or LAPACK call need not).
    """
    c = cells
    adj = np.empty_like(c)
    adj[:, 0, 0] = c[:, 1, 1] * c[:, 2, 2] - c[:, 1, 2] * c[:, 2, 1]
    adj[:, 0, 1] = c[:, 0, 2] * c[:, 2, 1] - c[:, 0, 1] * c[:, 2, 2]
    adj[:, 0, 2] = c[:, 0, 1] * c[:, 1, 2] - c[:, 0, 2] * c[:, 1, 1]
    adj[:, 1, 0] = c[:, 1, 2] * c[:, 2, 0] - c[:, 1, 0] * c[:, 2, 2]
    adj[:, 1, 1] = c[:, 0, 0] * c[:, 2, 2] - c[:, 0, 2] * c[:, 2, 0]
    adj[:, 1, 2] = c[:, 0, 2] * c[:, 1, 0] - c[:, 0, 0] * c[:, 1, 2]
    adj[:, 2, 0] = c[:, 1, 0] * c[:, 2, 1] - c[:, 1, 1] * c[:, 2, 0]
    adj[:, 2, 1] = c[:, 0, 1] * c[:, 2, 0] - c[:, 0, 0] * c[:, 2, 1]
    adj[:, 2, 2] = c[:, 0, 0] * c[:, 1, 1] - c[:, 0, 1] * c[:, 1, 0]
    det = c[:, 0, 0] * adj[:, 0, 0] + c[:, 0, 1] * adj[:, 1, 0] + c[:, 0, 2] * adj[:, 2, 0]
    with np.errstate(divide="ignore", invalid="ignore"):
        return adj / det[:, None, None]


def _rows_times(v: NDArray[np.float64], m: NDArray[np.float64]) -> NDArray[np.float64]:
    """Row vectors times per-row 3x3 matrices (v[i] @ m[i]), elementwise and in a fixed order:
    (v0 m0 + v1 m1) + v2 m2, accumulated in place (the same roundings, fewer temporaries)."""
    out = v[:, 0:1] * m[:, 0, :]
    tmp = v[:, 1:2] * m[:, 1, :]
    out += tmp
    np.multiply(v[:, 2:3], m[:, 2, :], out=tmp)
    out += tmp
    return out


def _columns_times(vt: NDArray[np.float64], m: NDArray[np.float64],
                   counts: NDArray[np.int64]) -> NDArray[np.float64]:
    """:func:`_rows_times` on coordinate-major arrays: ``vt`` (3, N), each structure's matrix
    ``m`` (F, 3, 3) applied to its ``counts`` atoms; out[j] = (v0 m0j + v1 m1j) + v2 m2j."""
    out = np.empty_like(vt)
    tmp = np.empty(vt.shape[1])
    for j in range(3):
        o = out[j]
        np.multiply(vt[0], np.repeat(m[:, 0, j], counts), out=o)
        np.multiply(vt[1], np.repeat(m[:, 1, j], counts), out=tmp)
        o += tmp
        np.multiply(vt[2], np.repeat(m[:, 2, j], counts), out=tmp)
        o += tmp
    return out


def structure_hashes_batch(
    numbers: NDArray[np.integer],
    positions: NDArray[np.float64],
    cells: NDArray[np.float64],
    pbcs: NDArray[np.bool_],
    counts: NDArray[np.integer],
    *,
    with_orders: bool = True,
) -> tuple[list[str], list[str], list[NDArray[np.int64]]]:
    """:func:`structure_hashes` of many structures at once, from concatenated per-atom arrays.

    ``numbers`` (N,), ``positions`` (N, 3) are the structures' atoms one after the other,
    ``counts`` (F,) their atom counts, ``cells`` (F, 3, 3) and ``pbcs`` (F, 3) per structure.
    Vectorised over the batch; the digests are those of :func:`structure_hashes` exactly.
    Without ``with_orders`` the third list is empty (the loader needs only the digests).
    """
    numbers = np.ascontiguousarray(numbers, dtype=np.int32)
    pos = np.asarray(positions, dtype=np.float64).reshape(-1, 3)
    cells = np.asarray(cells, dtype=np.float64).reshape(-1, 3, 3)
    pbcs = np.asarray(pbcs, dtype=np.bool_).reshape(-1, 3)
    counts = np.asarray(counts, dtype=np.int64)
    frame = np.repeat(np.arange(len(counts)), counts)
    periodic = pbcs.any(axis=1)
    if pbcs.all() and len(pos):
        # the common case, coordinate-major (contiguous columns, ~1.6x faster than the row
        # form below): the same operations in the same order, so the same roundings
        frac = _columns_times(np.ascontiguousarray(pos.T), _inverse_3x3(cells), counts)
        np.mod(frac, 1.0, out=frac)
        frac[frac >= 1.0] = 0.0  # mod can return exactly 1.0 for tiny negatives: the site 0
        cart_t = _columns_times(frac, cells, counts)
        cart_t *= _SCALE
        pos_int = np.ascontiguousarray(np.rint(cart_t).astype(np.int64).T)
    else:
        cart = pos
        if periodic.any():
            # per-atom copies of each structure's matrices (np.repeat: cheaper than a gather)
            frac = _rows_times(pos, np.repeat(_inverse_3x3(cells), counts, axis=0))
            p = pbcs[frame]
            wrapped = np.where(p, np.mod(frac, 1.0), frac)
            wrapped = np.where(p & (wrapped >= 1.0), 0.0, wrapped)
            cart = np.where(periodic[frame][:, None], _rows_times(wrapped, cells[frame]), pos)
        pos_int = np.rint(cart * _SCALE).astype(np.int64)
    order_all = _canonical_order(frame, numbers, pos_int)
    # The digests hash byte ranges of these buffers: no per-structure array operations.
    bounds = np.concatenate([[0], np.cumsum(counts)]).tolist()
    z_bytes = memoryview(numbers.tobytes())
    pos_bytes = memoryview(pos_int.tobytes())
    z_sorted = memoryview(numbers[order_all].tobytes())
    pos_sorted = memoryview(pos_int[order_all].tobytes())
    cell_bytes = memoryview(np.rint(cells * _SCALE).astype(np.int64).tobytes())
    pbc_bytes = memoryview(np.ascontiguousarray(pbcs).tobytes())
    n_bytes = memoryview(counts.tobytes())
    hashes, free, orders = [], [], []
    sha256 = hashlib.sha256
    for f in range(len(counts)):
        lo, hi = bounds[f], bounds[f + 1]
        head = n_bytes[8 * f : 8 * f + 8]
        cell_pbc = (cell_bytes[72 * f : 72 * f + 72], pbc_bytes[3 * f : 3 * f + 3])
        for z, pi, out in ((z_bytes, pos_bytes, hashes), (z_sorted, pos_sorted, free)):
            h = sha256(head)
            h.update(z[4 * lo : 4 * hi])
            h.update(pi[24 * lo : 24 * hi])
            h.update(cell_pbc[0])
            h.update(cell_pbc[1])
            out.append(h.hexdigest())
        if with_orders:
            orders.append(order_all[lo:hi] - lo)
    return hashes, free, orders


def _canonical_order(
    frame: NDArray[np.int64], numbers: NDArray[np.int32], pos_int: NDArray[np.int64], *,
    pack: bool = True,
) -> NDArray[np.int64]:
    """Atoms sorted by (structure, Z, x, y, z): np.lexsort of those five keys.

    Each lexsort key is a sorting pass, so (structure, Z, x) and (y, z) are packed into one int64
    each when their ranges fit (always, for real structures): the same order from two passes
    instead of five.
    """
    x = pos_int[:, 0]
    if pack and len(x):
        x_min = int(x.min())
        x_bits = max(int(x.max()) - x_min, 1).bit_length()
        fz_bits = max(int(frame[-1]) * 128 + 127, 1).bit_length()
        if x_bits + fz_bits <= 62:
            packed = ((frame * 128 + numbers) << x_bits) | (x - x_min)
            y, z = pos_int[:, 1], pos_int[:, 2]
            y_min, z_min = int(y.min()), int(z.min())
            y_bits = max(int(y.max()) - y_min, 1).bit_length()
            z_bits = max(int(z.max()) - z_min, 1).bit_length()
            if y_bits + z_bits <= 62:
                return _two_key_order(packed, ((y - y_min) << z_bits) | (z - z_min))
            return np.lexsort((z, y, packed))
    return np.lexsort((pos_int[:, 2], pos_int[:, 1], x, numbers, frame))


def _two_key_order(primary: NDArray[np.int64], secondary: NDArray[np.int64]) -> NDArray[np.int64]:
    """``np.lexsort((secondary, primary))``, from one unstable sort (several times faster) plus a
    stable sort of only the atoms whose primary keys tie (atoms of a structure sharing species
    and x: few, except in ideal lattices)."""
    order = np.argsort(primary)
    ranked = primary[order]
    tie = np.zeros(len(order), dtype=np.bool_)
    eq = ranked[1:] == ranked[:-1]
    tie[1:] |= eq
    tie[:-1] |= eq
    if not tie.any():
        return order
    if tie.mean() > 0.5:
        return np.lexsort((secondary, primary))
    where = np.flatnonzero(tie)
    sub = np.sort(order[where])  # original order first: lexsort breaks full ties by it
    order[where] = sub[np.lexsort((secondary[sub], primary[sub]))]
    return order


def _digest_int(numbers: NDArray, pos_int: NDArray, cell_int: NDArray, pbc: NDArray) -> str:
    h = hashlib.sha256()
    h.update(np.asarray(len(numbers), dtype=np.int64).tobytes())
    h.update(np.ascontiguousarray(numbers, dtype=np.int32).tobytes())
    h.update(np.ascontiguousarray(pos_int, dtype=np.int64).tobytes())
    h.update(np.ascontiguousarray(cell_int, dtype=np.int64).tobytes())
    h.update(np.asarray(pbc, dtype=np.bool_).tobytes())
    return h.hexdigest()

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


def _wrapped_rounded(
    positions: NDArray[np.float64], cell: NDArray[np.float64], pbc: NDArray[np.bool_]
) -> NDArray[np.int64]:
    pos = np.asarray(positions, dtype=np.float64)
    if pbc.any():
        frac = np.linalg.solve(cell.T, pos.T).T
        wrapped = frac.copy()
        wrapped[:, pbc] = np.mod(frac[:, pbc], 1.0)
        # mod can return exactly 1.0 for tiny negatives; that point is the same lattice site as 0.
        wrapped[:, pbc] = np.where(wrapped[:, pbc] >= 1.0, 0.0, wrapped[:, pbc])
        pos = wrapped @ cell
    return np.rint(pos * _SCALE).astype(np.int64)


def _digest(numbers: NDArray, pos_int: NDArray, cell: NDArray, pbc: NDArray) -> str:
    h = hashlib.sha256()
    h.update(np.asarray(len(numbers), dtype=np.int64).tobytes())
    h.update(np.ascontiguousarray(numbers, dtype=np.int32).tobytes())
    h.update(np.ascontiguousarray(pos_int, dtype=np.int64).tobytes())
    h.update(np.rint(np.asarray(cell, dtype=np.float64) * _SCALE).astype(np.int64).tobytes())
    h.update(np.asarray(pbc, dtype=np.bool_).tobytes())
    return h.hexdigest()


def structure_hashes(
    numbers: NDArray[np.integer],
    positions: NDArray[np.float64],
    cell: NDArray[np.float64],
    pbc: NDArray[np.bool_],
) -> tuple[str, str, NDArray[np.int64]]:
    """Return (hash, order-free hash, canonical order) of one structure.

    ``canonical order`` is the permutation that sorts the atoms for the order-free hash: two
    files with the same atoms in different orders have the same sorted arrays, so
    ``a_order[argsort(b_order)]`` maps file b's atoms onto file a's.
    """
    numbers = np.asarray(numbers, dtype=np.int32)
    cell = np.asarray(cell, dtype=np.float64).reshape(3, 3)
    pbc = np.asarray(pbc, dtype=np.bool_).reshape(3)
    pos_int = _wrapped_rounded(positions, cell, pbc)
    ordered = _digest(numbers, pos_int, cell, pbc)
    order = np.lexsort((pos_int[:, 2], pos_int[:, 1], pos_int[:, 0], numbers)).astype(np.int64)
    free = _digest(numbers[order], pos_int[order], cell, pbc)
    return ordered, free, order


def sha256_file(path: str | Path, *, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()

"""What a ``structures`` row says of a structure, computed from batch columns.

Formula, sorted elements and their counts, cell as JSON text, pbc as text, volume: vectorised over
a batch (per-atom arrays concatenated), so a reader process can compute them ahead of the loader
(:meth:`warehouse.records.FrameBatch.description`). Each helper gives exactly what the plain
one-structure computation gives (ASE's formula, ``json.dumps``); tests compare them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from ase.data import chemical_symbols
from ase.formula import non_metals

from warehouse.geometry import det3_batch

SYMBOLS = np.array(chemical_symbols)
# Alphabetical rank of every element symbol: sorting by it sorts symbols as strings.
_ALPHA_RANK = np.argsort(np.argsort(SYMBOLS))


class JsonText(str):
    """A JSON column's value already encoded (e.g. by :func:`cells_json`): written as it is."""


_CELL_JSON = "[[{!r}, {!r}, {!r}], [{!r}, {!r}, {!r}], [{!r}, {!r}, {!r}]]"


def cells_json(cells: np.ndarray) -> list[JsonText]:
    """``json.dumps(cell.tolist())`` of stacked finite 3x3 cells, several times faster (the same
    text: JSON writes a float as its repr). Each distinct cell is formatted once: datasets repeat
    cells (MD snapshots, relaxation steps, supercells of one lattice)."""
    flat = np.ascontiguousarray(cells, dtype=np.float64).reshape(-1, 9)
    keys = [flat[i].tobytes() for i in range(len(flat))] if len(flat) else []
    text: dict[bytes, JsonText] = {}
    out = []
    for i, key in enumerate(keys):
        t = text.get(key)
        if t is None:
            t = text[key] = JsonText(_CELL_JSON.format(*flat[i].tolist()))
        out.append(t)
    return out


def composition(numbers: np.ndarray) -> tuple[list[str], list[int]]:
    """Element symbols in alphabetical order and their counts."""
    per_z = np.bincount(numbers, minlength=len(SYMBOLS))
    z = np.flatnonzero(per_z)
    z = z[np.argsort(_ALPHA_RANK[z])]
    return SYMBOLS[z].tolist(), per_z[z].tolist()


_SYMBOLS_BY_RANK = SYMBOLS[np.argsort(SYMBOLS)]


def compositions(numbers: np.ndarray, counts: np.ndarray) -> tuple[list[list[str]], list[list[int]], list[str]]:
    """:func:`composition` and :func:`reduced_formula` of many structures (atoms concatenated,
    ``counts`` atoms each): per structure its symbols, their counts and its formula.

    The element counts of the whole batch come from one bincount; each distinct composition is
    formatted once (a dataset has far fewer compositions than structures).
    """
    k = len(SYMBOLS)
    frame = np.repeat(np.arange(len(counts)), counts)
    table = np.bincount(frame * k + _ALPHA_RANK[numbers], minlength=len(counts) * k)
    unique, inverse = _unique_rows(table.reshape(len(counts), k))
    syms, cnts, formulas = [], [], []
    for row in unique:
        nz = np.flatnonzero(row)
        syms.append(_SYMBOLS_BY_RANK[nz].tolist())
        cnts.append(row[nz].tolist())
        formulas.append(reduced_formula(syms[-1], cnts[-1]))
    inverse = inverse.reshape(-1).tolist()
    return [syms[i] for i in inverse], [cnts[i] for i in inverse], [formulas[i] for i in inverse]


def _unique_rows(table: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(table, axis=0, return_inverse=True)`` of a non-negative count table.

    Only the columns with a non-zero entry matter, and their counts are packed into one int64
    key per row (a mixed-radix number) when they fit, so one 1-D sort replaces the row-wise
    sort (~8x faster on a batch of 2,000 structures). Keys order rows as the row-wise sort does,
    so the result is the same.
    """
    cols = np.flatnonzero(table.any(axis=0))
    sub = table[:, cols]
    radix = sub.max(axis=0) + 1 if len(sub) else np.ones(len(cols), dtype=np.int64)
    if len(cols) and float(np.prod(radix.astype(np.float64))) < 2.0**62:
        # weights: the first column most significant, like the lexicographic row order
        weights = np.concatenate([np.cumprod(radix[::-1])[::-1][1:], [1]]).astype(np.int64)
        keys, first, inverse = np.unique(sub @ weights, return_index=True, return_inverse=True)
        return table[first], inverse.reshape(-1)
    unique, inverse = np.unique(table, axis=0, return_inverse=True)
    return unique, inverse.reshape(-1)


_NON_METALS = frozenset(non_metals)


def reduced_formula(symbols: list[str], counts: list[int]) -> str:
    """ASE's ``Formula(...).reduce()[0].format("metal")``: metals then non-metals, each
    alphabetical, counts divided by their greatest common divisor, a count of 1 omitted
    (e.g. ``AlCu3``, ``Pr13As3Xe8``). A test compares the two on random compositions."""
    g = math.gcd(*counts)
    pairs = sorted(zip(symbols, counts, strict=True), key=lambda sc: (sc[0] in _NON_METALS, sc[0]))
    return "".join(s if c // g == 1 else f"{s}{c // g}" for s, c in pairs)


# pbc as stored ("TTF"), indexed by 4 * pbc_x + 2 * pbc_y + pbc_z
_PBC_TEXT = ["".join("T" if (k >> bit) & 1 else "F" for bit in (2, 1, 0)) for k in range(8)]


@dataclass(frozen=True, slots=True)
class Description:
    """Per structure of a batch, the ``structures`` row's descriptive columns."""

    symbols: list[list[str]]  # sorted element symbols
    counts: list[list[int]]  # atoms of each
    elements_text: list[str]  # the symbols comma-joined, as the elements column stores them
    n_elements: list[int]
    formulas: list[str]  # reduced formula
    cell_json: list[JsonText]
    pbc_text: list[str]
    volumes: list[float | None]  # |det(cell)| where fully periodic, else None


def describe_structures(numbers: np.ndarray, counts: np.ndarray, cells: np.ndarray,
                        pbcs: np.ndarray) -> Description:
    """:class:`Description` of structures given as batch columns (see FrameBatch)."""
    symbols, n_each, formulas = compositions(numbers, counts)
    full = pbcs.all(axis=1).tolist()
    volumes = np.abs(det3_batch(cells)).tolist()
    return Description(
        symbols=symbols, counts=n_each, elements_text=[",".join(e) for e in symbols],
        n_elements=[len(e) for e in symbols], formulas=formulas, cell_json=cells_json(cells),
        pbc_text=[_PBC_TEXT[k] for k in (pbcs.astype(np.int64) @ np.array([4, 2, 1])).tolist()],
        volumes=[v if f else None for v, f in zip(volumes, full, strict=True)],
    )

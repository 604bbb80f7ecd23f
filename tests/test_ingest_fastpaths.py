"""The fast paths of the loader give exactly what the plain ones give."""

from __future__ import annotations

import numpy as np
import pytest
from ase.formula import Formula

from ingest.bulk import SYMBOLS, composition, reduced_formula
from warehouse.hashing import structure_hashes, structure_hashes_batch


def test_reduced_formula_is_ases_metal_format() -> None:
    rng = np.random.default_rng(0)
    for _ in range(2000):
        k = rng.integers(1, 6)
        z = rng.choice(np.arange(1, 119), k, replace=False)
        numbers = np.repeat(z, rng.integers(1, 30, k) * rng.integers(1, 4))
        rng.shuffle(numbers)
        symbols, counts = composition(numbers)
        assert symbols == sorted(set(SYMBOLS[numbers].tolist()))
        assert reduced_formula(symbols, counts) == \
            Formula.from_list(list(SYMBOLS[numbers])).reduce()[0].format("metal")


@pytest.mark.parametrize("pbc", [(True, True, True), (True, True, False), (False, False, False)])
def test_batch_hashes_equal_one_by_one(pbc) -> None:
    rng = np.random.default_rng(1)
    frames = []
    for _ in range(40):
        n = int(rng.integers(1, 60))
        cell = np.diag(rng.uniform(3, 12, 3)) + 0.3 * rng.standard_normal((3, 3))
        pos = rng.uniform(-5, 15, (n, 3))
        pos[: n // 3] = np.round(pos[: n // 3], 6)  # values on rounding boundaries too
        frames.append((rng.integers(1, 90, n), pos, cell, np.array(pbc)))
    hashes, free, orders = structure_hashes_batch(
        np.concatenate([f[0] for f in frames]), np.concatenate([f[1] for f in frames]),
        np.stack([f[2] for f in frames]), np.stack([f[3] for f in frames]),
        np.array([len(f[0]) for f in frames]))
    for k, f in enumerate(frames):
        h, fr, order = structure_hashes(*f)
        assert (h, fr) == (hashes[k], free[k]) and np.array_equal(order, orders[k])


def test_progress_counts_and_is_quiet_off_a_terminal(capsys) -> None:
    from cli.ingest import Progress

    quiet = Progress(enabled=False)
    quiet(3, 300)
    quiet.done()
    assert capsys.readouterr().err == "" and (quiet.structures, quiet.atoms) == (3, 300)
    loud = Progress(enabled=True)
    loud(2, 100)
    loud.done()
    err = capsys.readouterr().err
    assert "2 structures, 100 atoms" in err and "atoms/s" in err and err.endswith("\n")


def test_packed_canonical_order_equals_the_five_key_lexsort() -> None:
    from warehouse.hashing import _canonical_order

    rng = np.random.default_rng(3)
    counts = rng.integers(1, 50, 300)
    frame = np.repeat(np.arange(len(counts)), counts)
    numbers = rng.integers(1, 119, len(frame)).astype(np.int32)
    pos_int = rng.integers(-10**9, 10**9, (len(frame), 3))
    pos_int[::3, 0] = pos_int[1::3, 0][: len(pos_int[::3, 0])]  # ties in x ...
    numbers[::5] = 29  # ... and in species
    assert np.array_equal(_canonical_order(frame, numbers, pos_int),
                          _canonical_order(frame, numbers, pos_int, pack=False))

"""Structure identity: the content hash of DESIGN.md, and the order-free hash."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk

from warehouse.hashing import structure_hashes


def _h(atoms):
    return structure_hashes(atoms.numbers, atoms.positions, atoms.cell.array, atoms.pbc)


@pytest.fixture
def alloy():
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 2, 2))
    atoms.numbers[[1, 5, 9]] = 28
    rng = np.random.default_rng(7)
    atoms.positions += rng.normal(scale=0.05, size=atoms.positions.shape)
    return atoms


def test_same_content_same_hash(alloy) -> None:
    assert _h(alloy)[0] == _h(alloy.copy())[0]


def test_wrapping_into_the_cell_does_not_change_identity(alloy) -> None:
    shifted = alloy.copy()
    shifted.positions[3] += alloy.cell[0]  # one lattice vector away: the same crystal
    assert _h(shifted)[0] == _h(alloy)[0]


def test_sub_tolerance_noise_is_ignored_and_real_moves_are_not(alloy) -> None:
    noisy = alloy.copy()
    noisy.positions += 1e-9
    assert _h(noisy)[0] == _h(alloy)[0]
    moved = alloy.copy()
    moved.positions[0, 0] += 1e-4
    assert _h(moved)[0] != _h(alloy)[0]


@pytest.mark.parametrize("change", ["species", "cell", "pbc"], ids=str)
def test_species_cell_and_pbc_are_part_of_identity(alloy, change: str) -> None:
    other = alloy.copy()
    if change == "species":
        other.numbers[0] = 29 if other.numbers[0] == 28 else 28
    elif change == "cell":
        other.set_cell(alloy.cell * 1.001, scale_atoms=False)
    else:
        other.pbc = (True, True, False)
    assert _h(other)[0] != _h(alloy)[0]


def test_order_free_hash_matches_a_permutation_and_maps_atoms_back(alloy) -> None:
    perm = np.random.default_rng(3).permutation(len(alloy))
    shuffled = alloy[perm]
    h_a, free_a, order_a = _h(alloy)
    h_b, free_b, order_b = _h(shuffled)
    assert h_a != h_b and free_a == free_b
    # the mapping the loader uses: stored atom order_a[k] is the file's atom order_b[k]
    mapping = np.empty_like(order_a)
    mapping[order_a] = order_b
    np.testing.assert_allclose(shuffled.positions[mapping], alloy.positions)


def test_molecule_without_cell_hashes() -> None:
    from ase.build import molecule

    h, free, _ = _h(molecule("H2O"))
    assert len(h) == 64 and len(free) == 64

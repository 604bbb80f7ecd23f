"""Property-based checks (hypothesis) of the extended XYZ header checks and readers: arbitrary
text is refused with a HeaderError/IngestError or read, never anything else; what ASE writes,
both readers read exactly as ASE reads it back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from ingest.extxyz import parse_extxyz_batches  # noqa: E402
from ingest.xyzheader import MAX_ATOMS, HeaderError, atom_count, check_comment  # noqa: E402
from warehouse.errors import IngestError  # noqa: E402

SETTINGS = settings(max_examples=150, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])
HEADER_ALPHABET = st.sampled_from(list('Lattice=pbcPropertis:SRIL123 "{}[],.-+eTFnaxyz\t½'))


@SETTINGS
@given(st.text(HEADER_ALPHABET, max_size=80) | st.text(max_size=80))
def test_a_comment_line_is_checked_or_refused_never_crashes(text: str) -> None:
    try:
        header = check_comment(text)
    except HeaderError as exc:
        assert "\n" not in str(exc)
        return
    names = [c[0] for c in header.columns]
    assert ("species" in names or "Z" in names) and ("pos" in names or "positions" in names)


@SETTINGS
@given(st.text(max_size=30), st.integers(min_value=0, max_value=10**6) | st.none())
def test_an_atom_count_is_in_range_or_refused(text: str, left: int | None) -> None:
    try:
        n = atom_count(text, left)
    except HeaderError:
        return
    assert 0 < n <= MAX_ATOMS
    assert left is None or n * 8 <= left + 8


GOOD = ('2\nLattice="4 0 0 0 4 0 0 0 4" Properties=species:S:1:pos:R:3:forces:R:3 energy=-1'
        ' pbc="T T T"\nCu 0 0 0 0.1 0.2 0.3\nNi 2 2 0 -0.1 -0.2 -0.3\n')


@SETTINGS
@given(st.integers(min_value=0, max_value=len(GOOD)), st.binary(max_size=40),
       st.integers(min_value=0, max_value=len(GOOD)), st.sampled_from(["auto", "ase"]))
def test_spliced_bytes_are_read_or_refused(tmp_path_factory, at: int, junk: bytes, cut: int,
                                           reader: str) -> None:
    """Any bytes spliced into a good frame, and any truncation after: IngestError or frames."""
    data = GOOD.encode()
    data = (data[:at] + junk + data[at:])[: max(cut, 1) + len(junk)]
    path = tmp_path_factory.mktemp("h") / "f.xyz"
    path.write_bytes(data)
    try:
        for batch in parse_extxyz_batches(path, reader=reader):
            assert np.isfinite(batch.positions).all() and np.abs(batch.positions).max() <= 1e6
    except IngestError as exc:
        assert "\n" not in str(exc)


finite = st.floats(min_value=-50, max_value=50, allow_nan=False, allow_infinity=False)


@settings(max_examples=40, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(finite, min_size=9, max_size=9), st.lists(finite, min_size=6, max_size=6),
       st.lists(st.booleans(), min_size=3, max_size=3), finite)
def test_what_ase_writes_is_read_back_exactly(tmp_path_factory, pos: list[float],
                                              voigt: list[float], pbc: list[bool],
                                              energy: float) -> None:
    from ase import Atoms
    from ase.calculators.singlepoint import SinglePointCalculator
    from ase.io import read, write

    from warehouse.units import EV_PER_A3_TO_GPA

    atoms = Atoms("CuNiAl", positions=np.reshape(pos, (3, 3)),
                  cell=np.diag([60.0, 61.0, 62.0]) + 0.5, pbc=pbc)
    stress = np.array(voigt) * 1e-3
    atoms.calc = SinglePointCalculator(atoms, energy=energy, forces=np.reshape(pos, (3, 3)) / 10,
                                       stress=stress)
    path: Path = tmp_path_factory.mktemp("w") / "f.xyz"
    write(path, atoms, format="extxyz")
    ase_read = read(path, format="extxyz")  # what ASE reads back (it writes 8 decimals)
    results = ase_read.calc.results
    for reader in ("auto", "ase"):
        (frame,) = [f for b in parse_extxyz_batches(path, reader=reader) for f in b.frames()]
        np.testing.assert_array_equal(frame.positions, ase_read.positions)
        np.testing.assert_array_equal(frame.cell, ase_read.cell.array)
        np.testing.assert_array_equal(frame.pbc, ase_read.pbc)
        np.testing.assert_array_equal(frame.labels.forces, results["forces"])
        assert frame.labels.energy == results["energy"]
        np.testing.assert_allclose(frame.labels.stress, results["stress"] * EV_PER_A3_TO_GPA,
                                   rtol=1e-12, atol=1e-15)

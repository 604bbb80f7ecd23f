"""The fast paths of the loader give exactly what the plain ones give."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from ase.formula import Formula

from warehouse.describe import SYMBOLS, composition, reduced_formula
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


def _random_frames(seed: int, n_frames: int, max_atoms: int, pbc, place) -> list[tuple]:
    """(numbers, positions, cell, pbc) frames with skewed cells; ``place(rng, n, cell)`` gives
    the positions."""
    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(n_frames):
        n = int(rng.integers(1, max_atoms))
        cell = np.diag(rng.uniform(2, 15, 3)) + 0.4 * rng.standard_normal((3, 3))
        frames.append((rng.integers(1, 90, n), place(rng, n, cell), cell, np.array(pbc)))
    return frames


def _hash_batch(frames: list[tuple]) -> tuple:
    """structure_hashes_batch of (numbers, positions, cell, pbc) frames."""
    return structure_hashes_batch(
        np.concatenate([f[0] for f in frames]), np.concatenate([f[1] for f in frames]),
        np.stack([f[2] for f in frames]), np.stack([f[3] for f in frames]),
        np.array([len(f[0]) for f in frames]))


@pytest.mark.parametrize("pbc", [(True, True, True), (True, True, False), (False, False, False)])
def test_batch_hashes_equal_one_by_one(pbc) -> None:
    def place(rng, n, _cell):
        pos = rng.uniform(-5, 15, (n, 3))
        pos[: n // 3] = np.round(pos[: n // 3], 6)  # values on rounding boundaries too
        return pos

    frames = _random_frames(1, 40, 60, pbc, place)
    hashes, free, orders = _hash_batch(frames)
    for k, f in enumerate(frames):
        h, fr, order = structure_hashes(*f)
        assert (h, fr) == (hashes[k], free[k]) and np.array_equal(order, orders[k])


def test_the_fully_periodic_fast_path_rounds_as_the_general_one() -> None:
    """All-periodic batches take a coordinate-major path; a batch with one non-periodic
    structure takes the general one: the periodic structures' digests must not differ."""
    def place(rng, n, cell):
        frac = rng.uniform(-2, 3, (n, 3))
        frac[: n // 4] = np.round(frac[: n // 4])  # on the cell's faces ...
        frac[n // 4: n // 3] = -1e-17  # ... and just below them (mod gives exactly 1.0)
        return frac @ cell

    frames = _random_frames(5, 60, 80, (True, True, True), place)
    molecule = (np.array([8, 1, 1]), np.eye(3), np.zeros((3, 3)), np.zeros(3, bool))
    fast, general = _hash_batch(frames), _hash_batch([*frames, molecule])
    assert fast[0] == general[0][:-1] and fast[1] == general[1][:-1]
    assert all(np.array_equal(a, b) for a, b in zip(fast[2], general[2], strict=False))


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


def test_structure_identity_is_frozen() -> None:
    """Stored hashes are structures' identities: no speed-up may change a digest."""
    from ase.build import bulk

    a = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((2, 2, 2))
    a.symbols[[1, 6, 11]] = "Ni"
    a.rattle(0.05, seed=4)
    h, free, _ = structure_hashes(a.numbers, a.positions, a.cell.array, a.pbc)
    assert h == "63b9d28b1f0bbac08b9119c627ac66c91c53322779a0a81d371d7904efc15adb"
    assert free == "4c0a586ce470a8990ef9284c0be17aee157b9efdeac44c9fb6f99cbdc9ea80fe"


@pytest.mark.parametrize("spread", [3, 40, 10**6])  # many ties (lexsort), some, none
def test_two_key_order_equals_lexsort(spread: int) -> None:
    from warehouse.hashing import _two_key_order

    rng = np.random.default_rng(spread)
    for _ in range(50):
        n = int(rng.integers(1, 2000))
        primary = rng.integers(0, spread, n)
        secondary = rng.integers(0, 4, n)
        assert np.array_equal(_two_key_order(primary, secondary), np.lexsort((secondary, primary)))


def test_batch_compositions_and_volumes_equal_the_one_by_one_helpers() -> None:
    from warehouse.describe import compositions
    from warehouse.geometry import det3, det3_batch

    rng = np.random.default_rng(5)
    counts = rng.integers(1, 40, 400)
    numbers = rng.choice([1, 6, 8, 13, 26, 28, 29, 79], int(counts.sum()))
    symbols, per_element, formulas = compositions(numbers, counts)
    bounds = np.concatenate([[0], np.cumsum(counts)])
    for k in range(len(counts)):
        s, c = composition(numbers[bounds[k]:bounds[k + 1]])
        assert (symbols[k], per_element[k], formulas[k]) == (s, c, reduced_formula(s, c))
    cells = rng.standard_normal((100, 3, 3))
    assert det3_batch(cells).tolist() == [det3(c) for c in cells]


def test_species_table_reads_symbols_as_the_dict_does() -> None:
    from ase.data import atomic_numbers

    from ingest.atoms import _numbers

    symbols = np.array(list(atomic_numbers))
    assert _numbers({"species": symbols}, 0).tolist() == [atomic_numbers[s] for s in symbols]
    assert _numbers({"species": np.array(["CU", "ni", "aL", "H"])}, 0).tolist() == [29, 28, 13, 1]
    with pytest.raises(Exception, match="unknown chemical symbol 'Qq'"):
        _numbers({"species": np.array(["Cu", "Qq"])}, 0)


def test_cells_json_is_json_dumps() -> None:
    import json

    from warehouse.describe import cells_json

    cells = np.random.default_rng(6).standard_normal((50, 3, 3)) * 10.0 ** np.arange(-4, 5, 1)[:, None, None][np.arange(50) % 9]
    cells[0] = 0.0
    cells[1] = np.eye(3) * 1e-300
    assert cells_json(cells) == [json.dumps(c.tolist()) for c in cells]


def test_prefetch_keeps_order_raises_where_the_source_failed_and_closes_it() -> None:
    from ingest.prefetch import prefetch

    assert list(prefetch(iter(range(100)), depth=2)) == list(range(100))

    def failing():
        yield 1
        yield 2
        raise ValueError("frame 2 is bad")

    got = []
    with pytest.raises(ValueError, match="frame 2 is bad"):
        for item in prefetch(failing()):
            got.append(item)
    assert got == [1, 2]

    closed = []

    def endless():
        try:
            k = 0
            while True:
                yield k
                k += 1
        finally:
            closed.append(True)

    it = prefetch(endless())
    assert [next(it) for _ in range(3)] == [0, 1, 2]
    it.close()  # the consumer stops early (an error or Ctrl-C in the loader)
    assert closed == [True]


def _emt_frames(n: int, repeats, *, forces=lambda k: True, stress=lambda k: True,
                nickel: float = 0.0) -> list:
    """``n`` rattled fcc Cu supercells (``repeats(k)``; a fraction ``nickel`` of the atoms made
    Ni) labelled by EMT with its energy, and forces or stress where ``forces(k)``/``stress(k)``."""
    from ase.build import bulk
    from ase.calculators.emt import EMT
    from ase.calculators.singlepoint import SinglePointCalculator

    rng = np.random.default_rng(7)
    frames = []
    for k in range(n):
        a = bulk("Cu", "fcc", a=3.6, cubic=True).repeat(repeats(k))
        if nickel:
            a.symbols[rng.random(len(a)) < nickel] = "Ni"
        a.rattle(0.05, seed=k)
        a.calc = EMT()
        res = {"energy": a.get_potential_energy()}
        if forces(k):
            res["forces"] = a.get_forces()
        if stress(k):
            res["stress"] = a.get_stress()
        a.calc = SinglePointCalculator(a, **res)
        frames.append(a)
    return frames


def test_columnar_reader_equals_the_frame_by_frame_reader(tmp_path) -> None:
    """Batches straight from the C parser hold what ASE's reader gives, frame by frame."""
    from ase.io import write

    from ingest.extxyz import parse_extxyz, parse_extxyz_batches
    from warehouse.records import FrameBatch

    frames = _emt_frames(30, lambda k: (2, 2, 1 + k % 3), stress=lambda k: k % 2,
                         nickel=0.4)
    for k, a in enumerate(frames):
        a.info["config_type"] = f"t{k % 4}"
        if k % 5 == 0:
            a.pbc = (True, True, False)
    path = tmp_path / "set.xyz"
    write(path, frames, format="extxyz")
    batches = list(parse_extxyz_batches(path, reader="c", batch_atoms=100))
    assert len(batches) > 3
    ase_batch = FrameBatch.from_frames(list(parse_extxyz(path, reader="ase")))
    got = [f for b in batches for f in b.frames()]
    want = ase_batch.frames()
    assert len(got) == len(want) == 30
    for g, w in zip(got, want, strict=True):
        assert np.array_equal(g.numbers, w.numbers) and np.array_equal(g.positions, w.positions)
        assert np.array_equal(g.cell, w.cell) and np.array_equal(g.pbc, w.pbc)
        assert (g.index, g.config_type, g.labels.energy) == (w.index, w.config_type, w.labels.energy)
        assert np.array_equal(g.labels.forces, w.labels.forces)
        assert (g.labels.stress is None) == (w.labels.stress is None)
        if g.labels.stress is not None:
            assert np.array_equal(g.labels.stress, w.labels.stress)


def test_structures_and_predictions_report_progress(wh, tmp_path) -> None:
    """Both ingests call ``progress(structures, atoms)`` per batch, adding up to the file."""
    from ase.build import bulk
    from ase.calculators.emt import EMT
    from ase.calculators.singlepoint import SinglePointCalculator
    from ase.io import write

    from ingest.api import ingest_predictions, ingest_structures

    frames = []
    for k in range(12):
        a = bulk("Ni", "fcc", a=3.52, cubic=True).repeat((2, 2, 2))
        a.rattle(0.03, seed=k)
        a.calc = EMT()
        a.calc = SinglePointCalculator(a, energy=a.get_potential_energy(), forces=a.get_forces())
        frames.append(a)
    path = tmp_path / "ni.xyz"
    write(path, frames, format="extxyz")
    # the same file as predictions: equal to the references, so stored only with force
    for ingest, kwargs in ((ingest_structures, {"dataset": "ni"}),
                           (ingest_predictions, {"model": "emt", "force": True})):
        calls = []
        ingest(wh, path, progress=lambda s, a: calls.append((s, a)), **kwargs)
        assert calls and tuple(map(sum, zip(*calls))) == (12, 12 * 32)


def test_zipped_rows_equal_the_per_structure_loop(wh, tmp_path) -> None:
    """Members and structures of an all-new batch (zipped columns) are the rows that the
    per-structure loop writes where a structure repeats: same columns, same values."""
    from ase.build import bulk
    from ase.calculators.singlepoint import SinglePointCalculator
    from ase.io import write
    from sqlalchemy import select

    from ingest.api import ingest_structures
    from warehouse import models as m

    frames = []
    for k in range(6):
        a = bulk("CuNi"[2 * (k % 2):2 * (k % 2) + 2], "fcc", a=3.6, cubic=True).repeat((2, 1, 1))
        a.rattle(0.02, seed=k)
        a.calc = SinglePointCalculator(a, energy=-float(k), forces=np.zeros((len(a), 3)))
        a.info["config_type"] = f"t{k % 3}"
        frames.append(a)
    write(tmp_path / "new.xyz", frames, format="extxyz")
    write(tmp_path / "repeat.xyz", [*frames, frames[0]], format="extxyz")  # the loop: a repeat
    ingest_structures(wh, tmp_path / "new.xyz", dataset="zipped", subset="s", split="train")
    ingest_structures(wh, tmp_path / "repeat.xyz", dataset="looped", subset="s", split="train")
    ingest_structures(wh, tmp_path / "new.xyz", dataset="zipped-ctype")

    def members(name: str) -> list[tuple]:
        with wh.session() as s:
            ds = s.scalar(select(m.Dataset.id).where(m.Dataset.name == name))
            rows = s.execute(select(
                m.DatasetMember.structure_id, m.DatasetMember.split, m.DatasetMember.subset,
                m.DatasetMember.config_type, m.DatasetMember.weight, m.DatasetMember.source_index,
            ).where(m.DatasetMember.dataset_id == ds).order_by(m.DatasetMember.source_index))
            return [tuple(r) for r in rows]

    zipped, looped = members("zipped"), members("looped")
    assert looped == zipped  # the repeated frame is not a second member
    assert [r[1:4] for r in zipped] == [("train", "s", f"t{k % 3}") for k in range(6)]
    assert [r[2] for r in members("zipped-ctype")] == [f"t{k % 3}" for k in range(6)]
    with wh.session() as s:
        rows = s.execute(select(m.Structure.formula, m.Structure.elements, m.Structure.n_elements,
                                m.Structure.n_atoms).order_by(m.Structure.id)).all()
    assert [tuple(r) for r in rows] == [("Cu" if k % 2 == 0 else "Ni", "Cu" if k % 2 == 0 else "Ni",
                                         1, 8) for k in range(6)]


def test_zipped_reference_rows_equal_the_per_frame_loop(wh, tmp_path) -> None:
    """References of a batch with a stress on every frame (zipped columns) are the rows that the
    per-frame loop writes where one frame has none: same energies, stresses, forces flags."""
    from ase.calculators.singlepoint import SinglePointCalculator
    from ase.io import write
    from sqlalchemy import select

    from ingest.api import ingest_structures
    from warehouse import models as m

    frames = _emt_frames(7, lambda k: (2, 1, 1 + k % 2), forces=lambda k: k % 3)
    odd = frames[0].copy()
    odd.positions[0] += 0.1
    odd.calc = SinglePointCalculator(odd, energy=-1.0)  # no stress: the batch takes the loop
    write(tmp_path / "all.xyz", frames, format="extxyz")
    write(tmp_path / "mixed.xyz", [*frames, odd], format="extxyz")
    ingest_structures(wh, tmp_path / "all.xyz", dataset="a", level_of_theory="zipped")
    ingest_structures(wh, tmp_path / "mixed.xyz", dataset="b", level_of_theory="looped")

    def refs(level: str) -> list[tuple]:
        r, lot = m.Reference, m.LevelOfTheory
        with wh.session() as s:
            rows = s.execute(select(
                r.structure_id, r.energy, r.free_energy, r.stress_xx, r.stress_yy, r.stress_zz,
                r.stress_yz, r.stress_xz, r.stress_xy, r.has_forces, r.lake_file_id.is_(None),
            ).join(lot, lot.id == r.level_of_theory_id).where(lot.name == level)
             .order_by(r.structure_id))
            return [tuple(row) for row in rows]

    zipped, looped = refs("zipped"), refs("looped")
    assert len(zipped) == 7 and looped[:7] == zipped
    assert looped[7][3:9] == (None,) * 6 and looped[7][1] == -1.0
    assert [row[9] for row in zipped] == [bool(k % 3) for k in range(7)]
    assert [row[10] for row in zipped] == [not (k % 3) for k in range(7)]


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
@pytest.mark.parametrize("bad", ["nul", "long-line"])
def test_scan_names_the_line_across_block_boundaries(tmp_path, monkeypatch, bad, gz) -> None:
    """The byte check counts lines only once it refuses: the line it names is the one a
    line-by-line count gives, wherever the bad byte falls among the read blocks."""
    import gzip

    from ingest import extxyz
    from warehouse.errors import IngestError

    monkeypatch.setattr(extxyz, "_SCAN_BLOCK", 64)  # many blocks, lines straddling them
    monkeypatch.setattr(extxyz, "MAX_LINE_BYTES", 100)
    lines = [f"line {i} " + "x" * (i % 37) for i in range(1, 200)]
    bad_line = 123
    lines[bad_line - 1] = "abc\0def" if bad == "nul" else "y" * 150
    text = ("\n".join(lines) + "\n").encode()
    path = tmp_path / ("f.xyz.gz" if gz else "f.xyz")
    path.write_bytes(gzip.compress(text) if gz else text)
    with pytest.raises(IngestError, match=rf"line {bad_line}\b"):
        extxyz.scan_file(path)
    # a good file of the same shape passes and gives the sha256 of the file's bytes
    lines[bad_line - 1] = "fine"
    good = ("\n".join(lines) + "\n").encode()
    path.write_bytes(gzip.compress(good) if gz else good)
    import hashlib

    assert extxyz.scan_file(path) == hashlib.sha256(path.read_bytes()).hexdigest()


def _xyz_frames(n_frames: int, header, *, arrays: str = "species:S:1:pos:R:3:forces:R:3",
                seed: int = 3) -> str:
    """Extended XYZ text of ``n_frames`` small frames; ``header(k, rng)`` gives frame k's keys
    besides Properties (a string), ``arrays`` its Properties."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n_frames):
        n = 2 + k % 3
        cols = arrays.split(":")
        out.append(f"{n}\n{header(k, rng)} Properties={arrays}\n")
        for _ in range(n):
            row = ["Cu" if rng.random() < 0.5 else "Ni"]
            for name, kind, width in zip(cols[3::3], cols[4::3], cols[5::3], strict=True):
                if kind == "R":
                    row += [f"{x:.6f}" for x in rng.normal(size=int(width))]
            out.append(" ".join(row) + "\n")
    return "".join(out)


def _lattice(rng) -> str:
    cell = np.diag([4.0, 4.1, 4.2]) + 0.1 * rng.normal(size=(3, 3))
    return 'Lattice="' + " ".join(f"{x:.6f}" for x in cell.reshape(-1)) + '"'


def _nine(rng) -> str:
    """A symmetric 3x3 (an asymmetric stress or virial is refused)."""
    m = rng.normal(size=(3, 3))
    return '"' + " ".join(f"{x:.6f}" for x in (m + m.T).reshape(9)) + '"'


_HEADERS = {
    "ase": (lambda k, r: f"{_lattice(r)} energy={r.normal():.6f} stress={_nine(r)} "
                         f"config_type=c{k % 3} pbc=\"T T T\"", "species:S:1:pos:R:3:forces:R:3"),
    "gpumd-capitalised": (lambda k, r: f"{_lattice(r)} Energy={r.normal():.6f} Virial={_nine(r)} "
                                       f"weight={1 + k % 2} config_type=g", "species:S:1:pos:R:3:force:R:3"),
    "virial-6": (lambda k, r: f'{_lattice(r)} energy={r.normal():.6f} '
                              f'virial="{" ".join(f"{x:.5f}" for x in r.normal(size=6))}"',
                 "species:S:1:pos:R:3:forces:R:3"),
    "stress-voigt": (lambda k, r: f'{_lattice(r)} energy={r.normal():.6f} '
                                  f'stress="{" ".join(f"{x:.5f}" for x in r.normal(size=6))}"',
                     "species:S:1:pos:R:3:forces:R:3"),
    "unlabelled-molecules": (lambda k, r: "name=x", "species:S:1:pos:R:3"),
    "slab": (lambda k, r: f'{_lattice(r)} energy={r.normal():.6f} pbc="T T F"',
             "species:S:1:pos:R:3:forces:R:3"),
    "mixed-arrays": (lambda k, r: f"{_lattice(r)} energy={r.normal():.6f}",
                     "species:S:1:pos:R:3:forces:R:3"),
    "predictions": (lambda k, r: f"{_lattice(r)} energy={r.normal():.6f} energy_pred={r.normal():.6f} "
                                 f"stress={_nine(r)}", "species:S:1:pos:R:3:forces:R:3:forces_pred:R:3"),
}


@pytest.mark.parametrize("variant", sorted(_HEADERS))
def test_batches_read_by_plan_equal_the_frame_by_frame_build(variant, tmp_path, monkeypatch) -> None:
    """A batch whose frames read the same way is built for all frames at once: the same
    arrays, bit for bit, as the frame-by-frame build (which stays for everything else)."""
    from ingest import atoms, labels
    from ingest.extxyz import _iter_c

    header, arrays = _HEADERS[variant]
    text = _xyz_frames(12, header, arrays=arrays)
    if variant == "mixed-arrays":  # some frames carry an extra per-atom column, as ASE writes Ni
        text += _xyz_frames(5, header, arrays=arrays + ":initial_magmoms:R:1", seed=4)
    path = tmp_path / "f.xyz"
    path.write_text(text)
    raw = [(i, *frame) for i, frame in enumerate(_iter_c(str(path), {"complete": True}))]
    keys = labels.PREDICTION_KEYS if variant == "predictions" else labels.DEFAULT_KEYS
    if variant in ("virial-6", "stress-voigt"):  # six numbers are read in a stated order only
        keys = replace(keys, voigt_order=labels.VOIGT_NAMES)
    planned = atoms._batch_by_plan(raw, str(path), keys)
    assert planned is not None, "the plan should read this batch"
    monkeypatch.setattr(atoms, "_batch_by_plan", lambda *a: None)
    framewise = atoms.batch_from_dicts(raw, str(path), keys)
    for name in ("counts", "numbers", "positions", "cells", "pbcs", "forces", "has_forces"):
        a, b = getattr(planned, name), getattr(framewise, name)
        assert a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes(), name
    for name in ("index", "energy", "free_energy", "config_type", "weight"):
        assert getattr(planned, name) == getattr(framewise, name), name
    assert [None if s is None else s.tobytes() for s in planned.stress] == \
        [None if s is None else s.tobytes() for s in framewise.stress]


@pytest.mark.parametrize("case", ["bad-energy", "virial-without-cell", "missing-required"])
def test_a_batch_the_plan_cannot_read_gets_the_frame_by_frame_error(case, tmp_path) -> None:
    """Where a value does not convert (or a label cannot be computed), the frame-by-frame
    build explains it: the same error, naming the same frame."""
    from ingest import atoms, labels
    from ingest.extxyz import _iter_c
    from warehouse.errors import IngestError

    if case == "bad-energy":
        text = _xyz_frames(6, lambda k, r: f"{_lattice(r)} energy={'abc' if k == 4 else '1.5'}")
    elif case == "virial-without-cell":
        text = _xyz_frames(6, lambda k, r: f"energy=1.0 virial={_nine(r)}")
    else:
        text = _xyz_frames(6, lambda k, r: f"{_lattice(r)} energy=1.0")
    path = tmp_path / "f.xyz"
    path.write_text(text)
    raw = [(i, *frame) for i, frame in enumerate(_iter_c(str(path), {"complete": True}))]
    keys = labels.prediction_keys(forces="forces_pred") if case == "missing-required" else labels.DEFAULT_KEYS
    assert atoms._batch_by_plan(raw, str(path), keys) is None
    with pytest.raises(IngestError) as err:
        atoms.batch_from_dicts(raw, str(path), keys)
    frame = {"bad-energy": 4, "virial-without-cell": 0, "missing-required": 0}[case]
    assert f"frame {frame}" in str(err.value) and str(path) in str(err.value)

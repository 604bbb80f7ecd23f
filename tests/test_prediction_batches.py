"""Predictions written a batch at a time: error sums as columns, matching by hash and tolerance.

The stored error sums must be those of the per-structure functions (``calc_error_sums``,
``calc_element_force_sums``) bit for bit, whatever the batch, and those agree with numpy by
hand. Frames that miss the hash are matched within MATCH_TOL in any atom order; frames that are
not stored are refused as a whole.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator
from ase.data import chemical_symbols
from ase.io import write
from sqlalchemy import select

from ingest.api import ingest_predictions, ingest_structures
from ingest.loader import ingest_run
from ingest.writers.matching import MATCH_TOL, Atoms, tolerance_pairs
from tests.ingest_helpers import snapshot, stored_predictions
from warehouse import models as m
from warehouse.errors import IngestError
from warehouse.errorsums import calc_batch_error_sums, calc_element_force_sums, calc_error_sums
from warehouse.records import Frame, Labels, PredictionFrame

SYMBOLS = np.array(chemical_symbols)
SUM_COLS = ("n_atoms", "energy_diff_per_atom", "force_abs_sum", "force_sq_sum", "force_n",
            "force_norm_sum", "force_norm_sq_sum", "stress_abs_sum", "stress_sq_sum", "stress_n")


# -- the computation -------------------------------------------------------------------------

@pytest.mark.parametrize("seed", [0, 1, 2])
def test_batch_sums_equal_the_per_structure_functions_bit_for_bit(seed) -> None:
    rng = np.random.default_rng(seed)
    n_pairs = 400
    n = rng.integers(1, 300, n_pairs)
    n[: n_pairs // 3] = rng.integers(4, 9, n_pairs // 3)  # many small cells, several sizes
    wf = rng.random(n_pairs) < 0.8
    ep = 100 * rng.standard_normal(n_pairs)
    er = ep + rng.standard_normal(n_pairs)
    er[rng.random(n_pairs) < 0.1] = np.nan
    sp = rng.standard_normal((n_pairs, 6))
    sr = sp + 0.1 * rng.standard_normal((n_pairs, 6))
    sr[rng.random(n_pairs) < 0.1] = np.nan
    n_f = int(n[wf].sum())
    fp = rng.standard_normal((n_f, 3))
    fr = fp + rng.standard_normal((n_f, 3)) * 10 ** rng.uniform(-4, 1, (n_f, 1))
    z = rng.choice([13, 28, 29, 47, 78], n_f)
    sums, el = calc_batch_error_sums(n_atoms=n, energy_pred=ep, energy_ref=er, stress_pred=sp,
                                     stress_ref=sr, with_forces=wf, forces_pred=fp,
                                     forces_ref=fr, numbers=z)
    by_pair_el = {(int(p), int(k)): (a, b, c, d) for p, k, a, b, c, d in zip(
        el.pair, el.number, el.n_atoms, el.force_abs_sum, el.force_sq_sum, el.force_n)}
    lo = 0
    n_el = 0
    for i in range(n_pairs):
        f_p = f_r = None
        if wf[i]:
            f_p, f_r, zi = fp[lo:lo + n[i]], fr[lo:lo + n[i]], z[lo:lo + n[i]]
            lo += n[i]
        one = calc_error_sums(
            n_atoms=int(n[i]), energy_pred=float(ep[i]),
            energy_ref=None if np.isnan(er[i]) else float(er[i]), forces_pred=f_p,
            forces_ref=f_r, stress_pred=sp[i], stress_ref=None if np.isnan(sr[i]).any() else sr[i])
        for col in SUM_COLS:
            want, got = getattr(one, col), getattr(sums, col)[i]
            assert (np.isnan(got) if want is None else got == want), (i, col, want, got)
        if f_p is not None:
            for e in calc_element_force_sums(SYMBOLS[zi], f_p, f_r):
                n_el += 1
                key = (i, chemical_symbols.index(e.element))
                assert by_pair_el[key] == (e.n_atoms, e.force_abs_sum, e.force_sq_sum, e.force_n)
    assert n_el == len(el.pair)
    # and numpy by hand, pooled over the batch (DESIGN.md, Metrics)
    d = fp - fr
    assert np.nansum(sums.force_abs_sum) / sums.force_n.sum() == pytest.approx(
        np.abs(d).mean(), rel=1e-12)
    assert np.nansum(sums.force_norm_sum) / n[wf].sum() == pytest.approx(
        np.linalg.norm(d, axis=1).mean(), rel=1e-12)
    ok_s = ~np.isnan(sr).any(axis=1)
    assert np.nansum(sums.stress_sq_sum) / sums.stress_n.sum() == pytest.approx(
        ((sp - sr)[ok_s] ** 2).mean(), rel=1e-12)


# -- stored sums ------------------------------------------------------------------------------

def _structures(n: int, seed: int) -> list:
    """EMT-labelled cells of 4-32 atoms, two species, some without stress."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        a = bulk("Cu", cubic=True).repeat((1 + i % 2, 1 + (i // 2) % 2, 1 + i % 3))
        a.numbers[rng.random(len(a)) < 0.4] = 28
        a.positions += rng.normal(scale=0.05, size=a.positions.shape)
        a.calc = EMT()
        res = {"energy": a.get_potential_energy(), "forces": a.get_forces()}
        if i % 4:
            res["stress"] = a.get_stress()
        a.calc = SinglePointCalculator(a, **res)
        out.append(a)
    return out


def _stored_pairs(wh) -> list[tuple]:
    with wh.session() as s:
        return s.execute(select(m.PredictionError, m.Prediction, m.Reference)
                         .join(m.Prediction, m.Prediction.id == m.PredictionError.prediction_id)
                         .join(m.Reference, m.Reference.id == m.PredictionError.reference_id)).all()


def _lake_arrays(wh, lake_file_id: int, id_name: str, owner: int, cols: list[str]) -> np.ndarray:
    with wh.session() as s:
        path = s.get(m.LakeFile, lake_file_id).path
    t = wh.lake.read(path, filters=[(id_name, "=", owner)]).sort_by("atom_index")
    return np.column_stack([t[c].to_numpy() for c in cols])


def _check_stored_sums(wh) -> int:
    """Every stored pair's sums equal calc_error_sums / calc_element_force_sums on the stored
    values, read back independently of the writer; returns the number of pairs."""
    stress = ("stress_xx", "stress_yy", "stress_zz", "stress_yz", "stress_xz", "stress_xy")
    pairs = _stored_pairs(wh)
    with wh.session() as s:
        el_rows = {(r.prediction_id, r.reference_id, r.element): r
                   for r in s.scalars(select(m.PredictionElementError))}
    n_el = 0
    for err, p, r in pairs:
        with wh.session() as s:
            st = s.get(m.Structure, p.structure_id)
            n_atoms, st_lf = st.n_atoms, st.lake_file_id
        fp = (_lake_arrays(wh, p.lake_file_id, "prediction_id", p.id, ["fx", "fy", "fz"])
              if p.has_forces else None)
        fr = (_lake_arrays(wh, r.lake_file_id, "reference_id", r.id, ["fx", "fy", "fz"])
              if r.has_forces else None)
        sp = None if p.stress_xx is None else np.array([getattr(p, c) for c in stress])
        sr = None if r.stress_xx is None else np.array([getattr(r, c) for c in stress])
        want = calc_error_sums(n_atoms=n_atoms, energy_pred=p.energy, energy_ref=r.energy,
                               forces_pred=fp, forces_ref=fr, stress_pred=sp, stress_ref=sr)
        for col in SUM_COLS:
            assert getattr(err, col) == getattr(want, col), (col, p.structure_id)
        if fp is not None and fr is not None:
            z = _lake_arrays(wh, st_lf, "structure_id", p.structure_id, ["Z"])[:, 0]
            for e in calc_element_force_sums(SYMBOLS[z], fp, fr):
                got = el_rows[(p.id, r.id, e.element)]
                n_el += 1
                assert (got.n_atoms, got.force_abs_sum, got.force_sq_sum, got.force_n) == (
                    e.n_atoms, e.force_abs_sum, e.force_sq_sum, e.force_n)
    assert n_el == len(el_rows)
    return len(pairs)


def _prediction(a, k: int, rng, *, status: str = "ok") -> PredictionFrame:
    """Another model's labels for ``a``: its frame, atoms listed in reverse for odd ``k``."""
    n = len(a)
    order = np.arange(n)[::-1] if k % 2 else np.arange(n)
    stress = a.get_stress() + 0.01 if "stress" in a.calc.results else None
    labels = Labels(a.get_potential_energy() + 0.05 * n * rng.standard_normal(),
                    (a.get_forces() + 0.1 * rng.standard_normal((n, 3)))[order], stress)
    frame = Frame(a.numbers[order].astype(np.int32), a.positions[order], a.cell.array.copy(),
                  a.pbc.copy(), k, labels if status == "ok" else Labels())
    return PredictionFrame(frame, status, None if status == "ok" else "diverged")


def test_stored_sums_equal_the_per_structure_functions(wh, tmp_path, monkeypatch) -> None:
    """Exact hash, order-free hash (atoms reversed) and tolerance (moved by 4e-6 Å), a failed
    prediction, frames without stress, two levels of theory: one added after the predictions
    (its sums then computed from the stored predictions), in batches of a few frames."""
    import ingest.loader as loader_mod

    frames = _structures(12, seed=1)
    path = tmp_path / "s.xyz"
    write(path, frames, format="extxyz")
    ingest_structures(wh, path, dataset="d", level_of_theory="EMT")
    stored = {k: a for k, a in enumerate(frames)}
    monkeypatch.setattr(loader_mod, "BATCH_ATOMS", 40)  # a few frames per batch
    rng = np.random.default_rng(2)
    preds = [_prediction(a, k, rng, status="failed" if k == 5 else "ok") for k, a in stored.items()]
    for p in preds[8:]:  # off the hash: within tolerance only
        p.frame.positions = p.frame.positions + 4e-6
    with ingest_run(wh, kind="predictions") as ld:
        ld.add_predictions(ld.model("m1"), preds, path="p")
    assert ld.summary.added == {"models": 1, "predictions": 11, "failed predictions": 1}
    with ingest_run(wh, kind="predictions") as ld:  # a second model, every structure
        ld.add_predictions(ld.model("m2"), [_prediction(a, k, rng) for k, a in stored.items()],
                           path="p2")
    # a second level of theory for the same structures, after the predictions
    for a in frames:
        a.calc.results["energy"] += 0.3
        a.calc.results["forces"] = a.calc.results["forces"] * 1.1
    write(path, frames, format="extxyz")
    summary = ingest_structures(wh, path, dataset="d2", level_of_theory="EMT-2")
    assert summary.added["references"] == 12
    assert _check_stored_sums(wh) == (11 + 12) * 2  # ok predictions x 2 levels
    forces = stored_predictions(wh, "m1")
    with wh.session() as s:
        sid_of = dict(s.execute(select(m.DatasetMember.source_index, m.DatasetMember.structure_id)
                                .join(m.Dataset).where(m.Dataset.name == "d")).all())
    for k, p in enumerate(preds):  # stored in stored atom order, whatever the file's order
        if p.status == "ok":
            order = np.arange(len(p.frame.numbers))[::-1] if k % 2 else slice(None)
            np.testing.assert_array_equal(forces[sid_of[k]]["forces"], p.frame.labels.forces[order])


# -- matching ---------------------------------------------------------------------------------

def _write_predictions(path: Path, frames, move, *, seed: int = 3) -> list[np.ndarray]:
    """Each frame with made-up forces_pred, positions changed by ``move(k, positions)`` and the
    atoms of every third frame listed in another order; returns the forces in stored order."""
    rng = np.random.default_rng(seed)
    out, forces = [], []
    for k, a in enumerate(frames):
        b = a.copy()
        b.calc = None
        f = rng.standard_normal((len(b), 3))
        forces.append(f)
        b.positions = move(k, b.positions)
        b.info = {"energy_pred": -3.5 * len(b)}
        b.arrays["forces_pred"] = f
        perm = rng.permutation(len(b)) if k % 3 == 0 else np.arange(len(b))
        out.append(b[perm])
        out[-1].arrays["forces_pred"] = f[perm]
    write(path, out, format="extxyz")
    return forces


@pytest.mark.parametrize("how", ["six-decimals", "moved-4e-6"])
def test_frames_off_the_hash_are_matched_within_tolerance(how, wh, tmp_path) -> None:
    frames = _structures(10, seed=4)
    write(tmp_path / "s.xyz", frames, format="extxyz")
    ingest_structures(wh, tmp_path / "s.xyz", dataset="d")
    if how == "six-decimals":
        def move(k, pos):
            return np.round(pos, 6)
    else:
        def move(k, pos):
            return pos + np.array([4e-6, -3e-6, 2e-6]) * (1 if k % 2 else -1)
    forces = _write_predictions(tmp_path / "p.xyz", frames, move)
    summary = ingest_predictions(wh, tmp_path / "p.xyz", model="m")
    assert summary.added["predictions"] == 10
    stored = stored_predictions(wh, "m")
    with wh.session() as s:
        sid_of = dict(s.execute(select(m.DatasetMember.source_index,
                                       m.DatasetMember.structure_id)).all())
    for k, f in enumerate(forces):
        np.testing.assert_allclose(stored[sid_of[k]]["forces"], f, atol=1e-8)  # 8 decimals
    assert _check_stored_sums(wh) == 10


def test_frames_not_in_the_warehouse_are_refused_with_the_count(wh, tmp_path) -> None:
    frames = _structures(8, seed=5)
    write(tmp_path / "s.xyz", frames, format="extxyz")
    ingest_structures(wh, tmp_path / "s.xyz", dataset="d")
    before = snapshot(wh)
    rng = np.random.default_rng(6)

    def rattle(k, pos):  # 3 of 8 moved by 0.01 Å: other structures of the same formula and cell
        return pos + (0.01 * rng.standard_normal(pos.shape) if k in (1, 4, 6) else 0.0)

    _write_predictions(tmp_path / "p.xyz", frames, rattle)
    with pytest.raises(IngestError, match=r"3 of 8 structures are not in the warehouse \(first: "
                                          r"frame 1 \(\d+ atoms\); frame 4"):
        ingest_predictions(wh, tmp_path / "p.xyz", model="m")
    assert snapshot(wh) == before


def _random_atoms(rng, n_structures: int, pbc) -> Atoms:
    counts = rng.integers(3, 40, n_structures)
    cells = np.stack([np.diag(rng.uniform(3, 12, 3)) + rng.uniform(-1.5, 1.5, (3, 3))
                      for _ in range(n_structures)])
    frac = rng.uniform(-0.2, 1.2, (int(counts.sum()), 3))  # some atoms outside the cell
    owner = np.repeat(np.arange(n_structures), counts)
    pos = np.einsum("ni,nij->nj", frac, cells[owner])
    return Atoms(counts, rng.choice([13, 29, 79], int(counts.sum())), pos, cells,
                 np.tile(np.asarray(pbc, dtype=bool), (n_structures, 1)))


@pytest.mark.parametrize("pbc", [(True, True, True), (True, True, False), (False, False, False)],
                         ids=["periodic", "slab", "molecule"])
def test_tolerance_finds_every_true_match_and_rejects_others(pbc) -> None:
    """Atoms moved by up to MATCH_TOL (across cell faces too), cells changed by up to 1e-6 Å,
    atoms permuted: all found, with the permutation; rattled copies: none."""
    rng = np.random.default_rng(7)
    stored = _random_atoms(rng, 30, pbc)
    moved_pos = stored.positions.copy()
    step = rng.standard_normal(moved_pos.shape)
    moved_pos += 0.999 * MATCH_TOL * step / np.linalg.norm(step, axis=1)[:, None]
    owner = np.repeat(np.arange(30), stored.counts)
    shift = rng.integers(-1, 2, (len(owner), 3)) * np.asarray(pbc)  # another periodic image
    moved_pos += np.einsum("ni,nij->nj", shift.astype(float), stored.cells[owner])
    perms = []
    numbers, positions = [], []
    for s in range(30):
        rows = np.flatnonzero(owner == s)
        perm = rng.permutation(len(rows)) if s % 2 else np.arange(len(rows))
        perms.append(perm)
        numbers.append(stored.numbers[rows][perm])
        positions.append(moved_pos[rows][perm])
    frames = Atoms(stored.counts, np.concatenate(numbers), np.concatenate(positions),
                   stored.cells + rng.uniform(-1e-6, 1e-6, stored.cells.shape), stored.pbcs)
    pf, pc = np.arange(30), np.arange(30)
    found = tolerance_pairs(frames, stored, pf, pc)
    assert sorted(found) == list(range(30))
    for s, perm in found.items():
        if perm is not None:  # frame atom perm[k] is stored atom k
            np.testing.assert_array_equal(perms[s][perm], np.arange(len(perm)))
        else:
            np.testing.assert_array_equal(perms[s], np.arange(len(perms[s])))
    rattled = Atoms(frames.counts, frames.numbers,
                    frames.positions + 0.01 * rng.standard_normal(frames.positions.shape),
                    frames.cells, frames.pbcs)
    assert tolerance_pairs(rattled, stored, pf, pc) == {}


def test_the_window_holds_every_true_match() -> None:
    """The window on the first structure factor (the look-up of candidates) is never narrower
    than the distance of a structure moved within MATCH_TOL, its cell too."""
    from ingest.writers.matching import _factors, _inverses, _window

    rng = np.random.default_rng(8)
    stored = _random_atoms(rng, 200, (True, True, True))
    step = rng.standard_normal(stored.positions.shape)
    moved = Atoms(stored.counts, stored.numbers,
                  stored.positions + 0.999 * MATCH_TOL * step / np.linalg.norm(step, axis=1)[:, None],
                  stored.cells + rng.uniform(-MATCH_TOL, MATCH_TOL, stored.cells.shape), stored.pbcs)
    s_c = _factors(stored, _inverses(stored.cells, stored.pbcs)[1])[:, 0]
    s_f = _factors(moved, _inverses(moved.cells, moved.pbcs)[1])[:, 0]
    assert np.all(np.abs(s_f.real - s_c.real) <= _window(moved))


def test_many_stored_structures_of_one_formula_and_cell(wh, tmp_path) -> None:
    """More candidates of the frame's formula and cell than MATCH_MAX_CANDIDATES (many small
    equal cells): each frame still finds its own structure."""
    from ingest.writers.matching import MATCH_MAX_CANDIDATES

    rng = np.random.default_rng(9)
    frames = []
    for _ in range(MATCH_MAX_CANDIDATES * 2):
        a = bulk("Cu", cubic=True)
        a.positions += rng.normal(scale=0.05, size=a.positions.shape)
        a.calc = SinglePointCalculator(a, energy=-1.0, forces=np.zeros((4, 3)))
        frames.append(a)
    write(tmp_path / "s.xyz", frames, format="extxyz")
    ingest_structures(wh, tmp_path / "s.xyz", dataset="d")
    _write_predictions(tmp_path / "p.xyz", frames, lambda k, pos: pos + 4e-6)
    summary = ingest_predictions(wh, tmp_path / "p.xyz", model="m")
    assert summary.added["predictions"] == len(frames)
    assert _check_stored_sums(wh) == len(frames)

"""Per-atom extrapolation grades: ingest from extended XYZ or CSV, and analysis as an uncertainty
(including the gamma = 1 threshold), on real UNEP-v1 predictions of the screw set."""

from __future__ import annotations

import json

import ase.io
import numpy as np
import pandas as pd
import pytest
from sqlalchemy import select

from unep_fixtures import DATASET, fixture_rows, ingest_unep, load_fixture, reference_atoms, reference_labels
from warehouse import models as m
from warehouse.hashing import structure_hashes

MODEL = "unep-v1"
N_FRAMES = 12


def _errors_and_gamma(shared_data):
    """Per frame of the screw set: the model's per-atom force error and a synthetic gamma that
    tracks it (scaled so that about 10 % of the atoms exceed 1), with seeded noise."""
    fx = load_fixture(MODEL)
    rng = np.random.default_rng(5)
    out = []
    for row in fixture_rows(("screw",))[:N_FRAMES]:
        frame = int(fx["frame"][row])
        _, f_ref, _ = reference_labels(shared_data, "screw", frame)
        a, b = fx["offsets"][row], fx["offsets"][row + 1]
        err = np.linalg.norm(f_ref - fx["forces"][a:b], axis=1)
        out.append((frame, err))
    cut = np.quantile(np.concatenate([e for _, e in out]), 0.9)
    # 8 decimals: what ASE's extxyz writer keeps, so the file round-trips exactly
    return [(f, e, np.array([float(f"{x:.8f}") for x in e / cut * rng.lognormal(0, 0.3, len(e))]))
            for f, e in out]


@pytest.fixture
def loaded(wh, shared_data):
    ingest_unep(wh, shared_data, models=(MODEL,), sets=("screw",))
    return _errors_and_gamma(shared_data)


def _write_xyz(path, shared_data, items, *, permute_first=False):
    frames = []
    for k, (frame, _, gamma) in enumerate(items):
        atoms = reference_atoms(shared_data, "screw")[frame].copy()
        atoms.calc = None
        atoms.arrays.pop("forces", None)
        atoms.info.pop("virial", None)
        atoms.arrays["gamma"] = gamma
        if permute_first and k == 0:
            perm = np.random.default_rng(0).permutation(len(atoms))
            atoms = atoms[perm]
        frames.append(atoms)
    ase.io.write(path, frames, format="extxyz")


def _stored(wh, kind="gamma"):
    with wh.session() as s:
        rows = s.execute(select(m.AtomGrades.structure_id, m.AtomGrades.max_grade, m.LakeFile.path)
                         .join(m.LakeFile, m.LakeFile.id == m.AtomGrades.lake_file_id)
                         .where(m.AtomGrades.kind == kind)).all()
    tables = {p: wh.lake.read(p).to_pandas() for _, _, p in rows}
    return {sid: (mx, tables[p][tables[p]["structure_id"] == sid].sort_values("atom_index")["grade"].to_numpy())
            for sid, mx, p in rows}


def _sid(wh, shared_data, frame):
    a = reference_atoms(shared_data, "screw")[frame]
    h = structure_hashes(a.numbers, a.positions, a.cell.array, a.pbc)[0]
    with wh.session() as s:
        return s.scalar(select(m.Structure.id).where(m.Structure.hash == h))


def test_extxyz_grades_stored_per_atom_with_max_and_permutation(wh, cli, shared_data, loaded, tmp_path):
    path = tmp_path / "gamma.xyz"
    _write_xyz(path, shared_data, loaded, permute_first=True)
    res = cli("ingest", "grades", path, "--model", MODEL, "--kind", "gamma")
    assert res.exit_code == 0, res.output
    assert f"added {N_FRAMES} grades" in res.output
    stored = _stored(wh)
    assert len(stored) == N_FRAMES
    for frame, _, gamma in loaded:  # the permuted frame's grades come back in stored atom order
        mx, g = stored[_sid(wh, shared_data, frame)]
        np.testing.assert_array_equal(g, gamma)
        assert mx == gamma.max()
    again = cli("ingest", "grades", path, "--model", MODEL, "--kind", "gamma")
    assert again.exit_code == 0 and "nothing new was added" in again.output


def test_csv_grades_by_hash_and_by_frame(wh, cli, shared_data, loaded, tmp_path):
    by_hash, by_frame = [], []
    for frame, _, gamma in loaded[:4]:
        a = reference_atoms(shared_data, "screw")[frame]
        h = structure_hashes(a.numbers, a.positions, a.cell.array, a.pbc)[0]
        idx = np.arange(len(gamma))[::-1]  # rows in any order
        by_hash.append(pd.DataFrame({"hash": h, "atom_index": idx, "grade": gamma[idx]}))
        by_frame.append(pd.DataFrame({"frame": frame, "atom_index": idx, "grade": gamma[idx]}))
    pd.concat(by_hash).to_csv(tmp_path / "h.csv", index=False)
    pd.concat(by_frame).to_csv(tmp_path / "f.csv", index=False)
    assert cli("ingest", "grades", tmp_path / "h.csv", "-m", MODEL, "-k", "g1").exit_code == 0
    res = cli("ingest", "grades", tmp_path / "f.csv", "-m", MODEL, "-k", "g2",
              "--dataset", DATASET, "--subset", "screw")
    assert res.exit_code == 0, res.output
    for kind in ("g1", "g2"):
        stored = _stored(wh, kind)
        for frame, _, gamma in loaded[:4]:
            np.testing.assert_array_equal(stored[_sid(wh, shared_data, frame)][1], gamma)


@pytest.mark.parametrize("case, message", [
    ("no-array", "frame 0, line 1: no per-atom array 'gamma'"),
    ("nan", "line 3: grade is not a finite number"),
    ("gap", "atom_index must cover 0..n-1 exactly once"),
    ("unknown", "is not in the warehouse"),
    ("columns", "needs the columns hash (or frame), atom_index and grade"),
    ("frame-no-dataset", "frame numbers need --dataset"),
], ids=lambda x: x if isinstance(x, str) and " " not in x else None)
def test_bad_grades_are_refused_whole(wh, cli, shared_data, loaded, tmp_path, case, message):
    frame, _, gamma = loaded[0]
    a = reference_atoms(shared_data, "screw")[frame]
    h = structure_hashes(a.numbers, a.positions, a.cell.array, a.pbc)[0]
    n = len(gamma)
    ok = pd.DataFrame({"hash": h, "atom_index": np.arange(n), "grade": gamma})
    if case == "no-array":
        path = tmp_path / "x.xyz"
        ase.io.write(path, a, format="extxyz")
    else:
        path = tmp_path / "x.csv"
        df = {
            "nan": ok.assign(grade=np.where(np.arange(n) == 1, np.nan, gamma)),
            "gap": ok.iloc[1:],
            "unknown": ok.assign(hash="0" * 64),
            "columns": ok.rename(columns={"grade": "gamma"}),
            "frame-no-dataset": ok.drop(columns="hash").assign(frame=frame),
        }[case]
        df.to_csv(path, index=False)
    before, files = wh.counts(), set(wh.lake.walk())
    res = cli("ingest", "grades", path, "--model", MODEL, "--kind", "gamma")
    assert res.exit_code == 1 and message in res.output and str(path) in res.output, res.output
    assert len(res.output.strip().splitlines()) == 1
    assert wh.counts()["ingest_runs"] == before["ingest_runs"] + 1  # the failed attempt, recorded
    assert {k: v for k, v in wh.counts().items() if k != "ingest_runs"} == \
        {k: v for k, v in before.items() if k != "ingest_runs"}
    assert set(wh.lake.walk()) == files
    with wh.session() as s:
        assert s.scalar(select(m.AtomGrades.id).limit(1)) is None


def test_grades_analysed_as_uncertainty_with_the_gamma_1_threshold(wh, cli, shared_data, loaded, tmp_path):
    path = tmp_path / "gamma.xyz"
    _write_xyz(path, shared_data, loaded)
    assert cli("ingest", "grades", path, "--model", MODEL, "--kind", "gamma").exit_code == 0
    res = cli("uq", "--grades", "gamma", "--model", MODEL, "-d", DATASET, "--show", "threshold",
              "--level", "atom", "-f", "json")
    assert res.exit_code == 0, res.output
    (got,) = json.loads(res.stdout)
    gamma = np.concatenate([g for _, _, g in loaded])
    err = np.concatenate([e for _, e, _ in loaded])
    high = err >= np.sort(err)[::-1][int(np.ceil(0.1 * len(err))) - 1]
    flagged = gamma > 1
    assert got["rule"] == "U > 1" and got["n"] == len(err)
    assert got["n_flagged"] == flagged.sum() and got["n_high"] == high.sum()
    assert got["precision"] == pytest.approx((flagged & high).sum() / flagged.sum(), abs=1e-12)
    assert got["recall"] == pytest.approx((flagged & high).sum() / high.sum(), abs=1e-12)
    # structures without grades are counted as missing, not mixed in
    summary = json.loads(cli("uq", "--grades", "gamma", "-m", MODEL, "-d", DATASET, "-f", "json",
                             "--n-boot", "20").stdout)
    n_screw = len(fixture_rows(("screw",)))
    for r in summary:
        assert r["n_missing"] == n_screw - N_FRAMES
        if (r["quantity"], r["level"]) == ("force", "atom"):  # gamma was built to track it
            assert r["spearman_rho"] > 0.5
    missing = cli("uq", "--grades", "nope", "-m", MODEL, "-d", DATASET)
    assert missing.exit_code == 1 and "no grades of kind 'nope'" in missing.output

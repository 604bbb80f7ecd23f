"""The loader: atomicity across lake and catalog, failures counted, errors stored exactly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.io import write

import ingest.loader as loader_mod
from ingest.api import ingest_structures
from ingest.inference import evaluate_frames
from ingest.loader import ingest_run
from queries.leaderboard import leaderboard
from warehouse.errors import IngestError
from warehouse.structures import iter_dataset_frames


def _frames(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        a = bulk("Cu", cubic=True).repeat(2)
        a.positions += rng.normal(scale=0.05, size=a.positions.shape)
        if i % 2:
            a.numbers[:3] = 28
        a.calc = EMT()
        a.get_potential_energy()
        out.append(a)
    return out


def _write(path: Path, frames) -> Path:
    write(path, frames, format="extxyz")
    return path


def test_failure_after_lake_writes_leaves_no_files_and_no_rows(wh, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(loader_mod, "BATCH_ATOMS", 64)  # two frames per batch: files get written
    path = _write(tmp_path / "a.xyz", _frames(6))
    lines = path.read_text().splitlines()
    lines[-1] = lines[-1].rsplit(" ", 1)[0] + " inf"  # the last frame's last force is inf
    path.write_text("\n".join(lines) + "\n")
    written: list[str] = []
    real_write = wh.lake.write
    monkeypatch.setattr(wh.lake, "write", lambda rel, t: written.append(rel) or real_write(rel, t))
    with pytest.raises(IngestError, match="frame 5"):
        ingest_structures(wh, path, dataset="d")
    assert written, "the test must fail after some lake files were written"
    assert list(wh.lake.walk()) == []
    counts = wh.counts()
    assert counts["structures"] == 0 and counts["lake_files"] == 0
    assert counts["ingest_runs"] == 1  # the failed attempt, for provenance
    with wh.session() as s:
        from sqlalchemy import select

        from warehouse.models import IngestRun

        run = s.scalar(select(IngestRun))
        assert run.status == "failed" and "frame 5" in run.message


class _FailsOnNickel(EMT):
    def calculate(self, atoms=None, properties=("energy",), system_changes=()):
        if 28 in atoms.numbers and atoms.positions[0, 0] > 0:
            raise RuntimeError("refusing this structure")
        super().calculate(atoms, properties, system_changes)


def test_failed_predictions_are_counted_not_dropped(wh, tmp_path) -> None:
    frames = _frames(6, seed=1)
    frames[3].positions[0, 0] = 0.2  # only this nickel-containing frame will fail
    for i in (1, 5):
        frames[i].positions[0, 0] = -0.2
    for a in frames:  # labels of the moved frames must be recomputed
        a.calc = EMT()
        a.get_forces()
    ingest_structures(wh, _write(tmp_path / "d.xyz", frames), dataset="d")
    with ingest_run(wh, kind="evaluate") as ld:
        mid = ld.model("flaky")
        stored = (f for _, f in iter_dataset_frames(wh, "d"))
        ld.add_predictions(mid, evaluate_frames(_FailsOnNickel(), stored), path="d")
    assert ld.summary.added["failed predictions"] == 1
    row = leaderboard(wh).iloc[0]
    assert (row.n_structures, row.n_failed, row.n_missing) == (6, 1, 0)
    # EMT vs the EMT labels of the file: zero error on the five that ran, up to the digits
    # extxyz keeps (positions and forces are written with 8 decimals)
    assert row.energy_rmse == pytest.approx(0, abs=1e-6)
    assert row.force_rmse == pytest.approx(0, abs=1e-3)


def test_missing_predictions_are_counted(wh, tmp_path) -> None:
    ingest_structures(wh, _write(tmp_path / "d.xyz", _frames(4, seed=2)), dataset="d")
    with ingest_run(wh, kind="evaluate") as ld:
        mid = ld.model("partial")
        stored = [f for _, f in iter_dataset_frames(wh, "d")][:3]
        ld.add_predictions(mid, evaluate_frames(EMT(), stored), path="d")
    row = leaderboard(wh).iloc[0]
    assert (row.n_structures, row.n_failed, row.n_missing) == (4, 0, 1)


def test_reference_added_after_predictions_gets_error_sums(wh, tmp_path) -> None:
    """Predictions first (structures without labels), labels later: errors appear then."""
    frames = _frames(3, seed=3)
    unlabeled = [a.copy() for a in frames]  # copy() drops the calculator
    ingest_structures(wh, _write(tmp_path / "u.xyz", unlabeled), dataset="d")
    with ingest_run(wh, kind="evaluate") as ld:
        mid = ld.model("emt")
        ld.add_predictions(mid, evaluate_frames(EMT(), (f for _, f in iter_dataset_frames(wh, "d"))),
                           path="d")
    for a in frames:  # shift the labels so the errors are known and non-zero
        a.calc.results["energy"] += 0.01 * len(a)
    summary = ingest_structures(wh, _write(tmp_path / "l.xyz", frames), dataset="d")
    assert summary.added["references"] == 3
    row = leaderboard(wh).iloc[0]
    assert row.energy_mae == pytest.approx(10.0, rel=1e-6)  # 0.01 eV/atom; extxyz rounding
    assert row.force_mae == pytest.approx(0, abs=1e-3)


def test_structure_shared_by_two_datasets_is_stored_once(wh, tmp_path) -> None:
    path = _write(tmp_path / "d.xyz", _frames(3, seed=4))
    ingest_structures(wh, path, dataset="one")
    summary = ingest_structures(wh, path, dataset="two")
    assert summary.added.get("structures", 0) == 0 and summary.added["members"] == 3
    counts = wh.counts()
    assert counts["structures"] == 3 and counts["dataset_members"] == 6

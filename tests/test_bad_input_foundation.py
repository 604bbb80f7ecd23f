"""Bad input gets a one-line error naming the file and place; nothing is written."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import write

from warehouse import Warehouse


def _snapshot(wh: Warehouse) -> tuple[dict, set]:
    counts = wh.counts()
    counts.pop("ingest_runs")  # a failed attempt is recorded as provenance, on purpose
    return counts, set(wh.lake.walk())


def _good_xyz(path: Path, n_frames: int = 3) -> Path:
    frames = []
    for i in range(n_frames):
        a = bulk("Cu", cubic=True).repeat(2)
        a.rattle(0.01 * (i + 1), seed=i)
        a.calc = SinglePointCalculator(a, energy=-3.5 * len(a) + 0.01 * i,
                                       forces=np.full((len(a), 3), 0.01 * i))
        frames.append(a)
    write(path, frames, format="extxyz")
    return path


def _assert_clean_failure(res, wh, before, *needles: str) -> None:
    assert res.exit_code != 0
    message = res.output.strip()
    assert message.startswith("Error: ") and "\n" not in message, message
    assert "Traceback" not in res.output
    for needle in needles:
        assert needle in message, (needle, message)
    assert _snapshot(wh) == before


@pytest.fixture
def seeded(cli, wh, tmp_path: Path):
    """A warehouse that already holds something, so 'unchanged' is a real check."""
    res = cli("ingest", "structures", _good_xyz(tmp_path / "seed.xyz", 2), "--dataset", "seed")
    assert res.exit_code == 0, res.output
    return _snapshot(wh)


def test_truncated_frame(cli, wh, tmp_path: Path, seeded) -> None:
    path = _good_xyz(tmp_path / "t.xyz")
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:-5]) + "\n")  # the last frame loses 5 atom lines
    res = cli("ingest", "structures", path, "--dataset", "bad")
    _assert_clean_failure(res, wh, seeded, str(path), "frame 2")


def test_force_array_length_disagrees_with_atom_count(cli, wh, tmp_path: Path, seeded) -> None:
    """Frame 1 declares 3-component forces but one atom line carries only two."""
    path = _good_xyz(tmp_path / "short_forces.xyz")
    lines = path.read_text().splitlines()
    header = [i for i, line in enumerate(lines) if "Properties=" in line]
    target = header[1] + 2
    lines[target] = " ".join(lines[target].split()[:-1])
    path.write_text("\n".join(lines) + "\n")
    res = cli("ingest", "structures", path, "--dataset", "bad")
    _assert_clean_failure(res, wh, seeded, str(path), "frame 1")


def test_forces_of_wrong_length_from_a_reader(wh, tmp_path: Path, seeded) -> None:
    """The validator itself: a reader that yields fewer force rows than atoms is refused."""
    from ingest.atoms import validate_frame
    from warehouse.errors import IngestError
    from warehouse.records import Frame, Labels

    frame = Frame(numbers=np.array([29, 29]), positions=np.zeros((2, 3)) + [[0, 0, 0], [1, 1, 1]],
                  cell=np.eye(3) * 4, pbc=np.array([True] * 3), index=7,
                  labels=Labels(energy=-1.0, forces=np.zeros((1, 3))))
    with pytest.raises(IngestError, match=r"x\.xyz, frame 7: forces have 1 rows for 2 atoms"):
        validate_frame(frame, "x.xyz")


def test_nan_forces(cli, wh, tmp_path: Path, seeded) -> None:
    path = _good_xyz(tmp_path / "nan.xyz")
    lines = path.read_text().splitlines()
    header = [i for i, line in enumerate(lines) if "Properties=" in line]
    target = header[1] + 3  # frame 1, atom 2
    parts = lines[target].split()
    parts[-1] = "nan"
    lines[target] = " ".join(parts)
    path.write_text("\n".join(lines) + "\n")
    res = cli("ingest", "structures", path, "--dataset", "bad")
    _assert_clean_failure(res, wh, seeded, str(path), "frame 1", "NaN")


def test_gpumd_out_with_wrong_number_of_rows(cli, wh, tmp_path: Path, shared_data: Path, seeded) -> None:
    src = shared_data / "gpumd" / "nep_train_PbTe"
    folder = tmp_path / "nep"
    folder.mkdir()
    for name in ("train.xyz", "energy_train.out", "force_train.out", "virial_train.out"):
        shutil.copy(src / name, folder / name)
    lines = (folder / "force_train.out").read_text().splitlines()
    (folder / "force_train.out").write_text("\n".join(lines[:-1]) + "\n")
    res = cli("ingest", "gpumd", folder, "--model", "m", "--dataset", "pbte")
    _assert_clean_failure(res, wh, seeded, "force_train.out", "6249 rows", "6250 atoms", "line 6250")


def test_leaderboard_filter_that_matches_nothing(cli, wh, seeded) -> None:
    for args in (("--dataset", "nope"), ("--model", "nope"), ("--dataset", "seed")):
        res = cli("leaderboard", *args)
        _assert_clean_failure(res, wh, seeded)


def test_missing_file(cli, wh, tmp_path: Path, seeded) -> None:
    res = cli("ingest", "structures", tmp_path / "absent.xyz", "--dataset", "x")
    _assert_clean_failure(res, wh, seeded, "absent.xyz", "no such file")

"""GPUMD ``nep`` outputs: a training or prediction folder's ``*_train.out``/``*_test.out``.

Layout (GPUMD 3.x/4.x, "current"): ``energy_*.out`` one row per structure, ``pred ref`` in
eV/atom; ``force_*.out`` one row per atom, ``pred(3) ref(3)`` in eV/Å; ``virial_*.out`` one row per
structure, 6 pred + 6 ref in eV/atom ordered xx yy zz xy yz zx, positive under compression;
``stress_*.out`` the same in GPa. A reference of -1e6 means "no label". Rows follow the frames of
the matching ``train.xyz``/``test.xyz``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ingest.extxyz import parse_extxyz
from warehouse.records import Frame, Labels, PredictionFrame
from warehouse.errors import IngestError
from warehouse.units import EV_PER_A3_TO_GPA, gpumd_voigt_to_ase_order

NO_LABEL = -1e6
SPLITS = ("train", "test")


@dataclass(frozen=True, slots=True)
class GpumdOutputs:
    """Predicted values of one split, aligned with the frames of its xyz file."""

    xyz: Path
    energy: np.ndarray  # (n, 2): pred, ref in eV/atom
    force: np.ndarray  # (sum N, 6)
    virial: np.ndarray | None  # (n, 12) eV/atom, GPUMD order, or None


def _load_table(path: Path, ncols: tuple[int, ...]) -> np.ndarray:
    try:
        data = np.loadtxt(path, ndmin=2, dtype=np.float64)
    except ValueError as exc:
        raise IngestError(f"not a numeric table ({exc})", path=str(path)) from exc
    if data.size == 0:
        raise IngestError("file is empty", path=str(path))
    if data.shape[1] not in ncols:
        raise IngestError(
            f"has {data.shape[1]} columns, expected {' or '.join(map(str, ncols))}",
            path=str(path), where="line 1",
        )
    if not np.all(np.isfinite(data)):
        line = int(np.argwhere(~np.isfinite(data))[0][0]) + 1
        raise IngestError("contains NaN or inf", path=str(path), where=f"line {line}")
    return data


def find_splits(folder: str | Path) -> list[str]:
    folder = Path(folder)
    if not folder.is_dir():
        raise IngestError("not a folder", path=str(folder))
    found = [s for s in SPLITS if (folder / f"{s}.xyz").is_file() and (folder / f"energy_{s}.out").is_file()]
    if not found:
        raise IngestError(
            "no GPUMD outputs found: expected train.xyz with energy_train.out (and/or test.xyz with"
            " energy_test.out)",
            path=str(folder),
        )
    return found


def read_outputs(folder: str | Path, split: str) -> GpumdOutputs:
    folder = Path(folder)
    energy = _load_table(folder / f"energy_{split}.out", (2,))
    force = _load_table(folder / f"force_{split}.out", (6,))
    virial = None
    if (folder / f"virial_{split}.out").is_file():
        virial = _load_table(folder / f"virial_{split}.out", (12,))
    return GpumdOutputs(folder / f"{split}.xyz", energy, force, virial)


def _check_rows(out: GpumdOutputs, frames: list[Frame], folder: Path, split: str) -> None:
    n = len(frames)
    n_atoms = sum(f.n_atoms for f in frames)
    if len(out.energy) != n:
        raise IngestError(
            f"has {len(out.energy)} rows but {out.xyz.name} has {n} frames",
            path=str(folder / f"energy_{split}.out"), where=f"line {min(len(out.energy), n) + 1}",
        )
    if len(out.force) != n_atoms:
        raise IngestError(
            f"has {len(out.force)} rows but {out.xyz.name} has {n_atoms} atoms",
            path=str(folder / f"force_{split}.out"), where=f"line {min(len(out.force), n_atoms) + 1}",
        )
    if out.virial is not None and len(out.virial) != n:
        raise IngestError(
            f"has {len(out.virial)} rows but {out.xyz.name} has {n} frames",
            path=str(folder / f"virial_{split}.out"), where=f"line {min(len(out.virial), n) + 1}",
        )
    for i, f in enumerate(frames):
        if f.labels.energy is None:
            continue
        if abs(f.labels.energy / f.n_atoms - out.energy[i, 1]) > 1e-3:
            raise IngestError(
                f"reference energy {out.energy[i, 1]} eV/atom does not match frame {i} of"
                f" {out.xyz.name} ({f.labels.energy / f.n_atoms:.6f} eV/atom): these outputs belong"
                " to another structure file",
                path=str(folder / f"energy_{split}.out"), where=f"line {i + 1}",
            )


def parse_gpumd_split(folder: str | Path, split: str) -> tuple[list[Frame], list[PredictionFrame]]:
    """The structures (with DFT labels from the xyz) and the model's predictions of one split."""
    folder = Path(folder)
    out = read_outputs(folder, split)
    frames = list(parse_extxyz(out.xyz))
    _check_rows(out, frames, folder, split)
    return frames, list(_predictions(frames, out))


def _predictions(frames: list[Frame], out: GpumdOutputs) -> Iterator[PredictionFrame]:
    start = 0
    for i, f in enumerate(frames):
        n = f.n_atoms
        stress = None
        if out.virial is not None:
            # eV/atom, positive under compression -> sigma_ASE = -W/V (warehouse.units)
            w = gpumd_voigt_to_ase_order(out.virial[i, :6]) * n
            volume = abs(np.linalg.det(f.cell))
            stress = -w / volume * EV_PER_A3_TO_GPA
        labels = Labels(
            energy=float(out.energy[i, 0]) * n,
            forces=out.force[start : start + n, :3].copy(),
            stress=stress,
        )
        start += n
        pred = Frame(
            numbers=f.numbers, positions=f.positions, cell=f.cell, pbc=f.pbc, index=f.index,
            labels=labels,
        )
        yield PredictionFrame(frame=pred)

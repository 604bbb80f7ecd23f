"""GPUMD ``nep`` outputs: a training or prediction folder's ``*_train.out``/``*_test.out``.

Layout (GPUMD 3.x/4.x, "current"): ``energy_*.out`` one row per structure, ``pred ref`` in
eV/atom; ``force_*.out`` one row per atom, ``pred(3) ref(3)`` in eV/Å; ``virial_*.out`` one row per
structure, 6 pred + 6 ref in eV/atom ordered xx yy zz xy yz zx, positive under compression;
``stress_*.out`` the same in GPa. A reference of -1e6 means "no label". Rows follow the frames of
the matching ``train.xyz``/``test.xyz``.

Legacy layout (older GPUMD): ``virial_*.out`` has 2 columns (pred, ref) and 6 N_c rows,
component-major: the N_c xx values first, then yy, zz, xy, yz, zx; structures without a target
virial have reference 0. It is recognised by its column count and rearranged to the current
layout. References are always taken from the xyz file, never from the ``.out`` columns.

A ``prediction 1`` folder may have no xyz of its own: ``xyz=`` names the structure file the
outputs follow (e.g. the training folder's train.xyz). ``loss.out`` is read as the model's
training record (generation, losses, RMSEs of energy/force/virial for train and test).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from ingest.atoms import validate_labels
from ingest.labels import DEFAULT_KEYS, LabelKeys
from ingest.extxyz import parse_extxyz
from ingest.textio import reader_guard
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


def find_splits(folder: str | Path, xyz: str | Path | None = None) -> list[str]:
    """The splits (train/test) with outputs in ``folder`` and a structure file for each."""
    folder = Path(folder)
    if not folder.is_dir():
        raise IngestError("not a folder", path=str(folder))
    with_outputs = [s for s in SPLITS if (folder / f"energy_{s}.out").is_file()]
    if xyz is not None:
        if not Path(xyz).is_file():
            raise IngestError("no such file (given with --xyz)", path=str(xyz))
        if len(with_outputs) != 1:
            raise IngestError(
                f"--xyz names one structure file but the folder has outputs for {with_outputs or 'no split'};"
                " expected exactly one energy_*.out", path=str(folder))
        return with_outputs
    found = [s for s in with_outputs if (folder / f"{s}.xyz").is_file()]
    if not found:
        hint = (" (the outputs are here but not the structures: pass --xyz with the train.xyz they"
                " were computed on)") if with_outputs else ""
        raise IngestError(
            "no GPUMD outputs found: expected train.xyz with energy_train.out (and/or test.xyz with"
            " energy_test.out)" + hint,
            path=str(folder),
        )
    return found


def _legacy_virial(data: np.ndarray, path: Path) -> np.ndarray:
    """(6 N_c, 2) component-major pred/ref -> (N_c, 12) in the current layout."""
    if len(data) % 6:
        raise IngestError(f"legacy layout (2 columns) needs 6 rows per structure; has {len(data)} rows",
                          path=str(path))
    n = len(data) // 6
    pred = data[:, 0].reshape(6, n).T
    ref = data[:, 1].reshape(6, n).T
    return np.hstack([pred, ref])


def read_outputs(folder: str | Path, split: str, xyz: str | Path | None = None) -> GpumdOutputs:
    folder = Path(folder)
    energy = _load_table(folder / f"energy_{split}.out", (2,))
    force = _load_table(folder / f"force_{split}.out", (6,))
    virial = None
    vpath = folder / f"virial_{split}.out"
    if vpath.is_file():
        virial = _load_table(vpath, (12, 2))
        if virial.shape[1] == 2:
            virial = _legacy_virial(virial, vpath)
    return GpumdOutputs(Path(xyz) if xyz else folder / f"{split}.xyz", energy, force, virial)


LOSS_COLUMNS = ("generation", "loss_total", "loss_l1", "loss_l2", "rmse_energy_train",
                "rmse_force_train", "rmse_virial_train", "rmse_energy_test", "rmse_force_test",
                "rmse_virial_test")


@reader_guard
def read_loss(path: str | Path) -> tuple[pa.Table, dict[str, float]]:
    """GPUMD ``loss.out`` (potential training: 10 columns) as a table and a summary of its last row.

    RMSEs are in GPUMD's units: energy eV/atom, force eV/Å, virial eV/atom.
    """
    data = _load_table(Path(path), (10,))
    table = pa.table({name: data[:, k] for k, name in enumerate(LOSS_COLUMNS)})
    last = dict(zip(LOSS_COLUMNS, data[-1].tolist(), strict=True))
    summary = {"generations": int(last.pop("generation")), "rows": len(data),
               "units": "energy eV/atom, force eV/A, virial eV/atom", **last}
    return table, summary


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


@reader_guard
def parse_gpumd_split(
    folder: str | Path, split: str, xyz: str | Path | None = None, *,
    keys: LabelKeys = DEFAULT_KEYS,
) -> tuple[list[Frame], list[PredictionFrame]]:
    """The structures (with DFT labels from the xyz, read with ``keys``) and the model's
    predictions of one split."""
    folder = Path(folder)
    out = read_outputs(folder, split, xyz)
    frames = list(parse_extxyz(out.xyz, keys=keys))
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
            if not volume > 1e-8:  # a structure without a cell: no stress (and no division by 0)
                raise IngestError("a virial needs a periodic cell with a volume", path=str(out.xyz),
                                  where=f"frame {f.index}")
            stress = -w / volume * EV_PER_A3_TO_GPA
        labels = Labels(
            energy=float(out.energy[i, 0]) * n,
            forces=out.force[start : start + n, :3].copy(),
            stress=stress,
        )
        start += n
        # predicted values obey the bounds of docs/INPUT.md as references do (NaN is refused
        # when the tables are read)
        validate_labels(labels, n, path=str(out.xyz.parent), where=f"predictions of frame {f.index}")
        pred = Frame(
            numbers=f.numbers, positions=f.positions, cell=f.cell, pbc=f.pbc, index=f.index,
            labels=labels,
        )
        yield PredictionFrame(frame=pred)

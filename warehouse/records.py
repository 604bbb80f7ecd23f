"""Plain records that parsers yield and the loader writes. No database here.

Units are the warehouse's (see ``warehouse.units``): parsers convert before they yield.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

# Readers and the loader work in batches of about this many atoms: large enough that per-batch
# overhead (a Parquet file, a few bulk INSERTs, numpy calls) is amortised, small enough to bound
# memory.
BATCH_ATOMS = 250_000


@dataclass(slots=True)
class Labels:
    """Energy (eV, total), forces (eV/Å, N x 3), stress (GPa, ASE sign, Voigt). None = missing."""

    energy: float | None = None
    forces: NDArray[np.float64] | None = None
    stress: NDArray[np.float64] | None = None
    free_energy: float | None = None

    def is_empty(self) -> bool:
        return self.energy is None and self.forces is None and self.stress is None


@dataclass(slots=True)
class Frame:
    """One structure read from a file, with the labels found beside it.

    ``index`` is the frame's position in its source (0-based) and is used in error messages.
    """

    numbers: NDArray[np.int32]
    positions: NDArray[np.float64]
    cell: NDArray[np.float64]
    pbc: NDArray[np.bool_]
    index: int
    labels: Labels = field(default_factory=Labels)
    config_type: str | None = None
    weight: float | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def n_atoms(self) -> int:
        return int(self.numbers.shape[0])


@dataclass(slots=True)
class PredictionFrame:
    """A model's result on one structure; ``frame`` identifies the structure (its labels are the
    prediction). ``status`` is "ok" or "failed" with ``message``."""

    frame: Frame
    status: str = "ok"
    message: str | None = None


@dataclass(slots=True)
class FrameBatch:
    """Many frames as columns: per-atom arrays concatenated, per-frame values side by side.

    The loader works on batches (hashing, validation and row building are vectorised over them);
    a reader that can fill the columns directly skips the per-frame :class:`Frame` records.
    ``forces`` has a row for every atom; rows of frames without forces (``has_forces`` False)
    are zero and never stored. Stress is in GPa, Voigt order, as in :class:`Labels`.
    """

    counts: NDArray[np.int64]  # (F,) atoms per frame
    numbers: NDArray[np.int32]  # (N,)
    positions: NDArray[np.float64]  # (N, 3)
    cells: NDArray[np.float64]  # (F, 3, 3)
    pbcs: NDArray[np.bool_]  # (F, 3)
    index: list[int]  # each frame's position in its source
    energy: list[float | None]
    free_energy: list[float | None]
    stress: list[NDArray[np.float64] | None]
    forces: NDArray[np.float64]  # (N, 3)
    has_forces: NDArray[np.bool_]  # (F,)
    config_type: list[str | None]
    weight: list[float | None]
    _identity: tuple[list[str], list[str]] | None = None
    _description: Any = None  # warehouse.describe.Description, computed once

    def __len__(self) -> int:
        return len(self.index)

    @property
    def n_atoms(self) -> int:
        return int(self.numbers.shape[0])

    @property
    def offsets(self) -> NDArray[np.int64]:
        """(F + 1,) start of each frame's atoms in the per-atom arrays, then their total."""
        return np.concatenate([[0], np.cumsum(self.counts)])

    def identity(self) -> tuple[list[str], list[str]]:
        """Each structure's content hash and order-free hash (computed once, then kept: a
        reader thread can compute them ahead of the loader)."""
        if self._identity is None:
            from warehouse.hashing import structure_hashes_batch

            hashes, free, _ = structure_hashes_batch(self.numbers, self.positions, self.cells,
                                                     self.pbcs, self.counts, with_orders=False)
            self._identity = (hashes, free)
        return self._identity

    def description(self):
        """Formula, elements, cell text, pbc text and volume of every structure
        (:func:`warehouse.describe.describe_structures`), computed once, then kept."""
        if self._description is None:
            from warehouse.describe import describe_structures

            self._description = describe_structures(self.numbers, self.counts, self.cells,
                                                    self.pbcs)
        return self._description

    def has_labels(self, i: int) -> bool:
        return (self.energy[i] is not None or self.stress[i] is not None
                or bool(self.has_forces[i]))

    @classmethod
    def from_frames(cls, frames: list[Frame]) -> FrameBatch:
        counts = np.fromiter((f.n_atoms for f in frames), dtype=np.int64, count=len(frames))
        has_forces = np.fromiter((f.labels.forces is not None for f in frames), dtype=np.bool_,
                                 count=len(frames))
        forces = [f.labels.forces if f.labels.forces is not None else np.zeros((f.n_atoms, 3))
                  for f in frames]
        return cls(
            counts=counts,
            numbers=np.concatenate([f.numbers for f in frames]).astype(np.int32, copy=False),
            positions=np.concatenate([f.positions for f in frames]).reshape(-1, 3),
            cells=np.stack([f.cell for f in frames]).reshape(-1, 3, 3),
            pbcs=np.stack([f.pbc for f in frames]).reshape(-1, 3),
            index=[f.index for f in frames],
            energy=[f.labels.energy for f in frames],
            free_energy=[f.labels.free_energy for f in frames],
            stress=[f.labels.stress for f in frames],
            forces=np.concatenate(forces).reshape(-1, 3).astype(np.float64, copy=False),
            has_forces=has_forces,
            config_type=[f.config_type for f in frames],
            weight=[f.weight for f in frames],
        )

    def frame(self, i: int) -> Frame:
        """Frame ``i`` of the batch as a :class:`Frame` (its arrays are views into the batch's)."""
        lo = int(self.counts[:i].sum())
        return self._frame(i, lo, lo + int(self.counts[i]))

    def frames(self) -> list[Frame]:
        """The batch as :class:`Frame` records (their arrays are views into the batch's)."""
        bounds = self.offsets.tolist()
        return [self._frame(i, bounds[i], bounds[i + 1]) for i in range(len(self))]

    def _frame(self, i: int, lo: int, hi: int) -> Frame:
        labels = Labels(self.energy[i], self.forces[lo:hi] if self.has_forces[i] else None,
                        self.stress[i], self.free_energy[i])
        return Frame(self.numbers[lo:hi], self.positions[lo:hi], self.cells[i], self.pbcs[i],
                     self.index[i], labels, self.config_type[i], self.weight[i])

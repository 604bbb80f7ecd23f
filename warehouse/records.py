"""Plain records that parsers yield and the loader writes. No database here.

Units are the warehouse's (see ``warehouse.units``): parsers convert before they yield.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray


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

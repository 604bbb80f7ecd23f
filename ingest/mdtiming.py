"""MD cost of a calculator (docs/COST.md): NVE velocity-Verlet steps of a supercell, ``warmup``
steps untimed (model set-up, neighbour lists, JIT, caches), then ``steps`` timed; on a CUDA
device the clock is read only after synchronising it, and torch's peak device memory is
recorded.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from ase import Atoms, units
from ase.formula import Formula
from ase.md import velocitydistribution as _vd
from ase.md.verlet import VelocityVerlet

from ingest.hardware import peak_memory_mb, reset_peak_memory, synchroniser
from ingest.inference import as_provider

DEFAULT_MD_ATOMS = 256
DEFAULT_MD_STEPS = 20
DEFAULT_WARMUP_STEPS = 5
TIMESTEP_FS = 1.0
TEMPERATURE_K = 300.0
MD_SEED = 0


@dataclass(slots=True)
class MDTiming:
    n_atoms: int
    n_steps: int
    warmup_steps: int
    repeat: tuple[int, int, int]
    composition: str
    wall_s: float | None = None
    peak_memory_mb: float | None = None
    message: str | None = None  # why it failed, when it did

    @property
    def atom_steps_per_s(self) -> float | None:
        return self.n_atoms * self.n_steps / self.wall_s if self.wall_s else None


def supercell_repeats(n_cell: int, target: int, lengths: Sequence[float] = (1.0, 1.0, 1.0)) -> tuple[int, int, int]:
    """The repeat (a, b, c) with the fewest cells giving >= ``target`` atoms, most cube-like."""
    need = max(1, math.ceil(target / n_cell))
    best: tuple[float, tuple[int, int, int]] | None = None
    limit = max(2, math.ceil(need ** (1 / 3)) * 4)
    for rep in itertools.product(range(1, min(need, limit) + 1), repeat=3):
        count = rep[0] * rep[1] * rep[2]
        if count < need:
            continue
        sides = [r * length for r, length in zip(rep, lengths, strict=True)]
        key = (count, max(sides) / min(sides))
        if best is None or key < best[0]:
            best = (key, rep)
    assert best is not None  # (limit, limit, limit) always qualifies
    return best[1]


def _thermalise(atoms: Atoms) -> None:
    rng = np.random.default_rng(MD_SEED)
    if hasattr(_vd, "thermalize_momenta"):  # ASE >= 3.29
        _vd.thermalize_momenta(atoms, TEMPERATURE_K, rng=rng)
    else:
        _vd.MaxwellBoltzmannDistribution(atoms, temperature_K=TEMPERATURE_K, rng=rng)
    _vd.Stationary(atoms)


def time_md(
    calc: Any, cell: Atoms, *, n_atoms: int, steps: int = DEFAULT_MD_STEPS,
    warmup: int = DEFAULT_WARMUP_STEPS, device: str = "cpu",
) -> MDTiming:
    """Time ``steps`` NVE velocity-Verlet steps of a supercell of ``cell`` with >= n_atoms atoms."""
    rep = supercell_repeats(len(cell), n_atoms, cell.cell.lengths() if cell.cell.rank == 3 else (1, 1, 1))
    atoms = cell.repeat(rep)
    formula = Formula.from_list(atoms.get_chemical_symbols()).format("metal")
    out = MDTiming(len(atoms), steps, warmup, rep, formula)
    sync = synchroniser(device)
    try:
        atoms.calc = as_provider(calc)(atoms)
        _thermalise(atoms)
        dyn = VelocityVerlet(atoms, timestep=TIMESTEP_FS * units.fs)
        dyn.run(warmup)
        sync()
        reset_peak_memory(device)
        t0 = time.perf_counter()
        dyn.run(steps)
        sync()
        out.wall_s = time.perf_counter() - t0
        out.peak_memory_mb = peak_memory_mb(device)
    except Exception as exc:  # a calculator that cannot run MD is a result, not a crash
        out.message = f"{type(exc).__name__}: {exc}"[:2000]
    return out

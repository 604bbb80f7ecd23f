"""Run an ASE calculator over stored structures and turn its results into prediction records.

A calculator that raises on one structure records that structure as failed, with the message,
and goes on: failures are data, never dropped.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, PropertyNotImplementedError

from warehouse.records import Frame, Labels, PredictionFrame
from warehouse.units import ase_stress_to_gpa


@dataclass
class EvalClock:
    """Wall time spent inside the calculator, and the atoms it saw."""

    seconds: float = 0.0
    n_atoms: int = 0
    n_structures: int = 0
    per_structure: list[float] = field(default_factory=list)


def frame_to_atoms(frame: Frame) -> Atoms:
    return Atoms(numbers=frame.numbers, positions=frame.positions, cell=frame.cell, pbc=frame.pbc)


def evaluate_frames(
    calc: Calculator, frames: Iterable[Frame], *, clock: EvalClock | None = None,
    stress: bool = True,
) -> Iterator[PredictionFrame]:
    """Yield one prediction per frame: energy, forces, and stress where the system is periodic."""
    clock = clock if clock is not None else EvalClock()
    for frame in frames:
        atoms = frame_to_atoms(frame)
        atoms.calc = calc
        t0 = time.perf_counter()
        try:
            energy = float(atoms.get_potential_energy())
            forces = np.array(atoms.get_forces(), dtype=np.float64)
            s = None
            if stress and atoms.pbc.all():
                try:
                    s = ase_stress_to_gpa(atoms.get_stress(voigt=True))
                except PropertyNotImplementedError:
                    s = None
            labels = Labels(energy=energy, forces=forces, stress=s)
            status, message = "ok", None
            if not (np.isfinite(energy) and np.all(np.isfinite(forces))):
                labels, status, message = Labels(), "failed", "calculator returned NaN or inf"
        except Exception as exc:  # any calculator error is recorded against this structure
            labels, status = Labels(), "failed"
            message = f"{type(exc).__name__}: {exc}"[:2000]
        dt = time.perf_counter() - t0
        clock.seconds += dt
        clock.n_atoms += frame.n_atoms
        clock.n_structures += 1
        clock.per_structure.append(dt)
        yield PredictionFrame(
            frame=Frame(frame.numbers, frame.positions, frame.cell, frame.pbc, frame.index, labels),
            status=status, message=message,
        )

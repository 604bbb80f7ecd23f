"""Calling an ASE calculator on stored structures: one prediction per structure, a failure
recorded with its reason (never dropped), the time spent inside the calculator counted.

Used by ``warehouse evaluate`` (:mod:`ingest.evaluate`) and its benchmarks.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.calculator import PropertyNotImplementedError

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


def as_provider(calc: Any) -> Callable[[Atoms], Any]:
    if hasattr(calc, "get_potential_energy"):
        return lambda atoms: calc
    if callable(calc):
        return calc
    raise TypeError(f"{calc!r} is neither an ASE calculator nor a function giving one")


class Calculators:
    """Hands out the calculator for each structure, and a new one after any exception.

    A calculator that raised may be left half-updated: ASE's EMT, refused a species, keeps the
    structure but not its neighbour list, and then fails every later structure with
    ``AttributeError: 'EMT' object has no attribute 'nl'``, hiding the real reason. ``build``
    makes an ASE calculator (e.g. ``EMT``) or a provider ``atoms -> calculator`` (e.g.
    ``CalculatorSpec.provider``).

    What a provider offers beside the call (:data:`PASSED_THROUGH`: a uMLIP's batched path and
    its species check) is offered here too, always on the current provider, so wrapping one
    does not turn batching off.
    """

    PASSED_THROUGH = ("predict_batch", "check_species")

    def __init__(self, build: Callable[[], Callable[[Atoms], Any]], *, first: bool = True) -> None:
        self._build = build
        # built now by default: a spec that cannot build a calculator fails the command, not
        # every structure
        self._provider: Callable[[Atoms], Any] | None = self._new() if first else None

    def _new(self) -> Callable[[Atoms], Any]:
        return as_provider(self._build())  # build may give a calculator or a provider

    def _current(self) -> Callable[[Atoms], Any]:
        if self._provider is None:
            self._provider = self._new()
        return self._provider

    def __call__(self, atoms: Atoms) -> Any:
        return self._current()(atoms)

    def __getattr__(self, name: str) -> Any:
        # only for names not found the ordinary way; getattr(calcs, name, None) is None when
        # the provider has no such method
        if name not in Calculators.PASSED_THROUGH or getattr(self._current(), name, None) is None:
            raise AttributeError(name)
        return lambda *args, **kwargs: getattr(self._current(), name)(*args, **kwargs)

    def discard(self) -> None:
        """Forget the current calculator: the next structure gets a new one."""
        self._provider = None


def _after_exception(pick: Callable[[Atoms], Any], calc: Any) -> None:
    if isinstance(pick, Calculators):
        pick.discard()
    elif hasattr(calc, "reset"):  # a bare ASE calculator: forget its state (EMT's, above)
        calc.reset()


def evaluate_frames(
    calc: Any, frames: Iterable[Frame], *, clock: EvalClock | None = None, stress: bool = True,
    batch_size: int = 1,
) -> Iterator[PredictionFrame]:
    """Yield one prediction per frame: energy, forces, and stress where the system is periodic.

    ``calc`` is an ASE calculator, a function ``atoms -> calculator`` or :class:`Calculators`
    (which gives a new calculator after an exception; a bare ASE calculator is ``reset()``
    instead). The calculator is called with the structure (``calc.get_forces(atoms)``) rather than attached to it: attaching
    (``atoms.calc = calc``) resets some calculators' state per structure (calorine's CPUNEP
    re-reads its model file, 50-100x the cost of evaluating a small cell).

    With ``batch_size`` > 1 and a provider that has ``predict_batch`` (the uMLIPs of
    :mod:`ingest.umlip`), frames go to the model ``batch_size`` at a time; a batch that raises
    is evaluated again one structure at a time, so each failure carries its own reason.
    """
    clock = clock if clock is not None else EvalClock()
    pick = calc if isinstance(calc, Calculators) else as_provider(calc)
    frames = iter(frames)
    if (head := next(frames, None)) is None:
        return  # nothing to evaluate: a lazy Calculators is not built just to ask about batches
    frames = itertools.chain([head], frames)
    batched = getattr(pick, "predict_batch", None) if batch_size > 1 else None
    if batched is None:
        for frame in frames:
            yield _evaluate_one(pick, frame, clock, stress)
        return
    for chunk in _chunks(frames, batch_size):
        yield from _evaluate_batch(batched, pick, chunk, clock, stress)


def _chunks(frames: Iterable[Frame], size: int) -> Iterator[list[Frame]]:
    it = iter(frames)
    while chunk := list(itertools.islice(it, size)):
        yield chunk


def _labels_or_failure(energy: float, forces: np.ndarray, s: np.ndarray | None) -> tuple[Labels, str, str | None]:
    if not (np.isfinite(energy) and np.all(np.isfinite(forces))):
        return Labels(), "failed", "calculator returned NaN or inf"
    return Labels(energy=energy, forces=forces, stress=s), "ok", None


def _prediction(frame: Frame, labels: Labels, status: str, message: str | None) -> PredictionFrame:
    return PredictionFrame(
        frame=Frame(frame.numbers, frame.positions, frame.cell, frame.pbc, frame.index, labels),
        status=status, message=message,
    )


def _evaluate_batch(batched: Callable[[list[Atoms]], list[Any]], pick: Callable[[Atoms], Any],
                    chunk: list[Frame], clock: EvalClock, stress: bool) -> Iterator[PredictionFrame]:
    atoms = [frame_to_atoms(f) for f in chunk]
    t0 = time.perf_counter()
    try:
        # results come back as numpy arrays, copied off the device: the clock is read after
        # the device finished (a CUDA copy to the host synchronises)
        results = batched(atoms)
    except Exception:  # retried one at a time below: each structure gets its own reason
        results = None
    dt = time.perf_counter() - t0
    if results is None:
        clock.seconds += dt  # the failed attempt was spent too
        for frame in chunk:
            yield _evaluate_one(pick, frame, clock, stress)
        return
    n_atoms = sum(f.n_atoms for f in chunk)
    clock.seconds += dt
    clock.n_atoms += n_atoms
    clock.n_structures += len(chunk)
    for frame, r in zip(chunk, results, strict=True):
        clock.per_structure.append(dt * frame.n_atoms / max(n_atoms, 1))  # a batch's share
        s = r.stress_gpa if stress and frame.pbc.all() else None
        yield _prediction(frame, *_labels_or_failure(r.energy, r.forces, s))


def _evaluate_one(pick: Callable[[Atoms], Any], frame: Frame, clock: EvalClock,
                  stress: bool) -> PredictionFrame:
    atoms = frame_to_atoms(frame)
    c = None
    t0 = time.perf_counter()
    try:
        c = pick(atoms)
        check = getattr(pick, "check_species", None)
        if check is not None:  # a uMLIP names the element it lacks (the model may not)
            check(atoms)
        energy = float(c.get_potential_energy(atoms))
        forces = np.array(c.get_forces(atoms), dtype=np.float64)
        s = None
        if stress and atoms.pbc.all():
            try:
                s = ase_stress_to_gpa(c.get_stress(atoms))
            except PropertyNotImplementedError:
                s = None
        labels, status, message = _labels_or_failure(energy, forces, s)
    except Exception as exc:  # any calculator error is recorded against this structure
        labels, status = Labels(), "failed"
        message = f"{type(exc).__name__}: {exc}"[:2000]
        _after_exception(pick, c)
    dt = time.perf_counter() - t0
    clock.seconds += dt
    clock.n_atoms += frame.n_atoms
    clock.n_structures += 1
    clock.per_structure.append(dt)
    return _prediction(frame, labels, status, message)

"""Run an ASE calculator over stored structures: predictions and timings in one provenance run.

A calculator that raises on one structure records that structure as failed, with the message,
and goes on: failures are data, never dropped.

Timing protocol (docs/COST.md): single-point inference over the dataset is timed inside the
loop (calculator calls only); MD cost is timed on a given cell, by default a supercell of the
dataset's first structure, as ``warmup`` NVE velocity-Verlet steps (not timed: model set-up,
neighbour lists, JIT, caches) followed by ``steps`` timed steps; on a CUDA device the clock is
read only after synchronising it, and torch's peak device memory is recorded. Each size in
``sizes`` gives one record of a scaling series.
"""

from __future__ import annotations

import itertools
import math
import pickle
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms, units
from ase.calculators.calculator import PropertyNotImplementedError
from ase.formula import Formula
from ase.md import velocitydistribution as _vd
from ase.md.verlet import VelocityVerlet

from ingest.calculators import CalculatorSpec, parse_calculator_spec
from ingest.hardware import (
    Hardware, detect_hardware, max_rss_mb, peak_memory_mb, reset_peak_memory, synchroniser,
)
from ingest.loader import IngestSummary, ingest_run
from ingest.timings import TimingRecord, add_timings
from warehouse.core import Warehouse
from warehouse.errors import IngestError
from warehouse.records import Frame, Labels, PredictionFrame
from warehouse.structures import iter_dataset_frames
from warehouse.units import ase_stress_to_gpa

DEFAULT_MD_ATOMS = 256
DEFAULT_MD_STEPS = 20
DEFAULT_WARMUP_STEPS = 5
TIMESTEP_FS = 1.0
TEMPERATURE_K = 300.0
MD_SEED = 0


@dataclass
class EvalClock:
    """Wall time spent inside the calculator, and the atoms it saw."""

    seconds: float = 0.0
    n_atoms: int = 0
    n_structures: int = 0
    per_structure: list[float] = field(default_factory=list)


def frame_to_atoms(frame: Frame) -> Atoms:
    return Atoms(numbers=frame.numbers, positions=frame.positions, cell=frame.cell, pbc=frame.pbc)


def _as_provider(calc: Any) -> Callable[[Atoms], Any]:
    if hasattr(calc, "get_potential_energy"):
        return lambda atoms: calc
    if callable(calc):
        return calc
    raise TypeError(f"{calc!r} is neither an ASE calculator nor a function giving one")


def evaluate_frames(
    calc: Any, frames: Iterable[Frame], *, clock: EvalClock | None = None, stress: bool = True,
    batch_size: int = 1,
) -> Iterator[PredictionFrame]:
    """Yield one prediction per frame: energy, forces, and stress where the system is periodic.

    ``calc`` is an ASE calculator or a function ``atoms -> calculator``. The calculator is
    called with the structure (``calc.get_forces(atoms)``) rather than attached to it: attaching
    (``atoms.calc = calc``) resets some calculators' state per structure (calorine's CPUNEP
    re-reads its model file, 50-100x the cost of evaluating a small cell).

    With ``batch_size`` > 1 and a provider that has ``predict_batch`` (the uMLIPs of
    :mod:`ingest.umlip`), frames go to the model ``batch_size`` at a time; a batch that raises
    is evaluated again one structure at a time, so each failure carries its own reason.
    """
    clock = clock if clock is not None else EvalClock()
    pick = _as_provider(calc)
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
    dt = time.perf_counter() - t0
    clock.seconds += dt
    clock.n_atoms += frame.n_atoms
    clock.n_structures += 1
    clock.per_structure.append(dt)
    return _prediction(frame, labels, status, message)


# -- MD timing -------------------------------------------------------------------------------

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
        atoms.calc = _as_provider(calc)(atoms)
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


# -- the command -----------------------------------------------------------------------------

@dataclass
class EvaluateResult:
    summary: IngestSummary
    hardware: Hardware
    clock: EvalClock
    md: list[MDTiming]


class _Spool:
    """Predictions written to a temporary file as they are made and read back for the ingest.

    Evaluation then holds one batch in memory however large the dataset, and no database
    transaction is open while the model runs (an open SQLite write would block every other
    ingest for the whole evaluation). The file is this process's own, so pickle is safe here.
    """

    def __init__(self) -> None:
        self.file = tempfile.TemporaryFile(prefix="warehouse-evaluate-")
        self.n_failed = 0
        self.first_ok_periodic: Frame | None = None  # the default MD cell

    def write(self, preds: Iterable[PredictionFrame]) -> None:
        for p in preds:
            if p.status != "ok":
                self.n_failed += 1
            elif self.first_ok_periodic is None and p.frame.pbc.all():
                self.first_ok_periodic = p.frame
            pickle.dump(p, self.file, protocol=pickle.HIGHEST_PROTOCOL)

    def read(self) -> Iterator[PredictionFrame]:
        self.file.seek(0)
        while True:
            try:
                yield pickle.load(self.file)
            except EOFError:
                return


def _md_cell(first_ok_periodic: Frame | None, cell: str | Path | None) -> tuple[Atoms, str]:
    if cell is not None:
        from ase.io import read

        try:
            atoms = read(str(cell), index=0)
        except Exception as exc:
            raise IngestError(f"cannot read the MD cell: {exc}", path=str(cell)) from None
        return atoms, str(cell)
    if first_ok_periodic is not None:
        return frame_to_atoms(first_ok_periodic), f"dataset frame {first_ok_periodic.index}"
    raise IngestError("no periodic structure of the dataset evaluated cleanly to run MD on; pass"
                      " --cell FILE or --md-steps 0")


def _md_records(spec: CalculatorSpec, hw: Hardware, runs: list[MDTiming], *, source: str,
                dataset: str, scaling: bool) -> list[TimingRecord]:
    name, ver = spec.software
    out = []
    for r in runs:
        extra = {
            "protocol": "ase-velocity-verlet-nve", "warmup_steps": r.warmup_steps,
            "timestep_fs": TIMESTEP_FS, "temperature_k": TEMPERATURE_K, "seed": MD_SEED,
            "repeat": list(r.repeat), "cell": source, "dataset": dataset, "scaling": scaling,
            "calculator": spec.text, "max_rss_mb": max_rss_mb(),
        }
        if r.message:
            extra.update(status="failed", message=r.message)
        out.append(TimingRecord(
            task="md", **hw.columns(), software=name, software_version=ver,
            precision=spec.precision, system=f"{r.composition} {source} x{'x'.join(map(str, r.repeat))}",
            composition=r.composition, n_atoms=r.n_atoms, n_steps=r.n_steps, wall_s=r.wall_s,
            peak_memory_mb=r.peak_memory_mb, extra=extra,
        ))
    return out


def run_evaluate(
    wh: Warehouse,
    *,
    model: str,
    calculator: str,
    dataset: str,
    device: str = "cpu",
    batch_size: int = 1,
    md_steps: int = DEFAULT_MD_STEPS,
    warmup_steps: int = DEFAULT_WARMUP_STEPS,
    sizes: Sequence[int] = (),
    cell: str | Path | None = None,
    argv: list[str] | None = None,
) -> EvaluateResult:
    """``warehouse evaluate``: predictions over ``dataset`` plus inference and MD timings.

    The dataset is streamed through the calculator into a spool file (:class:`_Spool`), so
    peak memory does not grow with the dataset; the ingest then reads the spool back.
    """
    spec = parse_calculator_spec(calculator)
    if md_steps < 0 or warmup_steps < 0 or batch_size < 1 or any(n <= 0 for n in sizes):
        raise IngestError("--md-steps, --warmup, --batch-size and --sizes must be positive")
    device = spec.resolve_device(device)
    provider = spec.provider(device)
    clock = EvalClock()
    spool = _Spool()
    reset_peak_memory(device)
    frames = (f for _, f in iter_dataset_frames(wh, dataset))
    spool.write(evaluate_frames(provider, frames, clock=clock, batch_size=batch_size))
    if not clock.n_structures:
        raise IngestError(f"dataset {dataset!r} has no structures")
    inference_peak = peak_memory_mb(device)
    hw = detect_hardware(device)
    md: list[MDTiming] = []
    source = ""
    if md_steps:
        atoms, source = _md_cell(spool.first_ok_periodic, cell)
        for n in sizes or (DEFAULT_MD_ATOMS,):
            run = time_md(provider, atoms, n_atoms=n, steps=md_steps, warmup=warmup_steps,
                          device=device)
            if all(r.repeat != run.repeat for r in md):  # sizes below the cell's give the cell
                md.append(run)
    name, ver = spec.software
    n_failed = spool.n_failed
    batched = batch_size > 1 and hasattr(provider, "predict_batch")
    inference = TimingRecord(
        task="inference", **hw.columns(), software=name, software_version=ver,
        precision=spec.precision, system=f"dataset {dataset}", n_atoms=clock.n_atoms, n_steps=1,
        wall_s=clock.seconds, peak_memory_mb=inference_peak, extra={
            "protocol": "single-point energy, forces and stress per structure; calculator calls"
                        " only", "dataset": dataset, "n_structures": clock.n_structures,
            "n_failed": n_failed, "calculator": spec.text, "max_rss_mb": max_rss_mb(),
            "device": device, "batch_size": batch_size if batched else 1,
        })
    files = spec.files
    attrs = spec.model_attrs()
    with ingest_run(wh, kind="evaluate", source=f"{spec.text} on dataset {dataset}",
                    source_sha256=attrs.get("file_sha256"), argv=argv) as ld:
        level = attrs.pop("level_of_theory", None)  # (name, attributes) of the training data
        if level is not None:
            attrs["level_of_theory_id"] = ld.level_of_theory(level[0], **level[1])
        model_id = ld.model(model, **attrs)
        ld.add_predictions(model_id, spool.read(), path=f"dataset {dataset}")
        add_timings(ld, [inference, *_md_records(spec, hw, md, source=source, dataset=dataset,
                                                 scaling=bool(sizes))], model_id=model_id)
        ld.summary.notes.append(
            f"{spec.text} on {dataset}: {clock.n_structures} structures ({n_failed} failed),"
            f" {clock.n_atoms} atoms, {clock.seconds:.3f} s in the calculator"
            + (f" (batches of {batch_size})" if batched else "") + f"; hardware {hw.label}")
        for r in md:
            ld.summary.notes.append(
                f"MD {r.composition} ({r.n_atoms} atoms): " + (
                    f"{r.n_steps} steps in {r.wall_s:.3f} s = {r.atom_steps_per_s:.4g} atom-steps/s"
                    if r.wall_s else f"failed: {r.message}"))
        if files:
            ld.summary.notes.append("model files: " + ", ".join(map(str, files[:3]))
                                    + (" ..." if len(files) > 3 else ""))
    spool.file.close()
    return EvaluateResult(ld.summary, hw, clock, md)

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
from ase.data import chemical_symbols
from ase.formula import Formula
from ase.md import velocitydistribution as _vd
from ase.md.verlet import VelocityVerlet
from sqlalchemy import func, select

from ingest.binding import Binding, bound_model, precheck, versioned_name
from ingest.calculators import CalculatorSpec, parse_calculator_spec
from ingest.hardware import (
    Hardware, detect_hardware, max_rss_mb, peak_memory_mb, reset_peak_memory, synchroniser,
)
from ingest.loader import IngestSummary, ingest_run
from ingest.timings import TimingRecord, add_timings
from warehouse import models as m
from warehouse.core import Warehouse
from warehouse.errors import IngestError, NotFound
from warehouse.names import check_name
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
        return _as_provider(self._build())  # build may give a calculator or a provider

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
    pick = calc if isinstance(calc, Calculators) else _as_provider(calc)
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

TIMING_MODES = ("always", "auto", "never")
MD_PROTOCOL = "ase-velocity-verlet-nve"


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
        self.n_written = 0
        self.n_failed = 0
        self.first_failure: str | None = None  # the first failed prediction's message
        self.first_ok_periodic: Frame | None = None  # a candidate MD cell

    def write(self, preds: Iterable[PredictionFrame]) -> None:
        for p in preds:
            self.n_written += 1
            if p.status != "ok":
                self.n_failed += 1
                if self.first_failure is None:
                    self.first_failure = p.message
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


def missing_species(frame: Frame, have: frozenset[str] | None) -> list[str]:
    """The species of ``frame`` outside ``have`` (the calculator's declared elements; None: it
    does not declare them, so nothing is missing)."""
    if have is None:
        return []
    return sorted({chemical_symbols[z] for z in np.unique(frame.numbers)} - have)


def _refused(frame: Frame, label: str, missing: list[str]) -> PredictionFrame:
    return PredictionFrame(
        frame=Frame(frame.numbers, frame.positions, frame.cell, frame.pbc, frame.index, Labels()),
        status="failed", message=f"{label} has no parameters for {', '.join(missing)}")


@dataclass
class _Plan:
    """What one ``warehouse evaluate`` does, decided structure by structure as the dataset
    streams past (:meth:`todo`), so the dataset is never held in memory: a structure with a
    prediction of the model is skipped (unless ``again``), one with a species the calculator
    declares no parameters for is refused (a failed prediction, straight to the spool), the
    rest are evaluated. Only the ids of the stored predictions are read up front."""

    stored: dict[int, str]  # structure id -> status of the model's stored prediction
    have: frozenset[str] | None  # the calculator's declared elements
    label: str
    again: bool  # every structure again (--timing always: a whole-dataset inference timing)
    n_members: int = 0
    n_todo: int = 0
    n_refused: int = 0
    n_skipped: int = 0  # already had a prediction
    n_uncovered: int = 0
    missing: set[str] = field(default_factory=set)
    first_ok_stored: Frame | None = None  # first periodic member with a stored ok prediction

    def todo(self, members: Iterable[tuple[int, Frame]], spool: _Spool) -> Iterator[Frame]:
        for sid, f in members:
            self.n_members += 1
            lack = missing_species(f, self.have)
            if lack:
                self.missing.update(lack)
                self.n_uncovered += 1
            if (self.first_ok_stored is None and self.stored.get(sid) == "ok"
                    and f.pbc.all()):
                self.first_ok_stored = f
            if not self.again and sid in self.stored:
                self.n_skipped += 1
            elif lack:
                self.n_refused += 1
                spool.write([_refused(f, self.label, lack)])
            else:
                self.n_todo += 1
                yield f

    @property
    def whole(self) -> bool:
        """Every member evaluated or refused in this run (an inference timing of the dataset)."""
        return self.n_skipped == 0


def _n_members(wh: Warehouse, dataset: str) -> int:
    with wh.session() as s:
        ds = s.scalar(select(m.Dataset.id).where(m.Dataset.name == dataset))
        if ds is None:
            raise NotFound(f"no dataset named {dataset!r}; `warehouse info` lists them")
        return int(s.scalar(select(func.count()).select_from(m.DatasetMember)
                            .where(m.DatasetMember.dataset_id == ds)) or 0)


def _stored_status(wh: Warehouse, model: str, dataset: str) -> dict[int, str]:
    """structure id -> status of ``model``'s stored prediction, for the members of ``dataset``."""
    with wh.session() as s:
        return dict(s.execute(
            select(m.Prediction.structure_id, m.Prediction.status)
            .join(m.Model, m.Model.id == m.Prediction.model_id)
            .join(m.DatasetMember, m.DatasetMember.structure_id == m.Prediction.structure_id)
            .join(m.Dataset, m.Dataset.id == m.DatasetMember.dataset_id)
            .where(m.Model.name == model, m.Dataset.name == dataset)).all())


def _md_cell(plan: _Plan, spool: _Spool, cell: str | Path | None,
             model: str) -> tuple[Atoms | None, str]:
    """The MD cell and where it came from, or (None, why there is none): a given file, else the
    first periodic member (in dataset order) whose prediction, stored or made now, is ok."""
    if cell is not None:
        from ase.io import read

        try:
            atoms = read(str(cell), index=0)
        except Exception as exc:
            raise IngestError(f"cannot read the MD cell: {exc}", path=str(cell)) from None
        return atoms, str(cell)
    found = [f for f in (plan.first_ok_stored, spool.first_ok_periodic) if f is not None]
    if found:
        f = min(found, key=lambda f: f.index)
        return frame_to_atoms(f), f"dataset frame {f.index}"
    if spool.n_failed and spool.n_failed == spool.n_written and "ok" not in plan.stored.values():
        return None, (f"every structure failed (first reason: {spool.first_failure});"
                      f" `warehouse failures --model {model}` lists them")
    return None, "no periodic structure of the dataset evaluated cleanly; pass --cell FILE"


def _timed_before(wh: Warehouse, model: str, spec: CalculatorSpec, hw: Hardware, *,
                  steps: int, warmup: int, source: str) -> set[int]:
    """Atom counts of ``model``'s MD timings (failed ones included) under this protocol, cell
    and precision on this hardware class."""
    software, _ = spec.software
    with wh.session() as s:
        rows = s.execute(
            select(m.Timing.n_atoms, m.Timing.extra).join(m.Model, m.Model.id == m.Timing.model_id)
            .where(m.Model.name == model, m.Timing.task == "md", m.Timing.n_steps == steps,
                   m.Timing.hardware.is_not_distinct_from(hw.label),
                   m.Timing.software.is_not_distinct_from(software),
                   m.Timing.precision.is_not_distinct_from(spec.precision))).all()
    return {int(n) for n, extra in rows if n is not None and isinstance(extra, dict)
            and extra.get("protocol") == MD_PROTOCOL and extra.get("warmup_steps") == warmup
            and extra.get("cell") == source}


def _md_records(spec: CalculatorSpec, hw: Hardware, runs: list[MDTiming], *, source: str,
                dataset: str, scaling: bool) -> list[TimingRecord]:
    name, ver = spec.software
    out = []
    for r in runs:
        extra = {
            "protocol": MD_PROTOCOL, "warmup_steps": r.warmup_steps,
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


def _run_md(wh: Warehouse, calcs: Calculators, atoms: Atoms, source: str, *, name: str,
            spec: CalculatorSpec, hw: Hardware, sizes: Sequence[int], steps: int, warmup: int,
            device: str, timing: str, notes: list[str]) -> list[MDTiming]:
    """The MD timings this run measures: every size, less (``auto``) those the model has."""
    done = set() if timing == "always" else _timed_before(
        wh, name, spec, hw, steps=steps, warmup=warmup, source=source)
    lengths = atoms.cell.lengths() if atoms.cell.rank == 3 else (1, 1, 1)
    md: list[MDTiming] = []
    for n in sizes or (DEFAULT_MD_ATOMS,):
        rep = supercell_repeats(len(atoms), n, lengths)
        n_atoms = len(atoms) * int(np.prod(rep))
        if any(r.repeat == rep for r in md):  # sizes below the cell's give the cell
            continue
        if n_atoms in done:
            notes.append(f"MD timing of {n_atoms} atoms: {name!r} has one under this protocol on"
                         f" {hw.label}; not measured again (--timing always measures it)")
            continue
        md.append(time_md(calcs, atoms, n_atoms=n, steps=steps, warmup=warmup, device=device))
    return md


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
    timing: str = "auto",
    version: str | None = None,
    argv: list[str] | None = None,
) -> EvaluateResult:
    """``warehouse evaluate``: predictions over ``dataset`` plus inference and MD timings.

    The model name (``model@version`` with ``version``) is bound to the calculator and its
    parameter files (ingest.binding): another file under the name is refused before anything
    runs. Only structures without a prediction of the model are evaluated. ``timing``:
    ``auto`` measures MD only for sizes the model has no timing of under this protocol on this
    hardware, and records the inference timing only for a pass over the whole dataset;
    ``always`` evaluates every structure again and measures everything; ``never`` measures
    nothing.

    The dataset is streamed through the plan's filter and the calculator into a spool file
    (:class:`_Spool`), so peak memory does not grow with the dataset; the ingest then reads
    the spool back.
    """
    spec = parse_calculator_spec(calculator)
    if timing not in TIMING_MODES:
        raise IngestError(f"--timing {timing!r}: use one of {', '.join(TIMING_MODES)}")
    if md_steps < 0 or warmup_steps < 0 or batch_size < 1 or any(n <= 0 for n in sizes):
        raise IngestError("--md-steps, --warmup, --batch-size and --sizes must be positive")
    name = versioned_name(model, version)
    check_name(dataset, what="dataset")
    spec.device = device = spec.resolve_device(device)  # what the spec declares loads there
    binding = Binding.of_files(spec.files, spec.identity)
    precheck(wh, name, binding, what="this evaluate")  # refused before any calculator runs
    n_members = _n_members(wh, dataset)
    if not n_members:
        raise IngestError(f"dataset {dataset!r} has no structures")
    again = timing == "always"
    plan = _Plan(_stored_status(wh, name, dataset), spec.elements(), spec.label, again)
    # built now (a spec that cannot build fails the command) unless nothing can need it
    calcs = Calculators(lambda: spec.provider(device), first=again or n_members > len(plan.stored))
    clock = EvalClock()
    spool = _Spool()
    try:
        reset_peak_memory(device)
        spool.write(evaluate_frames(calcs, plan.todo(iter_dataset_frames(wh, dataset), spool),
                                    clock=clock, batch_size=batch_size))
        if plan.n_uncovered == plan.n_members:
            raise IngestError(
                f"{spec.label} has no parameters for {', '.join(sorted(plan.missing))} (it has"
                f" {', '.join(sorted(plan.have or ()))}); no structure of dataset {dataset!r} can"
                " be evaluated, so nothing was stored")
        return _finish(wh, spec, calcs, plan, spool, clock, name=name, dataset=dataset,
                       device=device, batch_size=batch_size, md_steps=md_steps,
                       warmup_steps=warmup_steps, sizes=sizes, cell=cell, timing=timing,
                       version=version, binding=binding, argv=argv)
    finally:
        spool.file.close()


def _finish(wh: Warehouse, spec: CalculatorSpec, calcs: Calculators, plan: _Plan, spool: _Spool,
            clock: EvalClock, *, name: str, dataset: str, device: str, batch_size: int,
            md_steps: int, warmup_steps: int, sizes: Sequence[int], cell: str | Path | None,
            timing: str, version: str | None, binding: Binding,
            argv: list[str] | None) -> EvaluateResult:
    """After the stream: MD timings, the inference record, and the one ingest of it all."""
    inference_peak = peak_memory_mb(device)
    hw = detect_hardware(device)
    notes: list[str] = []
    md: list[MDTiming] = []
    source = ""
    if md_steps and timing != "never":
        atoms, source = _md_cell(plan, spool, cell, name)
        if atoms is None:
            notes.append(f"MD timing skipped: {source}")
        else:
            md = _run_md(wh, calcs, atoms, source, name=name, spec=spec, hw=hw, sizes=sizes,
                         steps=md_steps, warmup=warmup_steps, device=device, timing=timing,
                         notes=notes)
    records = _md_records(spec, hw, md, source=source, dataset=dataset, scaling=bool(sizes))
    batched = batch_size > 1 and clock.n_structures > 0 and hasattr(calcs, "predict_batch")
    if timing != "never" and plan.whole:
        records.insert(0, _inference_record(
            spec, hw, clock, dataset=dataset, n_failed=spool.n_failed, device=device,
            batch_size=batch_size if batched else 1, peak_memory_mb=inference_peak))
    elif timing != "never" and plan.n_todo:
        notes.append(f"inference timing not recorded: {plan.n_todo} of {plan.n_members}"
                     " structures evaluated (the others have predictions); --timing always"
                     " times the whole dataset")
    if not spool.n_written and not records:
        return EvaluateResult(_nothing_to_do(spec, name, dataset, plan, notes), hw, clock, md)
    attrs = spec.model_attrs() | ({"version": version} if version else {})
    with ingest_run(wh, kind="evaluate", source=f"{spec.text} on dataset {dataset}",
                    source_sha256=binding.sha256, argv=argv) as ld:
        level = attrs.pop("level_of_theory", None)  # (name, attributes) of the training data
        if level is not None:
            attrs["level_of_theory_id"] = ld.level_of_theory(level[0], **level[1])
        model_id = bound_model(ld, name, binding, what="this evaluate", **attrs)
        ld.add_predictions(model_id, spool.read(), path=f"dataset {dataset}")
        add_timings(ld, records, model_id=model_id)
        ld.summary.notes += _notes(spec, name, dataset, plan, spool, clock, hw, md,
                                   batch_size if batched else 1) + notes
    return EvaluateResult(ld.summary, hw, clock, md)


def _notes(spec: CalculatorSpec, name: str, dataset: str, plan: _Plan, spool: _Spool,
           clock: EvalClock, hw: Hardware, md: list[MDTiming], batch_size: int) -> list[str]:
    """What an evaluate run tells its user beside the counts."""
    n_failed = spool.n_failed
    out = [f"{spec.text} on {dataset}: {spool.n_written} structures ({n_failed} failed"
           + (f", {plan.n_refused} of them for species without parameters" if plan.n_refused
              else "") + f"), {clock.n_atoms} atoms, {clock.seconds:.3f} s in the calculator"
           + (f" (batches of {batch_size})" if batch_size > 1 else "") + f"; hardware {hw.label}"]
    if plan.n_skipped:
        out.append(f"{plan.n_skipped} structures already had predictions of {name!r}")
    if n_failed:
        out.append(f"`warehouse failures --model {name} --dataset {dataset}` lists the failures"
                   " with their reasons")
    for r in md:
        out.append(f"MD {r.composition} ({r.n_atoms} atoms): " + (
            f"{r.n_steps} steps in {r.wall_s:.3f} s = {r.atom_steps_per_s:.4g} atom-steps/s"
            if r.wall_s else f"failed: {r.message}"))
    if files := spec.files:
        out.append("model files: " + ", ".join(map(str, files[:3]))
                   + (" ..." if len(files) > 3 else ""))
    return out


def _inference_record(spec: CalculatorSpec, hw: Hardware, clock: EvalClock, *, dataset: str,
                      n_failed: int, device: str, batch_size: int,
                      peak_memory_mb: float | None) -> TimingRecord:
    name, ver = spec.software
    return TimingRecord(
        task="inference", **hw.columns(), software=name, software_version=ver,
        precision=spec.precision, system=f"dataset {dataset}", n_atoms=clock.n_atoms, n_steps=1,
        wall_s=clock.seconds, peak_memory_mb=peak_memory_mb, extra={
            "protocol": "single-point energy, forces and stress per structure; calculator calls"
                        " only", "dataset": dataset, "n_structures": clock.n_structures,
            "n_failed": n_failed, "calculator": spec.text, "max_rss_mb": max_rss_mb(),
            "device": device, "batch_size": batch_size,
        })


def _nothing_to_do(spec: CalculatorSpec, name: str, dataset: str, plan: _Plan,
                   notes: list[str]) -> IngestSummary:
    """The summary of a run that found everything done: no calculator call, nothing stored."""
    summary = IngestSummary(kind="evaluate")
    summary.seen("predictions", len(plan.stored))
    summary.notes.append(f"{spec.text} on {dataset}: every one of the {plan.n_members}"
                         f" structures already has a prediction of {name!r}; nothing evaluated,"
                         " nothing stored")
    summary.notes.extend(notes)
    return summary

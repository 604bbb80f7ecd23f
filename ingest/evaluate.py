"""``warehouse evaluate``: run an ASE calculator over a stored dataset, and store its
predictions and timings in one provenance run.

A calculator that raises on one structure records that structure as failed, with the message,
and goes on: failures are data, never dropped (the loop is :mod:`ingest.inference`).

Timing protocol (docs/COST.md): single-point inference over the dataset is timed inside the
loop (calculator calls only); MD cost (:mod:`ingest.mdtiming`) is timed on a given cell, by
default a supercell of the dataset's first structure, as ``warmup`` NVE velocity-Verlet steps
(not timed) followed by ``steps`` timed steps. Each size in ``sizes`` gives one record of a
scaling series.
"""

from __future__ import annotations

import pickle
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.data import chemical_symbols
from sqlalchemy import func, select

from ingest.binding import Binding, bound_model, precheck, versioned_name
from ingest.calculators import CalculatorSpec, parse_calculator_spec
from ingest.hardware import Hardware, detect_hardware, max_rss_mb, peak_memory_mb, reset_peak_memory
from ingest.inference import Calculators, EvalClock, evaluate_frames, frame_to_atoms
from ingest.loader import IngestSummary, ingest_run
from ingest.mdtiming import (
    DEFAULT_MD_ATOMS, DEFAULT_MD_STEPS, DEFAULT_WARMUP_STEPS, MD_SEED, TEMPERATURE_K, TIMESTEP_FS,
    MDTiming, supercell_repeats, time_md,
)
from ingest.timings import TimingRecord, add_timings
from warehouse import models as m
from warehouse.core import Warehouse
from warehouse.errors import IngestError, NotFound
from warehouse.names import check_name
from warehouse.records import Frame, Labels, PredictionFrame
from warehouse.structures import iter_dataset_frames


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

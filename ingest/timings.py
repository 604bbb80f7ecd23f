"""Timing records from real engines' logs and from tables, and the writer that stores them.

Readers (pure, no database; each returns a list of :class:`TimingRecord` or raises
:class:`IngestError` naming the file and line):

* :func:`parse_gpumd_log`: GPUMD's standard output. One record per ``run`` command: the steps of
  ``Run N steps.``, the printed ``Time used for this run = T second.`` and
  ``Speed of this run = S atom*step/second.``, the GPU model(s) of ``Device name:``, the atom
  count of ``Number of atoms is N.``, the composition from the atom types, the version.
* :func:`parse_lammps_log`: a LAMMPS ``log.lammps``. One record per ``Loop time of T on P procs
  for N steps with M atoms`` line, with its ``Performance:`` line (``timesteps/s`` and
  ``katom-step/s``; LAMMPS switches to ``Matom-step/s`` on big systems, so the unit is read with
  the number) and ``... with P MPI tasks x T OpenMP threads`` (cores = P x T).
* :func:`parse_timings_table`: CSV, YAML or JSON whose columns are the ``timings`` columns
  (see ``docs/COST.md``); anything else a row carries goes to ``extra``.

Throughput is stored as atom-steps per second and cost as its inverse, seconds per atom-step.
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import func, select

from ingest.hardware import Hardware, LammpsAccelerator, lammps_accelerator
from ingest.loader import IngestSummary, Loader, ingest_run
from ingest.writers.conflicts import with_retries
from ingest.textio import DuplicateKey, load_yaml, no_duplicate_keys, reader_guard
from warehouse import models as m
from warehouse.core import Warehouse
from warehouse.errors import IngestError, missing_file
from warehouse.hashing import sha256_file

TASKS = ("md", "inference", "training")
ENGINES = ("gpumd", "lammps", "table")
# Printed and derived throughput may differ by the print's rounding (GPUMD prints 6 digits).
CONSISTENCY_RTOL = 0.01


@dataclass(slots=True)
class TimingRecord:
    """One cost measurement, in the units of the ``timings`` table (seconds, MiB)."""

    task: str = "md"
    hardware: str | None = None  # the class label; filled from the fields below when None
    device_model: str | None = None
    device_count: int | None = None
    cpu_model: str | None = None
    cpu_cores: int | None = None
    software: str | None = None
    software_version: str | None = None
    precision: str | None = None
    system: str | None = None
    composition: str | None = None
    n_atoms: int | None = None
    n_steps: int | None = None
    wall_s: float | None = None
    peak_memory_mb: float | None = None
    atom_steps_per_s: float | None = None
    epochs: float | None = None
    model: str | None = None  # a table may name the model per row
    extra: dict[str, Any] = field(default_factory=dict)

    def finished(self) -> TimingRecord:
        """Derive what can be derived: the hardware label and atom-steps/s."""
        rec = replace(self, extra=dict(self.extra))
        if rec.hardware is None:
            rec.hardware = Hardware(rec.cpu_model, rec.cpu_cores, rec.device_model,
                                    rec.device_count).label
        if rec.atom_steps_per_s is None and rec.n_atoms and rec.n_steps and rec.wall_s:
            rec.atom_steps_per_s = rec.n_atoms * rec.n_steps / rec.wall_s
        return rec

    def row(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("model")
        return out


TABLE_COLUMNS = tuple(f.name for f in fields(TimingRecord) if f.name != "extra")
INT_COLUMNS = {"device_count", "cpu_cores", "n_atoms", "n_steps"}
FLOAT_COLUMNS = {"wall_s", "peak_memory_mb", "atom_steps_per_s", "epochs"}


def _read_lines(path: str | Path) -> list[str]:
    p = Path(path)
    if not p.is_file():
        raise missing_file(str(path))
    return p.read_text(encoding="utf-8", errors="replace").splitlines()


# -- GPUMD -----------------------------------------------------------------------------------

_G_VERSION = re.compile(r"^\*?\s*Version\s+([\w.\-]+)")
_G_DEVICE = re.compile(r"^\s*Device name:\s*(.+?)\s*$")
_G_ATOMS = re.compile(r"^\s*Number of atoms is (\d+)\.")
_G_TYPE_NAME = re.compile(r"^\s*type (\d+) \((\w+) with Z = \d+\)")
_G_TYPE_COUNT = re.compile(r"^\s*(\d+) atoms of type (\d+)\.")
_G_ENSEMBLE = re.compile(r"^\s*Use (\S+) ensemble for this run")
_G_POTENTIAL = re.compile(r"^\s*Use the (\S+) potential")
_G_RUN = re.compile(r"^\s*Run (\d+) steps\.")
_G_TIME = re.compile(r"^\s*Time used for this run = ([\d.eE+\-]+) second")
_G_SPEED = re.compile(r"^\s*Speed of this run = ([\d.eE+\-]+) atom\*step/second")


def is_gpumd_log(lines: Sequence[str]) -> bool:
    head = "\n".join(lines[:40])
    return "GPUMD" in head and ("Welcome" in head or "gpumd executable" in head)


@reader_guard
def parse_gpumd_log(path: str | Path) -> list[TimingRecord]:
    """One :class:`TimingRecord` (task ``md``) per run of a GPUMD log, as GPUMD printed it."""
    lines = _read_lines(path)
    if not is_gpumd_log(lines):
        raise IngestError("not a GPUMD log (no GPUMD banner in its first lines)", path=str(path))
    version = None
    devices: list[str] = []
    n_atoms = None
    type_count: dict[int, int] = {}
    type_name: dict[int, str] = {}
    ensemble = potential = None
    records: list[TimingRecord] = []
    open_run: tuple[int, int] | None = None  # (line number, steps) of a run not yet timed
    wall = None
    for k, line in enumerate(lines, start=1):
        if (mt := _G_VERSION.match(line)) and version is None:
            version = mt.group(1)
        elif mt := _G_DEVICE.match(line):
            devices.append(mt.group(1))
        elif mt := _G_ATOMS.match(line):
            n_atoms = int(mt.group(1))
        elif mt := _G_TYPE_COUNT.match(line):
            type_count[int(mt.group(2))] = int(mt.group(1))
        elif mt := _G_TYPE_NAME.match(line):
            type_name[int(mt.group(1))] = mt.group(2)
        elif mt := _G_ENSEMBLE.match(line):
            ensemble = mt.group(1)
        elif mt := _G_POTENTIAL.match(line):
            potential = mt.group(1)
        elif mt := _G_RUN.match(line):
            if open_run is not None:
                raise IngestError(f"run of {open_run[1]} steps has no 'Speed of this run' line",
                                  path=str(path), where=f"line {open_run[0]}")
            open_run, wall = (k, int(mt.group(1))), None
        elif mt := _G_TIME.match(line):
            wall = _number(mt.group(1), path, k)
        elif mt := _G_SPEED.match(line):
            if open_run is None:
                raise IngestError("speed line without a 'Run N steps.' before it",
                                  path=str(path), where=f"line {k}")
            if n_atoms is None:
                raise IngestError("no 'Number of atoms is N.' line before the first run",
                                  path=str(path), where=f"line {k}")
            records.append(TimingRecord(
                task="md", device_model=devices[0] if devices else None,
                device_count=len(devices) or None, software="GPUMD", software_version=version,
                system=f"{Path(path).name} run {len(records) + 1}",
                composition=_composition(type_count, type_name), n_atoms=n_atoms,
                n_steps=open_run[1], wall_s=wall, atom_steps_per_s=_number(mt.group(1), path, k),
                extra={"engine": "gpumd", "line": k, "ensemble": ensemble, "potential": potential,
                       "devices": devices},
            ).finished())
            open_run = None
    if open_run is not None:
        raise IngestError(
            f"run of {open_run[1]} steps has no 'Speed of this run' line: the log is truncated"
            " (did the run finish?)", path=str(path), where=f"line {open_run[0]}")
    if not records:
        raise IngestError("no 'Speed of this run = ... atom*step/second' line: nothing to store",
                          path=str(path))
    return records


def _composition(counts: dict[int, int], names: dict[int, str]) -> str | None:
    parts = [(names.get(t), n) for t, n in sorted(counts.items()) if n > 0]
    if not parts or any(name is None for name, _ in parts):
        return None
    return "".join(f"{name}{n}" for name, n in parts)


def _number(text: str, path: str | Path, line: int) -> float:
    try:
        value = float(text)
    except ValueError:
        raise IngestError(f"{text!r} is not a number", path=str(path), where=f"line {line}") from None
    if not math.isfinite(value) or value <= 0:
        raise IngestError(f"{text!r} is not a positive finite number", path=str(path),
                          where=f"line {line}")
    return value


# -- LAMMPS ----------------------------------------------------------------------------------

_L_VERSION = re.compile(r"^LAMMPS \((.+)\)\s*$")
_L_LOOP = re.compile(
    r"^Loop time of ([\d.eE+\-]+) on (\d+) procs for (\d+) steps with (\d+) atoms")
_L_PERF = re.compile(r"^Performance:(.*)$")
_L_RATE = re.compile(r"([\d.eE+\-]+) (k|M|G|)atom-step/s")
_L_STEPS_S = re.compile(r"([\d.eE+\-]+) timesteps/s")
_L_TASKS = re.compile(r"CPU use with (\d+) MPI tasks x (\d+) OpenMP threads")
_L_THERMO_HEAD = re.compile(r"^\s*Step\s")
_L_COMMAND = re.compile(r"^(run|minimize)\s")
_PREFIX = {"": 1.0, "k": 1e3, "M": 1e6, "G": 1e9}


def is_lammps_log(lines: Sequence[str]) -> bool:
    return any(_L_VERSION.match(line) for line in lines[:20])


@reader_guard
def parse_lammps_log(path: str | Path) -> list[TimingRecord]:
    """One :class:`TimingRecord` per ``Loop time`` of a LAMMPS log, as LAMMPS printed it.

    A ``run N`` (N > 0) is an MD timing (task ``md``). A ``minimize`` and a ``run 0`` also print a
    ``Loop time`` but have no MD speed: their records carry task ``minimize`` or ``run 0`` and no
    atom-steps/s, and :func:`ingest_timings` does not store them. The accelerator package
    (KOKKOS, GPU, OPENMP, INTEL) and its GPUs come from the log (:func:`lammps_accelerator`).
    """
    lines = _read_lines(path)
    version = next((mt.group(1) for line in lines[:20] if (mt := _L_VERSION.match(line))), None)
    if version is None:
        raise IngestError("not a LAMMPS log (no 'LAMMPS (version)' line at its top)", path=str(path))
    accel = lammps_accelerator(lines)
    records: list[TimingRecord] = []
    run_started: int | None = None  # line of a thermo header whose run has no Loop time yet
    command: str | None = None  # "run" or "minimize": the last one echoed before a Loop time
    for k, line in enumerate(lines, start=1):
        if mt := _L_COMMAND.match(line):
            command = mt.group(1)
        elif _L_THERMO_HEAD.match(line):
            run_started = run_started or k
        elif mt := _L_LOOP.match(line):
            run_started = None
            records.append(_lammps_record(lines, k, mt, version, accel, command, path))
    if run_started is not None:
        raise IngestError("a run starts here but has no 'Loop time of ...' line: the log is"
                          " truncated (did the run finish?)", path=str(path),
                          where=f"line {run_started}")
    if not records:
        raise IngestError("no 'Loop time of T on P procs for N steps with M atoms' line: nothing"
                          " to store", path=str(path))
    return records


def _lammps_record(lines: Sequence[str], k: int, loop: re.Match, version: str,
                   accel: LammpsAccelerator, command: str | None, path: str | Path) -> TimingRecord:
    wall, procs = _number(loop.group(1), path, k), int(loop.group(2))
    n_steps, n_atoms = int(loop.group(3)), int(loop.group(4))
    rate = steps_s = None
    mpi, omp = procs, 1
    # The Performance and CPU-use lines follow within a few lines of their Loop time.
    for j in range(k, min(k + 6, len(lines))):
        if perf := _L_PERF.match(lines[j]):
            if r := _L_RATE.search(perf.group(1)):
                rate = _number(r.group(1), path, j + 1) * _PREFIX[r.group(2)]
            if s := _L_STEPS_S.search(perf.group(1)):
                steps_s = _number(s.group(1), path, j + 1)
        if t := _L_TASKS.search(lines[j]):
            mpi, omp = int(t.group(1)), int(t.group(2))
    extra = {"engine": "lammps", "line": k, "mpi_tasks": mpi, "openmp_threads": omp,
             "procs": procs, "timesteps_per_s": steps_s, "performance_line": rate is not None,
             "accelerator": accel.package}
    common = dict(device_model=accel.device_model, device_count=accel.device_count,
                  cpu_cores=mpi * omp, software="LAMMPS", software_version=version,
                  precision=accel.precision, system=f"{Path(path).name} run at line {k}",
                  n_atoms=n_atoms, wall_s=wall)
    if command == "minimize" or n_steps == 0:
        # no MD speed: a minimisation's "steps" are line-search iterations; a run 0 is a set-up
        task = "minimize" if command == "minimize" else "run 0"
        return TimingRecord(task=task, n_steps=None, extra={**extra, "iterations": n_steps},
                            **common).finished()
    derived = n_atoms * n_steps / wall
    if rate is not None and abs(rate - derived) > max(CONSISTENCY_RTOL * derived, 2e-3 * _scale(rate)):
        raise IngestError(
            f"Performance line says {rate:g} atom-steps/s but the Loop time line gives {derived:g}",
            path=str(path), where=f"line {k}")
    return TimingRecord(task="md", n_steps=n_steps,
                        atom_steps_per_s=rate if rate is not None else derived, extra=extra,
                        **common).finished()


def _scale(value: float) -> float:
    """The unit of the last printed digit's order for a number printed with 3 decimals."""
    for prefix in ("G", "M", "k"):
        if value >= _PREFIX[prefix]:
            return _PREFIX[prefix]
    return 1.0


# -- tables ----------------------------------------------------------------------------------

@reader_guard
def parse_timings_table(path: str | Path) -> list[TimingRecord]:
    """Records from a CSV (header row), YAML or JSON file (a list of mappings, or
    ``{"timings": [...]}``) whose keys are the ``timings`` columns; see docs/COST.md."""
    p = Path(path)
    if not p.is_file():
        raise missing_file(str(path))
    suffix = p.suffix.lower()
    try:
        if suffix == ".csv":
            with p.open(newline="", encoding="utf-8") as fh:
                rows: Any = list(csv.DictReader(fh))
        elif suffix in (".yaml", ".yml"):
            rows = load_yaml(p.read_text(encoding="utf-8"))
        elif suffix == ".json":
            rows = json.loads(p.read_text(encoding="utf-8"), object_pairs_hook=no_duplicate_keys)
        else:
            raise IngestError("a timings table must be .csv, .yaml/.yml or .json", path=str(path))
    except (yaml.YAMLError, json.JSONDecodeError, csv.Error, UnicodeDecodeError, DuplicateKey) as exc:
        # YAML's messages run over several lines (the excerpt with a caret): keep the first,
        # and the place it names
        mark = getattr(exc, "problem_mark", None)
        first = " ".join(str(exc).split("\n")[0].split())
        raise IngestError(f"cannot read: {first}", path=str(path),
                          where=None if mark is None else f"line {mark.line + 1}") from None
    if isinstance(rows, dict) and "timings" in rows:
        rows = rows["timings"]
    if not isinstance(rows, list) or not rows:
        raise IngestError("expected a non-empty list of timing records", path=str(path))
    where = "row" if suffix == ".csv" else "record"
    return [_table_record(row, path, f"{where} {i + 1}") for i, row in enumerate(rows)]


def _table_record(row: Any, path: str | Path, where: str) -> TimingRecord:
    if not isinstance(row, dict):
        raise IngestError("a timing record must be a mapping of column to value", path=str(path),
                          where=where)
    values: dict[str, Any] = {}
    extra = dict(row.pop("extra", None) or {}) if isinstance(row.get("extra"), dict) else {}
    for key, raw in row.items():
        if raw is None or (isinstance(raw, str) and raw.strip() == ""):
            continue
        key = str(key).strip()
        if key in INT_COLUMNS or key in FLOAT_COLUMNS:
            values[key] = _typed(key, raw, path, where)
        elif key in TABLE_COLUMNS:
            values[key] = str(raw).strip()
        else:
            extra[key] = raw
    rec = TimingRecord(**values, extra=extra)
    if rec.task not in TASKS:
        raise IngestError(f"task {rec.task!r} is not one of {', '.join(TASKS)}", path=str(path),
                          where=where)
    rec = rec.finished()
    _check_complete(rec, path, where)
    return rec


def _typed(key: str, raw: Any, path: str | Path, where: str) -> float | int:
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise IngestError(f"{key} = {raw!r} is not a number", path=str(path), where=where) from None
    if not math.isfinite(value) or value < 0:
        raise IngestError(f"{key} = {raw!r} must be a finite, non-negative number", path=str(path),
                          where=where)
    if key in INT_COLUMNS:
        if value != int(value):
            raise IngestError(f"{key} = {raw!r} must be a whole number", path=str(path), where=where)
        return int(value)
    return value


def _check_complete(rec: TimingRecord, path: str | Path, where: str) -> None:
    if rec.task == "training":
        if not rec.wall_s:
            raise IngestError("a training record needs wall_s", path=str(path), where=where)
        return
    if not rec.atom_steps_per_s:
        raise IngestError("needs atom_steps_per_s, or n_atoms, n_steps and wall_s",
                          path=str(path), where=where)
    if rec.n_atoms and rec.n_steps and rec.wall_s:
        derived = rec.n_atoms * rec.n_steps / rec.wall_s
        if abs(derived - rec.atom_steps_per_s) > CONSISTENCY_RTOL * derived:
            raise IngestError(
                f"atom_steps_per_s = {rec.atom_steps_per_s:g} disagrees with n_atoms x n_steps /"
                f" wall_s = {derived:g}", path=str(path), where=where)


# -- detection and writing -------------------------------------------------------------------

def detect_engine(path: str | Path) -> str:
    """``gpumd``, ``lammps`` or ``table`` for ``path``; anything else is refused."""
    p = Path(path)
    if p.suffix.lower() in (".csv", ".yaml", ".yml", ".json"):
        return "table"
    lines = _read_lines(p)[:40]
    if is_gpumd_log(lines):
        return "gpumd"
    if is_lammps_log(lines):
        return "lammps"
    raise IngestError(
        "unknown engine: not a GPUMD log, not a LAMMPS log, not a .csv/.yaml/.json timings table;"
        " pass --engine (gpumd, lammps, table) if it is one of those", path=str(path))


PARSERS = {"gpumd": parse_gpumd_log, "lammps": parse_lammps_log, "table": parse_timings_table}


def parse_timings(path: str | Path, engine: str | None = None) -> list[TimingRecord]:
    engine = engine or detect_engine(path)
    if engine not in PARSERS:
        raise IngestError(f"unknown engine {engine!r}; known: {', '.join(ENGINES)}", path=str(path))
    return PARSERS[engine](path)


def add_timings(loader: Loader, records: Iterable[TimingRecord], *,
                model_id: int | None = None) -> list[int]:
    """Insert ``timings`` rows (ids returned) in the loader's transaction."""
    rows = []
    for rec in records:
        rows.append(m.Timing(model_id=model_id, ingest_run_id=loader.run.id,
                             **{k: v for k, v in rec.finished().row().items()}))
    loader.s.add_all(rows)
    loader.s.flush()
    loader.summary.add("timings", len(rows))
    return [r.id for r in rows]


def ingest_timings(
    wh: Warehouse,
    path: str | Path,
    *,
    model: str | None = None,
    engine: str | None = None,
    overrides: dict[str, Any] | None = None,
    argv: list[str] | None = None,
) -> IngestSummary:
    """Store the timings of ``path`` for ``model`` (or each row's own ``model`` in a table).

    ``overrides`` set columns the log cannot know (e.g. ``hardware``, ``cpu_model``).
    """
    records = parse_timings(path, engine)
    skipped = [r for r in records if r.task not in TASKS]
    records = [r for r in records if r.task in TASKS]
    notes = [f"line {r.extra.get('line')}: "
             + (f"a minimize ({r.extra.get('iterations')} iterations)" if r.task == "minimize"
                else "a run 0 (set-up only)") + " has no MD speed: not stored" for r in skipped]
    if not records:
        raise IngestError("no MD run to time: this log holds only " + ", ".join(
            sorted({r.task for r in skipped})) + " (no MD speed)", path=str(path))
    records = [_with_overrides(r, overrides or {}) for r in records]
    if model is None and (unnamed := [i for i, r in enumerate(records) if not r.model]):
        raise IngestError(f"record {unnamed[0] + 1} names no model; pass --model NAME",
                          path=str(path))
    sha = sha256_file(path)

    def attempt(_: int) -> IngestSummary:
        with ingest_run(wh, kind="timings", source=str(path), source_sha256=sha, argv=argv) as ld:
            for name in sorted({model or r.model for r in records}):
                mid = ld.model(name)
                mine = [r for r in records if (model or r.model) == name]
                # the same file for the same model is a no-op: no unique key says so, so
                # concurrent ingests of it queue on this lock before looking
                ld.names.lock("timings", sha, mid)
                if n := _already_stored(ld, sha, mid):
                    ld.summary.seen("timings", n)
                    continue
                add_timings(ld, mine, model_id=mid)
            ld.summary.notes += notes
        return ld.summary

    return with_retries(attempt, what=str(path))


def _with_overrides(rec: TimingRecord, overrides: dict[str, Any]) -> TimingRecord:
    """``rec`` with the columns the user stated; ``hardware`` names the GPUs a log counts but does
    not name (KOKKOS), else it is the hardware class label itself."""
    given = {k: v for k, v in overrides.items() if v is not None}
    if not given:
        return rec
    if "hardware" in given and rec.device_count and not rec.device_model:
        given["device_model"] = given.pop("hardware")
    if "hardware" not in given:
        rec = replace(rec, hardware=None)  # relabel from the new fields
    return replace(rec, **given).finished()


def _already_stored(ld: Loader, sha: str, model_id: int) -> int:
    return ld.s.scalar(
        select(func.count(m.Timing.id))
        .join(m.IngestRun, m.IngestRun.id == m.Timing.ingest_run_id)
        .where(m.IngestRun.source_sha256 == sha, m.IngestRun.kind == "timings",
               m.Timing.model_id == model_id)
    ) or 0

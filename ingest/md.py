"""MD output parsers (pure: no database). Each returns :class:`MDData` records in warehouse units.

Formats
-------
**GPUMD ``thermo.out``** (https://gpumd.org/gpumd/output_files/thermo_out.html): one row every
``dump_thermo`` steps, 12 columns for an orthogonal box ``T K U Px Py Pz Pyz Pxz Pxy Lx Ly Lz`` or
18 for a triclinic one ``T K U Px Py Pz Pyz Pxz Pxy ax ay az bx by bz cx cy cz``; T in K, K and U
in eV (total), P in GPa (*pressure*: positive = compressive), lengths in Å. The file has no time
column: times come from the ``run.in`` beside it (``time_step`` in fs, propagating;
``dump_thermo N`` and ``ensemble`` per run; ``run N`` closes a stage), or from options. GPUMD
writes a row when ``(step + 1) % N == 0``, so row k of a stage sits at ``(k + 1) N`` steps after
the stage's start.

**LAMMPS log** (:mod:`ingest.md_lammps`): every ``run`` and ``minimize`` (its thermo table, a
header line starting with ``Step``, rows up to ``Loop time``) is a stage, ``reset_timestep``
included; see that module for the rules.

**Series / profile table** (CSV or Parquet, documented in ``docs``-style here):
one column per quantity, named ``name [unit]`` (CSV header) or carrying a ``unit`` field-metadata
key (Parquet). A ``time`` column (ps; fs or ns are converted) or a ``step`` column plus a time
step is required. A *series* has strictly increasing time. A *profile* (e.g. density, stress,
temperature in bins along the shock direction at given times) has a position column ``z``, ``y``,
``x`` or ``bin`` and non-decreasing time (one row per bin and time). Stress columns are ASE's sign
(positive = tensile); columns named ``pressure*`` are pressures (positive = compressive).

**Observables table** (CSV): ``name,value,unit[,method]``: scalars reported by a study (e.g. a
spall strength per ensemble member); ``method`` defaults to ``reported``.
"""

from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ingest.textio import reader_guard, strict_float, text_errors
from warehouse.errors import IngestError

GPUMD_LAYOUTS: dict[int, tuple[str, ...]] = {
    12: ("temperature", "kinetic_energy", "potential_energy", "pressure_xx", "pressure_yy",
         "pressure_zz", "pressure_yz", "pressure_xz", "pressure_xy", "lx", "ly", "lz"),
    18: ("temperature", "kinetic_energy", "potential_energy", "pressure_xx", "pressure_yy",
         "pressure_zz", "pressure_yz", "pressure_xz", "pressure_xy",
         "ax", "ay", "az", "bx", "by", "bz", "cx", "cy", "cz"),
}
UNITS: dict[str, str] = {
    "time": "ps", "step": "step", "stage": "", "temperature": "K", "kinetic_energy": "eV",
    "potential_energy": "eV", "total_energy": "eV", "pressure": "GPa", "volume": "Å^3",
    "density": "g/cm^3", **{f"pressure_{c}": "GPa" for c in ("xx", "yy", "zz", "yz", "xz", "xy")},
    **{c: "Å" for c in ("lx", "ly", "lz", "ax", "ay", "az", "bx", "by", "bz", "cx", "cy", "cz")},
}
PRESSURE_NOTE = "pressure columns: positive = compressive (GPUMD/LAMMPS convention)"
POSITION_COLUMNS = ("z", "y", "x", "bin")
TIME_TO_PS = {"ps": 1.0, "fs": 1e-3, "ns": 1e3}


@dataclass(slots=True)
class Stage:
    """One ``run`` of an MD input: its integrator and where its rows lie in the series."""

    index: int  # 1-based
    ensemble: str | None  # the engine's keyword, e.g. "npt_scr", "nve", "fix nvt"
    kind: str | None  # NVE | NVT | NPT | NPH | shock | ...
    n_steps: int | None
    timestep_fs: float | None
    every: int | None  # sampling interval in steps
    temperature_k: tuple[float, float] | None = None  # target at start and end
    pressure_gpa: float | None = None
    first_row: int = 0
    n_rows: int = 0
    n_atoms: int | None = None  # where the engine states it per run (LAMMPS's Loop time line)

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__slots__}


@dataclass(slots=True)
class MDData:
    """One parsed series (or profile set) with what the run input said about it."""

    name: str
    kind: str  # "series" | "profile"
    columns: dict[str, np.ndarray]
    units: dict[str, str | None]
    stages: list[Stage] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)  # md_runs attributes found in the files
    notes: list[str] = field(default_factory=list)

    @property
    def n_rows(self) -> int:
        return len(next(iter(self.columns.values())))


@dataclass(frozen=True, slots=True)
class ReportedObservable:
    name: str
    value: float
    unit: str | None
    method: str = "reported"


# -- GPUMD ------------------------------------------------------------------------------------

_KIND_BY_PREFIX = (("nve", "NVE"), ("nvt", "NVT"), ("npt", "NPT"), ("nph", "NPH"),
                   ("msst", "shock"), ("piston", "shock"), ("shock", "shock"), ("heat", "NEMD"),
                   ("pimd", "PIMD"), ("rpmd", "PIMD"), ("trpmd", "PIMD"), ("ti", "TI"))


def ensemble_kind(keyword: str) -> str:
    """GPUMD ``ensemble`` keyword (or LAMMPS fix style) -> NVE/NVT/NPT/NPH/shock/... ."""
    kw = keyword.lower()
    if kw.startswith("nphug"):
        return "shock"
    for prefix, kind in _KIND_BY_PREFIX:
        if kw.startswith(prefix):
            return kind
    return kw.upper()


def _npt_pressure(args: list[float]) -> float | None:
    """Mean of the diagonal target pressures of ``npt_*``/``nph*``: 1, 3 or 6 targets."""
    rest = args[3:]
    if len(rest) == 3:
        return rest[0]
    if len(rest) in (7, 13):
        return float(np.mean(rest[:3]))
    return None


@reader_guard
def parse_gpumd_run_in(path: str | Path) -> list[Stage]:
    """Stages (one per ``run``) of a GPUMD ``run.in``."""
    path = str(path)
    stages: list[Stage] = []
    dt, ens, every = 1.0, None, None  # GPUMD's default time step is 1 fs
    with open(path, encoding="utf-8", errors="replace") as fh:
        for lineno, raw in enumerate(fh, 1):
            tokens = raw.split("#", 1)[0].split()
            if not tokens:
                continue
            key, args = tokens[0], tokens[1:]
            try:
                if key == "time_step":
                    dt = float(args[0])
                elif key == "ensemble":
                    ens = args
                elif key == "dump_thermo":
                    every = int(args[0])
                elif key == "run":
                    stages.append(_gpumd_stage(len(stages) + 1, ens, int(args[0]), dt, every))
                    ens, every = None, None  # both keywords are non-propagating
            except (IndexError, ValueError) as exc:
                raise IngestError(f"cannot read {key!r} ({exc})", path=path,
                                  where=f"line {lineno}") from exc
    if not stages:
        raise IngestError("no `run` keyword, so no MD stage", path=path)
    return stages


def _gpumd_stage(index: int, ens: list[str] | None, n_steps: int, dt: float, every: int | None) -> Stage:
    kw = ens[0] if ens else None
    nums = []
    for a in (ens or [])[1:]:
        try:
            nums.append(float(a))
        except ValueError:
            break
    kind = ensemble_kind(kw) if kw else None
    temp = (nums[0], nums[1]) if kind in ("NVT", "NPT") and len(nums) >= 2 else None
    press = _npt_pressure(nums) if kind in ("NPT", "NPH") else None
    return Stage(index, kw, kind, n_steps, dt, every, temp, press)


def _read_numeric_rows(path: str, ncols_allowed: dict[int, Any]) -> tuple[np.ndarray, int]:
    """Whitespace table, ``#`` comments skipped; every row as wide as the first known layout."""
    rows: list[list[float]] = []
    width = None
    with open(path, encoding="utf-8", errors="replace") as fh:
        lines = fh.readlines()
    for lineno, raw in enumerate(lines, 1):
        text = raw.strip()
        if not text or text.startswith("#"):
            continue
        parts = text.split()
        if width is None:
            if len(parts) not in ncols_allowed:
                known = ", ".join(f"{n}" for n in ncols_allowed)
                raise IngestError(f"{len(parts)} columns match no known thermo.out layout"
                                  f" ({known} columns)", path=path, where=f"line {lineno}")
            width = len(parts)
        last = lineno == len(lines) or not any(x.strip() for x in lines[lineno:])
        if len(parts) != width:
            why = " (a torn last line: was the run still writing?)" if last else ""
            raise IngestError(f"{len(parts)} values where the layout has {width}{why}",
                              path=path, where=f"line {lineno}")
        try:
            values = [float(p) for p in parts]
        except ValueError as exc:
            why = " (a torn last line?)" if last else ""
            raise IngestError(f"not a number ({exc}){why}", path=path, where=f"line {lineno}") from exc
        if not all(math.isfinite(v) for v in values):
            raise IngestError("NaN or inf: the run may have blown up; store the rows before it",
                              path=path, where=f"line {lineno}")
        rows.append(values)
    if not rows:
        raise IngestError("no data rows", path=path)
    return np.array(rows, dtype=np.float64), width


@reader_guard
def parse_gpumd_thermo(
    path: str | Path,
    *,
    run_in: str | Path | None = None,
    timestep_fs: float | None = None,
    every: int | None = None,
) -> MDData:
    """A GPUMD ``thermo.out`` with times from ``run_in`` (default: the ``run.in`` beside it)."""
    path = str(path)
    data, width = _read_numeric_rows(path, GPUMD_LAYOUTS)
    names = GPUMD_LAYOUTS[width]
    if run_in is None and (Path(path).parent / "run.in").is_file():
        run_in = Path(path).parent / "run.in"
    if run_in is not None:
        stages = parse_gpumd_run_in(run_in)  # a stage without dump_thermo still takes time
        for s in stages:
            s.timestep_fs = timestep_fs or s.timestep_fs
            s.every = (every or s.every) if s.every else None
    elif timestep_fs is not None and every is not None:
        stages = [Stage(1, None, None, None, timestep_fs, every)]
    else:
        raise IngestError("no run.in beside the file: pass the run input, or the time step (fs)"
                          " and the sampling interval (steps)", path=path)
    time, step, stage_col = _gpumd_times(stages, len(data), path)
    columns = {"time": time, "step": step, "stage": stage_col}
    columns.update({n: data[:, i] for i, n in enumerate(names)})
    meta = run_meta(stages, engine="GPUMD")
    meta.update(_gpumd_side_files(Path(path).parent))
    notes = [f"layout: {width} columns ({'orthogonal' if width == 12 else 'triclinic'} box)",
             PRESSURE_NOTE]
    notes += [f"stage {s.index} has {s.n_rows} of {s.n_steps // s.every} rows: the run stopped"
              " or is still running" for s in stages
              if s.every and s.n_steps and s.n_rows < s.n_steps // s.every]
    return MDData(name="thermo", kind="series", columns=columns,
                  units={n: UNITS.get(n) for n in columns}, stages=stages, meta=meta, notes=notes)


def _gpumd_times(stages: list[Stage], n_rows: int, path: str) -> tuple[np.ndarray, ...]:
    times, steps, idx = [], [], []
    t0, s0, row = 0.0, 0, 0
    for st in stages:
        if st.every:
            n_expected = (st.n_steps // st.every) if st.n_steps else n_rows - row
        else:
            n_expected = 0
        n = min(n_expected, n_rows - row)
        k = np.arange(1, n + 1)
        steps.append(s0 + k * (st.every or 0))
        times.append(t0 + k * (st.every or 0) * st.timestep_fs * 1e-3)
        idx.append(np.full(n, st.index))
        st.first_row, st.n_rows = row, n
        row += n
        s0 += st.n_steps or 0
        t0 += (st.n_steps or 0) * st.timestep_fs * 1e-3
    if row < n_rows:
        raise IngestError(f"{n_rows} rows, but the run input's dump_thermo/run settings give only"
                          f" {row}; is this the run.in of this file?", path=path,
                          where=f"data row {row + 1}")
    return np.concatenate(times), np.concatenate(steps), np.concatenate(idx).astype(np.float64)


def run_meta(stages: list[Stage], *, engine: str) -> dict[str, Any]:
    kinds = [s.kind for s in stages if s.kind]
    dts = {s.timestep_fs for s in stages if s.timestep_fs}
    temps = [s.temperature_k[1] for s in stages if s.temperature_k]
    press = [s.pressure_gpa for s in stages if s.pressure_gpa is not None]
    ens = "+".join(dict.fromkeys(kinds)) if kinds else None
    return {
        "engine": engine,
        "ensemble": ens[:32] if ens else None,
        "timestep_fs": dts.pop() if len(dts) == 1 else None,
        "n_steps": sum(s.n_steps or 0 for s in stages) or None,
        "temperature_k": temps[-1] if temps else None,
        "pressure_gpa": press[-1] if press else None,
    }


def _gpumd_side_files(folder: Path) -> dict[str, Any]:
    """Atom count, GPUMD version and device from ``model.xyz`` and a GPUMD log in ``folder``."""
    meta: dict[str, Any] = {}
    model = folder / "model.xyz"
    if model.is_file():
        with open(model, encoding="utf-8", errors="replace") as fh:
            first = fh.readline().split()
        if first and first[0].isdigit():
            meta["n_atoms"] = int(first[0])
    for log in sorted(folder.glob("log*")):
        text = log.read_text(encoding="utf-8", errors="replace")[:20_000]
        if "GPUMD" not in text:
            continue
        if m := re.search(r"Version\s+([\w.]+)", text):
            meta["engine_version"] = m.group(1)
        if m := re.search(r"Number of atoms is (\d+)", text):
            meta.setdefault("n_atoms", int(m.group(1)))
        if m := re.search(r"Device name:\s+(.+)", text):
            meta["hardware"] = m.group(1).strip()
        break
    return meta


# -- documented CSV / Parquet tables ----------------------------------------------------------

_NAME_UNIT = re.compile(r"^\s*(.+?)\s*[\[(]\s*(.*?)\s*[\])]\s*$")


def _split_header(name: str) -> tuple[str, str | None]:
    if m := _NAME_UNIT.match(name):
        return m.group(1), m.group(2)
    return name.strip(), None


def _read_csv_columns(path: str) -> tuple[dict[str, np.ndarray], dict[str, str | None], list[int]]:
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        with text_errors(path, reader):
            return _csv_columns(reader, path)


def _csv_columns(reader, path: str) -> tuple[dict[str, np.ndarray], dict[str, str | None], list[int]]:
    """Named float columns from a CSV reader whose first row is the header."""
    try:
        header = next(reader)
    except StopIteration:
        raise IngestError("empty file", path=path) from None
    if not header:
        raise IngestError("the first line must name the columns", path=path, where="line 1")
    names, units = zip(*(_split_header(h) for h in header), strict=True)
    if len(set(names)) != len(names):
        raise IngestError(f"a column name appears twice in {list(names)}", path=path, where="line 1")
    rows, lines = [], []
    for row in reader:
        if not row or not "".join(row).strip():
            continue
        lineno = reader.line_num
        if len(row) != len(names):
            raise IngestError(f"{len(row)} values for {len(names)} columns", path=path,
                              where=f"line {lineno}")
        rows.append([strict_float(v, "value", path=path, where=f"line {lineno}") for v in row])
        lines.append(lineno)
    if not rows:
        raise IngestError("no data rows", path=path)
    data = np.array(rows, dtype=np.float64)
    return ({n: data[:, i] for i, n in enumerate(names)}, dict(zip(names, units, strict=True)), lines)


def _read_parquet_columns(path: str) -> tuple[dict[str, np.ndarray], dict[str, str | None], list[int]]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises several types for a bad file
        raise IngestError(f"not a readable Parquet file ({exc})", path=path) from exc
    cols, units = {}, {}
    for f in table.schema:
        name, unit = _split_header(f.name)
        meta = f.metadata or {}
        unit = meta.get(b"unit", b"").decode() or unit
        try:
            cols[name] = table[f.name].to_numpy(zero_copy_only=False).astype(np.float64)
        except (ValueError, TypeError) as exc:
            raise IngestError(f"column {f.name!r} is not numeric", path=path) from exc
        units[name] = unit
    return cols, units, list(range(1, table.num_rows + 1))


@reader_guard
def parse_table(
    path: str | Path,
    *,
    name: str | None = None,
    timestep_fs: float | None = None,
) -> MDData:
    """A documented series or profile table (CSV or Parquet; see the module docstring)."""
    path = str(path)
    reader = _read_parquet_columns if path.lower().endswith((".parquet", ".pq")) else _read_csv_columns
    cols, units, lines = reader(path)
    where = (lambda i: f"line {lines[i]}") if reader is _read_csv_columns else (lambda i: f"row {lines[i]}")
    for col, values in cols.items():
        if (bad := np.flatnonzero(~np.isfinite(values))).size:
            raise IngestError(f"column {col!r} holds NaN or inf", path=path, where=where(int(bad[0])))
    if "time" in cols:
        unit = (units.get("time") or "ps").lower()
        if unit not in TIME_TO_PS:
            raise IngestError(f"time unit {unit!r}: use ps, fs or ns", path=path, where="line 1")
        cols["time"] = cols["time"] * TIME_TO_PS[unit]
        units["time"] = "ps"
    elif "step" in cols and timestep_fs:
        cols = {"time": cols["step"] * timestep_fs * 1e-3, **cols}
        units = {"time": "ps", **units}
    else:
        raise IngestError("no 'time [ps]' column (or a 'step' column and a time step)", path=path,
                          where="line 1")
    position = next((p for p in POSITION_COLUMNS if p in cols), None)
    kind = "profile" if position else "series"
    steps = np.diff(cols["time"])
    bad = np.flatnonzero(steps < 0 if position else steps <= 0)
    if bad.size:
        rule = "must not decrease" if position else "must increase from row to row"
        raise IngestError(f"non-monotonic time: {cols['time'][bad[0] + 1]:g} ps after"
                          f" {cols['time'][bad[0]]:g} ps (time {rule})", path=path,
                          where=where(int(bad[0]) + 1))
    for c in cols:
        units[c] = units.get(c) or UNITS.get(c)
    meta = {"timestep_fs": timestep_fs} if timestep_fs else {}
    notes = [f"profile along {position}"] if position else []
    return MDData(name=name or Path(path).stem, kind=kind, columns=cols, units=units, meta=meta,
                  notes=notes)


@reader_guard
def parse_observables_csv(path: str | Path) -> list[ReportedObservable]:
    """``name,value,unit[,method]`` rows: scalars a study reported."""
    path = str(path)
    out = []
    with open(path, newline="", encoding="utf-8") as fh, text_errors(path, reader := csv.DictReader(fh)):
        if not reader.fieldnames or not {"name", "value"} <= set(reader.fieldnames):
            raise IngestError("an observables table needs the columns name,value[,unit,method]",
                              path=path, where="line 1")
        for row in reader:
            if None in row:
                raise IngestError("more values than the header names", path=path,
                                  where=f"line {reader.line_num}")
            value = strict_float(row["value"], "value", path=path, where=f"line {reader.line_num}")
            if not math.isfinite(value) or not (row.get("name") or "").strip():
                raise IngestError("needs a name and a finite value", path=path,
                                  where=f"line {reader.line_num}")
            out.append(ReportedObservable(row["name"].strip(), value, (row.get("unit") or None),
                                          (row.get("method") or "reported")))
    if not out:
        raise IngestError("no observables", path=path)
    return out


def detect_md_format(path: str | Path) -> str:
    """``gpumd-thermo`` | ``lammps-log`` | ``table`` | ``observables`` from the name and first bytes."""
    p = Path(path)
    name = p.name.lower()
    if name.startswith("thermo") and name.endswith(".out"):
        return "gpumd-thermo"
    if name.endswith((".parquet", ".pq")):
        return "table"
    head = p.read_text(encoding="utf-8", errors="replace")[:4000]
    if name.endswith(".csv"):
        first = head.splitlines()[0] if head else ""
        return "observables" if {"name", "value"} <= {c.strip() for c in first.split(",")} else "table"
    if "LAMMPS (" in head or name.startswith("log.lammps") or name.endswith(".lammps"):
        return "lammps-log"
    raise IngestError("cannot tell the MD format from the name; pass --format (gpumd-thermo,"
                      " lammps-log, table, observables)", path=str(path))

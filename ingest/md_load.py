"""Store MD output: an ``md_runs`` row, one lake file per series, derived and reported observables.

An MD run is identified by (model, system, label); later files with the same three add series or
observables to it (a shock run's profiles, then its dislocation-length series). Ingesting the same
file into the same run again adds nothing and says so (the file's sha256 is kept on the run).

Observables derived here are computed from the very arrays that go into the lake, with
``warehouse.mdcalc`` (the same functions ``queries.md`` uses over any window), and each row says
how in ``method`` and ``extra`` (series, stage, rows, time span):

- per stage of the run input (or the whole series when there are no stages): ``temperature_mean``
  and ``temperature_std`` (K), ``pressure_mean`` and ``pressure_std`` (GPa, hydrostatic, positive =
  compressive);
- per NVE stage (or the whole series of an NVE run) with a known atom count:
  ``energy_drift_max`` (eV/atom) and ``energy_drift_slope`` (eV/atom/ps);
- for a run whose ensemble is ``shock``: ``spall_strength`` (GPa) from the stress (or pressure)
  column along the shock axis, over every bin and time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from sqlalchemy import select

from ingest import md as parsers
from ingest.md_lammps import STATIC_KINDS, parse_lammps_log
from ingest.loader import IngestSummary, Loader, ingest_run
from ingest.writers.conflicts import with_retries
from ingest.md import MDData, ReportedObservable
from warehouse import models as m
from warehouse.core import Warehouse
from warehouse.errors import IngestError
from warehouse.hashing import sha256_file
from warehouse.mdcalc import calc_energy_drift, calc_spall_strength, calc_window_stats
from warehouse.names import check_name, check_optional_name

RUN_ATTRS = ("composition", "engine", "engine_version", "ensemble", "temperature_k",
             "pressure_gpa", "timestep_fs", "n_steps", "n_atoms", "hardware")


@dataclass(frozen=True, slots=True)
class RunOptions:
    """What the command line says about the run; a value here beats one read from the files."""

    model: str | None
    system: str
    label: str | None = None
    composition: str | None = None
    engine: str | None = None
    engine_version: str | None = None
    ensemble: str | None = None
    temperature_k: float | None = None
    pressure_gpa: float | None = None
    timestep_fs: float | None = None
    n_steps: int | None = None
    n_atoms: int | None = None
    hardware: str | None = None
    shock_axis: str = "z"
    status: str | None = None  # e.g. "failed" for a run that blew up


def parse_md_path(
    path: str | Path, *, fmt: str | None = None, run_in: str | Path | None = None,
    timestep_fs: float | None = None, every: int | None = None, series: str | None = None,
) -> tuple[list[MDData], list[ReportedObservable], Path]:
    """Read ``path`` (a file, or a GPUMD folder holding ``thermo.out``) with the right parser."""
    p = Path(path)
    if p.is_dir() and (p / "thermo.out").is_file():
        p = p / "thermo.out"
    if p.is_dir():
        raise IngestError("this is a folder without a thermo.out; name the MD output file (a"
                          " thermo.out, a LAMMPS log, a series table)", path=str(path))
    if not p.is_file():
        raise IngestError("no such file", path=str(path))
    fmt = fmt or parsers.detect_md_format(p)
    if fmt == "gpumd-thermo":
        data = [parsers.parse_gpumd_thermo(p, run_in=run_in, timestep_fs=timestep_fs, every=every)]
    elif fmt == "lammps-log":
        data = parse_lammps_log(p, timestep_fs=timestep_fs)
    elif fmt == "table":
        data = [parsers.parse_table(p, name=series, timestep_fs=timestep_fs)]
    elif fmt == "observables":
        return [], parsers.parse_observables_csv(p), p
    else:
        raise IngestError(f"unknown MD format {fmt!r}: gpumd-thermo, lammps-log, table,"
                          " observables", path=str(path))
    if series and fmt != "table":
        for i, d in enumerate(data):
            d.name = series if len(data) == 1 else f"{series}_{i + 1}"
    return data, [], p


def ingest_md(
    wh: Warehouse,
    path: str | Path,
    opts: RunOptions,
    *,
    fmt: str | None = None,
    run_in: str | Path | None = None,
    every: int | None = None,
    series: str | None = None,
    observables: Sequence[ReportedObservable] = (),
    argv: list[str] | None = None,
) -> IngestSummary:
    """Parse ``path``, then store the run, its series and its observables in one transaction."""
    data, reported, source = parse_md_path(path, fmt=fmt, run_in=run_in,
                                           timestep_fs=opts.timestep_fs, every=every, series=series)
    sha = sha256_file(source)

    def attempt(_: int) -> IngestSummary:
        with ingest_run(wh, kind="md", source=str(source), source_sha256=sha, argv=argv) as ld:
            run = _find_or_create_run(ld, opts, data)
            sources = dict((run.extra or {}).get("sources", {}))
            if sha in sources:
                ld.summary.seen("md files")
                ld.summary.notes.append(f"{source} is already stored in MD run {run.id}")
                return ld.summary
            for d in data:
                _add_series(ld, run, d, source)
                _derive(ld, run, d, opts)
            for obs in [*reported, *observables]:
                _add_observable(ld, run, obs.name, obs.value, obs.unit, obs.method,
                                {"source": str(source)} if obs in reported else None)
            extra = dict(run.extra or {})
            extra["sources"] = {**sources, sha: str(source)}
            run.extra = extra
            ld.s.flush()
        return ld.summary

    return with_retries(attempt, what=str(source))


def _find_or_create_run(ld: Loader, opts: RunOptions, data: list[MDData]) -> m.MDRun:
    model_id = ld.model(opts.model) if opts.model else None
    # no unique key spans (system, model, label): concurrent ingests for one run queue here
    ld.names.lock("md-run", opts.system, model_id, opts.label)
    stmt = select(m.MDRun).where(
        m.MDRun.system == opts.system,
        m.MDRun.model_id.is_(None) if model_id is None else m.MDRun.model_id == model_id,
        m.MDRun.label.is_(None) if opts.label is None else m.MDRun.label == opts.label,
    )
    run = ld.s.scalars(stmt).first()
    found: dict[str, Any] = {}
    for d in data:
        found.update({k: v for k, v in d.meta.items() if v is not None})
    given = {k: getattr(opts, k) for k in RUN_ATTRS if getattr(opts, k) is not None}
    attrs = {**{k: found[k] for k in RUN_ATTRS if k in found}, **given}
    if run is None:
        check_name(opts.system, what="MD system")
        check_optional_name(opts.label, what="MD run label")
        run = m.MDRun(model_id=model_id, system=opts.system, label=opts.label,
                      ingest_run_id=ld.run.id, extra={}, **attrs)
        ld.s.add(run)
        ld.summary.add("md runs")
    else:
        for k, v in attrs.items():
            if getattr(run, k) is None:
                setattr(run, k, v)
        ld.summary.seen("md runs")
    if opts.status:
        run.extra = {**(run.extra or {}), "status": opts.status}
    ld.s.flush()
    return run


def _add_series(ld: Loader, run: m.MDRun, d: MDData, source: Path) -> None:
    taken = ld.s.scalar(select(m.MDSeries.id).where(m.MDSeries.md_run_id == run.id,
                                                    m.MDSeries.name == d.name))
    if taken is not None:
        raise IngestError(f"MD run {run.id} already has a series named {d.name!r} from another"
                          " file; pass --series NAME or another --label", path=str(source))
    lf = ld.reserve_lake_file("md_series")
    row = m.MDSeries(md_run_id=run.id, name=d.name, columns=dict(d.units), n_rows=d.n_rows,
                     lake_file_id=lf.id)
    ld.s.add(row)
    ld.s.flush()
    table = pa.table({"md_series_id": pa.array(np.full(d.n_rows, row.id), pa.int64()),
                      **{k: pa.array(v, pa.float64()) for k, v in d.columns.items()}})
    model = ld.names.model_name(run.model_id) or "none"
    ld.fill_lake_file(lf, "md_series", table, model=model, system=run.system)
    extra = dict(run.extra or {})
    extra.setdefault("series", {})[d.name] = {
        "kind": d.kind, "source": str(source), "notes": d.notes,
        "stages": [s.as_dict() for s in d.stages],
    }
    run.extra = extra
    ld.summary.add("md series")
    ld.summary.notes += [f"{d.name}: {note}" for note in d.notes]


def _add_observable(ld: Loader, run: m.MDRun, name: str, value: float, unit: str | None,
                    method: str, extra: dict[str, Any] | None, *, derived: bool = False) -> None:
    """One observable; a derived one whose name the run already holds gets ``@<series>`` added."""
    taken = set(ld.s.scalars(select(m.MDObservable.name).where(m.MDObservable.md_run_id == run.id)))
    if name in taken and derived and extra and f"{name}@{extra['series']}" not in taken:
        name = f"{name}@{extra['series']}"
    elif name in taken:
        raise IngestError(f"MD run {run.id} ({run.system}, label {run.label!r}) already has an"
                          f" observable {name!r}; pass another --label for another run")
    ld.s.add(m.MDObservable(md_run_id=run.id, name=name, value=float(value), unit=unit,
                            method=method, extra=extra))
    ld.s.flush()
    ld.summary.add("md observables")


def _windows(d: MDData, run_ensemble: str | None
             ) -> list[tuple[dict[str, Any], slice, str | None, int | None]]:
    """(description, rows, ensemble kind, atoms) per stage, or one window over the whole series.

    A stage without dynamics (a LAMMPS ``minimize`` or ``run 0``) gets no window: a mean
    temperature or a drift over it means nothing.
    """
    stages = [s for s in d.stages if s.n_rows]
    if len(stages) > 1:
        return [({"stage": s.index, "ensemble": s.ensemble}, slice(s.first_row, s.first_row + s.n_rows),
                 s.kind, s.n_atoms) for s in stages if s.kind not in STATIC_KINDS]
    if len(stages) == 1:
        s = stages[0]
        if s.kind in STATIC_KINDS:
            return []
        return [({"ensemble": s.ensemble}, slice(0, d.n_rows), s.kind or run_ensemble, s.n_atoms)]
    return [({}, slice(0, d.n_rows), run_ensemble, None)]


def observable_name(base: str, desc: dict[str, Any], *, n_nve: int = 0) -> str:
    """``base``, or ``base@stage<k>`` for a run input of several stages.

    Energy drift keeps the plain name when only one stage is NVE (the usual NVT-then-NVE run),
    so drift tables find it by one name.
    """
    if "stage" not in desc or (base.startswith("energy_drift") and n_nve == 1):
        return base
    return f"{base}@stage{desc['stage']}"


def hydrostatic_pressure(columns: dict[str, np.ndarray]) -> np.ndarray | None:
    if "pressure" in columns:
        return columns["pressure"]
    diag = [f"pressure_{c}" for c in ("xx", "yy", "zz")]
    if all(c in columns for c in diag):
        return np.mean([columns[c] for c in diag], axis=0)
    return None


def total_energy(columns: dict[str, np.ndarray]) -> np.ndarray | None:
    if "total_energy" in columns:
        return columns["total_energy"]
    if "kinetic_energy" in columns and "potential_energy" in columns:
        return columns["kinetic_energy"] + columns["potential_energy"]
    return None


def _derive(ld: Loader, run: m.MDRun, d: MDData, opts: RunOptions) -> None:
    if d.kind == "series":
        windows = _windows(d, run.ensemble)
        n_nve = sum((k or "").upper() == "NVE" for _, _, k, _ in windows)
        for desc, rows, kind, n_atoms in windows:
            _derive_window(ld, run, d, desc, rows, kind, n_nve,
                           opts.n_atoms or n_atoms or run.n_atoms)
    if (run.ensemble or "").lower() == "shock":
        _derive_spall(ld, run, d, opts.shock_axis)


def _derive_window(ld: Loader, run: m.MDRun, d: MDData, desc: dict[str, Any], rows: slice,
                   kind: str | None, n_nve: int, n_atoms: int | None) -> None:
    t = d.columns["time"][rows]
    span = {"series": d.name, **desc, "rows": [rows.start + 1, rows.stop],
            "t_start_ps": float(t[0]), "t_end_ps": float(t[-1])}
    where = (f"stage {desc['stage']} ({desc.get('ensemble')}), " if "stage" in desc else "")
    where += f"rows {rows.start + 1}-{rows.stop}, {t[0]:g}-{t[-1]:g} ps"
    quantities = {"temperature": (d.columns.get("temperature"), "K", "temperature"),
                  "pressure": (hydrostatic_pressure(d.columns), "GPa",
                               "hydrostatic pressure (Pxx+Pyy+Pzz)/3")}
    for name, (values, unit, what) in quantities.items():
        if values is None:
            continue
        stats = calc_window_stats(values[rows])
        extra = {**span, "n_samples": stats.n_samples}
        _add_observable(ld, run, observable_name(f"{name}_mean", desc), stats.mean, unit,
                        f"mean of {what} of series {d.name!r} over {where}", extra, derived=True)
        _add_observable(ld, run, observable_name(f"{name}_std", desc), stats.std, unit,
                        f"population standard deviation of {what} of series {d.name!r} over {where}",
                        extra, derived=True)
    energy = total_energy(d.columns)
    if (kind or "").upper() != "NVE" or energy is None or len(t) < 2:
        return
    if not n_atoms:
        ld.summary.notes.append(f"energy drift of {d.name!r} not derived: the atom count is"
                                " unknown (pass --n-atoms)")
        return
    drift = calc_energy_drift(t, energy[rows], n_atoms)
    extra = {**span, "n_samples": drift.n_samples, "n_atoms": n_atoms}
    _add_observable(ld, run, observable_name("energy_drift_max", desc, n_nve=n_nve),
                    drift.max_abs_per_atom, "eV/atom",
                    f"max |E(t)-E(t0)|/N of series {d.name!r} over {where}", extra, derived=True)
    _add_observable(ld, run, observable_name("energy_drift_slope", desc, n_nve=n_nve),
                    drift.slope_per_atom_per_ps, "eV/atom/ps",
                    f"least-squares slope of E(t)/N vs t of series {d.name!r} over {where}", extra,
                    derived=True)


def stress_column(columns: dict[str, Any], axis: str) -> tuple[str, bool] | None:
    """The column holding the normal stress along ``axis``: (name, is_pressure)."""
    for name in (f"stress_{axis}{axis}", f"sigma_{axis}{axis}", f"stress_{axis}", "stress"):
        if name in columns:
            return name, False
    for name in (f"pressure_{axis}{axis}", f"p{axis}{axis}", f"pressure_{axis}"):
        if name in columns:
            return name, True
    return None


def _derive_spall(ld: Loader, run: m.MDRun, d: MDData, axis: str) -> None:
    found = stress_column(d.columns, axis)
    if found is None:
        return
    col, is_pressure = found
    value = calc_spall_strength(d.columns[col], is_pressure=is_pressure)
    i = int(np.argmax(-d.columns[col] if is_pressure else d.columns[col]))
    sign = "-" if is_pressure else ""
    extra = {"series": d.name, "column": col, "axis": axis, "at_time_ps": float(d.columns["time"][i]),
             "row": i + 1}
    _add_observable(ld, run, "spall_strength", value, "GPa",
                    f"max of {sign}{col} (tensile positive) over every row of series {d.name!r}",
                    extra, derived=True)

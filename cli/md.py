"""``warehouse md ...`` (drift, observable, series) and ``warehouse ingest md|properties``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.context import WarehouseGroup, argv, open_from
from cli.output import Format, FormatOpt, OutOpt, emit, render

app = typer.Typer(cls=WarehouseGroup, help="MD stability, observables across members, series.",
                  no_args_is_help=True)

ModelsOpt = Annotated[list[str] | None, typer.Option("--model", "-m", help="Only these models (repeatable).")]
EnsembleOpt = Annotated[str | None, typer.Option("--ensemble", "-e", help="The members of this ensemble.")]
SystemOpt = Annotated[str | None, typer.Option("--system", "-s", help="Only runs of this system.")]
LabelOpt = Annotated[str | None, typer.Option("--label", help="Only runs with this label.")]


def _parse_observable(text: str):
    from ingest.md import ReportedObservable
    from warehouse.errors import IngestError

    name, _, rest = text.partition("=")
    value, _, unit = rest.partition(":")
    try:
        return ReportedObservable(name.strip(), float(value), unit.strip() or None)
    except ValueError:
        raise IngestError(f"--observable {text!r}: write NAME=VALUE[:UNIT], e.g."
                          " spall_strength=16.69:GPa") from None


def ingest_md(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="thermo.out (or its folder), a LAMMPS log, a series/profile CSV or Parquet, or an observables CSV.")],
    system: Annotated[str, typer.Option("--system", "-s", help="System label, e.g. 'HEA-quinary' or 'Cu-shock'.")],
    model: Annotated[str | None, typer.Option("--model", "-m", help="Model that drove the run.")] = None,
    label: Annotated[str | None, typer.Option("--label", help="Tells runs of one model and system apart (e.g. 'T=3000K').")] = None,
    fmt: Annotated[str | None, typer.Option("--format", help="gpumd-thermo, lammps-log, table or observables (default: from the file).")] = None,
    series: Annotated[str | None, typer.Option("--series", help="Name of the stored series (default: thermo, or the file name).")] = None,
    run_in: Annotated[Path | None, typer.Option("--run-in", help="GPUMD run.in (default: the one beside thermo.out).")] = None,
    timestep_fs: Annotated[float | None, typer.Option("--timestep-fs", help="Time step in fs (beats the run input).")] = None,
    every: Annotated[int | None, typer.Option("--every", help="Sampling interval in steps (beats the run input).")] = None,
    ensemble: Annotated[str | None, typer.Option("--ensemble", help="NVE, NVT, NPT, shock, ... (default: from the run input).")] = None,
    temperature: Annotated[float | None, typer.Option("--temperature", help="Temperature in K.")] = None,
    pressure: Annotated[float | None, typer.Option("--pressure", help="Pressure in GPa.")] = None,
    n_atoms: Annotated[int | None, typer.Option("--n-atoms", help="Number of atoms (needed for drift per atom).")] = None,
    composition: Annotated[str | None, typer.Option("--composition", help="e.g. MoNbTaVW.")] = None,
    engine: Annotated[str | None, typer.Option("--engine", help="MD engine (default: from the file).")] = None,
    engine_version: Annotated[str | None, typer.Option("--engine-version", help="Engine version.")] = None,
    hardware: Annotated[str | None, typer.Option("--hardware", help="Hardware it ran on.")] = None,
    shock_axis: Annotated[str, typer.Option("--shock-axis", help="Axis of the shock (spall strength uses stress along it).")] = "z",
    status: Annotated[str | None, typer.Option("--status", help="Mark the run, e.g. 'failed' when it blew up.")] = None,
    observable: Annotated[list[str] | None, typer.Option("--observable", help="Reported scalar NAME=VALUE[:UNIT] (repeatable).")] = None,
) -> None:
    """Store an MD run's series and observables (derived ones computed from the series).

    Example: warehouse ingest md runs/Cu/thermo.out --model unep-v1 --system Cu --label 300K
    """
    from ingest.md_load import RunOptions
    from ingest.md_load import ingest_md as run_ingest

    obs = [_parse_observable(o) for o in observable or ()]
    opts = RunOptions(model=model, system=system, label=label, composition=composition,
                      engine=engine, engine_version=engine_version, ensemble=ensemble,
                      temperature_k=temperature, pressure_gpa=pressure, timestep_fs=timestep_fs,
                      n_atoms=n_atoms, hardware=hardware, shock_axis=shock_axis, status=status)
    with open_from(ctx) as wh:
        summary = run_ingest(wh, path, opts, fmt=fmt, run_in=run_in, every=every, series=series,
                             observables=obs, argv=argv())
    typer.echo(summary.line())
    for note in summary.notes:
        typer.echo(f"  {note}", err=True)


def ingest_properties(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="Properties CSV/JSON; a UNEP-v1 data.json, unep_v1_dft_ref folder or prediction .npz.")],
    fmt: Annotated[str | None, typer.Option("--format", help="csv, json, unep-eos, unep-stacking-fault, unep-reference, unep-predictions (default: from the path).")] = None,
    model: Annotated[str | None, typer.Option("--model", "-m", help="UNEP-v1 data.json: the NEP model (default unep-v1); .npz: the model (default: file name).")] = None,
    reference: Annotated[str, typer.Option("--reference", help="UNEP-v1 files: name of the DFT level of theory.")] = "VASP-PBE (UNEP-v1 reference)",
    ref_dir: Annotated[Path | None, typer.Option("--ref-dir", help=".npz predictions: the unep_v1_dft_ref folder they were computed on.")] = None,
) -> None:
    """Store physical properties from a model or a level of theory.

    Example: warehouse ingest properties ../shared/data/gpumd_wizard/unep_v1_dft_ref/eos/data.json
    """
    from ingest.properties import ingest_properties as run_ingest

    with open_from(ctx) as wh:
        summary = run_ingest(wh, path, fmt=fmt, model=model, reference=reference, ref_dir=ref_dir,
                             argv=argv())
    typer.echo(summary.line())


@app.command()
def drift(
    ctx: typer.Context,
    model: ModelsOpt = None,
    system: Annotated[list[str] | None, typer.Option("--system", "-s", help="Only these systems (repeatable).")] = None,
    fmt: FormatOpt = Format.TABLE,
    out: OutOpt = None,
) -> None:
    """NVE energy drift (meV/atom, meV/atom/ps) per model, system and temperature.

    Example: warehouse md drift --system HEA --format md
    """
    from queries.md import drift_table

    with open_from(ctx) as wh:
        report = drift_table(wh, models=model or (), systems=system or ())
    emit(render(report.table, fmt, digits=4, notes=report.notes), out)


@app.command()
def observable(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Observable name, e.g. spall_strength.")],
    ensemble: EnsembleOpt = None,
    model: ModelsOpt = None,
    system: SystemOpt = None,
    label: LabelOpt = None,
    fmt: FormatOpt = Format.TABLE,
    out: OutOpt = None,
) -> None:
    """An observable across ensemble members: values, mean, std (population and sample), rel. std.

    Example: warehouse md observable spall_strength --ensemble unep-shock --format latex
    """
    from queries.md import observable_stats

    with open_from(ctx) as wh:
        report = observable_stats(wh, name, ensemble=ensemble, models=model or (), system=system,
                                  label=label)
    emit(render(report.table, fmt, digits=3, notes=report.notes), out)


@app.command()
def series(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Series name, e.g. thermo or dislocation_length.")],
    column: Annotated[str, typer.Argument(help="Column to show, e.g. temperature.")],
    ensemble: EnsembleOpt = None,
    model: ModelsOpt = None,
    system: SystemOpt = None,
    label: LabelOpt = None,
    time: Annotated[float | None, typer.Option("--time", help="Profiles: the time (ps) to show; default the last.")] = None,
    fmt: FormatOpt = Format.TABLE,
    out: OutOpt = None,
) -> None:
    """One column of a series (or profile) across member runs, in long form.

    Example: warehouse md series dislocation_length length --ensemble unep-shock -f csv
    """
    from queries.md import series_overlay

    with open_from(ctx) as wh:
        report = series_overlay(wh, series=name, column=column, ensemble=ensemble,
                                models=model or (), system=system, label=label, time=time)
    emit(render(report.table, fmt, digits=4, notes=report.notes), out)

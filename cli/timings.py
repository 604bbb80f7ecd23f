"""``warehouse timings`` (list cost records) and ``warehouse ingest timings`` (store them)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.context import argv, open_from
from cli.output import Format, FormatOpt, OutOpt, emit, render


SCI_COLUMNS = ("atom_steps_per_s", "s_per_atom_step", "cost", "wall_s")


def readable(df, fmt: Format):
    """Rates and costs span decades: show them with 4 significant digits in text tables."""
    if fmt in (Format.TABLE, Format.MD):
        df = df.copy()
        for c in SCI_COLUMNS:
            if c in df.columns:
                df[c] = [("-" if v != v else f"{v:.4g}") for v in df[c].astype(float)]
    return df


def timings_cmd(
    ctx: typer.Context,
    model: Annotated[list[str] | None, typer.Option("--model", "-m", help="Only these models (repeatable).")] = None,
    task: Annotated[str | None, typer.Option("--task", help="md, inference or training.")] = None,
    hardware: Annotated[list[str] | None, typer.Option("--hardware", help="Only these hardware classes (repeatable).")] = None,
    fmt: FormatOpt = Format.TABLE,
    out: OutOpt = None,
) -> None:
    """List timing records: hardware, software, atoms, steps, wall time and atom-steps/s.

    Example: warehouse timings --model unep-v1 --task md --format json
    """
    from queries.timings import timings

    with open_from(ctx) as wh:
        table = timings(wh, models=model or (), task=task, hardware=hardware or ())
    if fmt is Format.TABLE:  # keep the terminal table readable
        table = table.drop(columns=["device_model", "cpu_model", "software_version", "run_id"])
    emit(render(readable(table, fmt), fmt, digits=4), out)


def ingest_timings_cmd(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="GPUMD or LAMMPS log, or a .csv/.yaml/.json table.")],
    model: Annotated[str | None, typer.Option("--model", "-m", help="Model the timings belong to (a table may name it per row).")] = None,
    engine: Annotated[str | None, typer.Option("--engine", help="gpumd, lammps or table (default: detected).")] = None,
    hardware: Annotated[str | None, typer.Option("--hardware", help="The device when the log counts GPUs but does not name them (KOKKOS), else the hardware class label.")] = None,
    cpu_model: Annotated[str | None, typer.Option("--cpu-model", help="CPU model, when the log cannot tell it.")] = None,
    precision: Annotated[str | None, typer.Option("--precision", help="e.g. float32, float64, mixed.")] = None,
) -> None:
    """Store timings from a GPUMD or LAMMPS log, or from a CSV/YAML/JSON table.

    Example: warehouse ingest timings log.Cu --model pdcunip-nep
    """
    from ingest.timings import ingest_timings

    with open_from(ctx) as wh:
        summary = ingest_timings(wh, path, model=model, engine=engine, argv=argv(), overrides={
            "hardware": hardware, "cpu_model": cpu_model, "precision": precision})
    typer.echo(summary.line())
    for note in summary.notes:
        typer.echo(f"  {note}", err=True)

"""``warehouse plot``: figures (PNG or SVG) for papers. Each topic adds its commands here."""

from __future__ import annotations

import typer

from cli.context import WarehouseGroup

app = typer.Typer(cls=WarehouseGroup, help="Write figures (PNG at 300 dpi, SVG or PDF) computed from the warehouse.",
                  no_args_is_help=True)


# -- MD and properties (issue 7): drift vs temperature, member overlays, parity ---------------

from pathlib import Path as _Path  # noqa: E402
from typing import Annotated as _Annotated  # noqa: E402

md_app = typer.Typer(cls=WarehouseGroup, help="MD figures: drift vs temperature, overlays.",
                     no_args_is_help=True)
app.add_typer(md_app, name="md")
_FigOut = _Annotated[_Path, typer.Option("--out", "-o", help="Figure file (.png, .svg or .pdf).")]
_Models = _Annotated[list[str] | None, typer.Option("--model", "-m", help="Only these models (repeatable).")]


@md_app.command("drift")
def md_drift_plot(
    ctx: typer.Context,
    out: _FigOut,
    model: _Models = None,
    system: _Annotated[list[str] | None, typer.Option("--system", "-s", help="Only these systems.")] = None,
    slope: _Annotated[bool, typer.Option("--slope", help="Plot the fitted slope, not the max drift.")] = False,
) -> None:
    """NVE energy drift against temperature per model and system, log scale.

    Example: warehouse plot md drift --system HEA --out drift.png
    """
    from cli.context import open_from
    from queries.md import drift_table
    from queries.md_figures import plot_drift

    with open_from(ctx) as wh:
        table = drift_table(wh, models=model or (), systems=system or ()).table
    column = "drift_slope_mev_per_atom_per_ps" if slope else "drift_max_mev_per_atom"
    typer.echo(f"wrote {plot_drift(table, out, column=column)}", err=True)


@md_app.command("series")
def md_series_plot(
    ctx: typer.Context,
    name: _Annotated[str, typer.Argument(help="Series name, e.g. thermo or profiles.")],
    column: _Annotated[str, typer.Argument(help="Column, e.g. temperature or stress_zz.")],
    out: _FigOut,
    ensemble: _Annotated[str | None, typer.Option("--ensemble", "-e", help="The members of this ensemble.")] = None,
    model: _Models = None,
    system: _Annotated[str | None, typer.Option("--system", "-s", help="Only runs of this system.")] = None,
    time: _Annotated[float | None, typer.Option("--time", help="Profiles: time (ps) to show; default the last.")] = None,
) -> None:
    """A series (vs time) or profile (vs position) overlaid across ensemble members.

    Example: warehouse plot md series profiles stress_zz --ensemble unep-shock --out spall.png
    """
    from cli.context import open_from
    from queries.md import series_overlay
    from queries.md_figures import plot_overlay

    with open_from(ctx) as wh:
        table = series_overlay(wh, series=name, column=column, ensemble=ensemble,
                               models=model or (), system=system, time=time).table
    typer.echo(f"wrote {plot_overlay(table, out)}", err=True)


@app.command("properties")
def properties_plot(
    ctx: typer.Context,
    out: _FigOut,
    prop: _Annotated[list[str] | None, typer.Option("--property", "-p", help="Only these property kinds.")] = None,
    model: _Models = None,
    reference: _Annotated[str | None, typer.Option("--reference", help="Level of theory to compare with.")] = None,
) -> None:
    """Parity of model properties against the reference, one panel per property kind.

    Example: warehouse plot properties --property eos_energy --out eos_parity.png
    """
    from cli.context import open_from
    from queries.md_figures import plot_parity
    from queries.properties import parity

    with open_from(ctx) as wh:
        report = parity(wh, properties=prop or (), models=model or (), reference=reference)
    typer.echo(f"wrote {plot_parity(report.table, report.summary, out)}", err=True)


# -- uncertainty (issue 6): U vs e scatter with rho, calibration curve ------------------------

from pathlib import Path as _Path  # noqa: E402
from typing import Annotated as _Annotated  # noqa: E402

from cli.compare import CommonOpt as _UQCommonOpt, Offset as _UQOffset, OffsetOpt as _UQOffsetOpt  # noqa: E402
from queries.uq_options import Level as _UQLevel, Quantity as _UQQuantity  # noqa: E402


@app.command("uq")
def uq_plot(
    ctx: typer.Context,
    dataset: _Annotated[list[str], typer.Option("--dataset", "-d", help="Dataset(s) with references (repeatable).")],
    out: _Annotated[_Path, typer.Option("--out", "-o", help="Figure file (.png, .svg or .pdf).")],
    ensemble: _Annotated[str | None, typer.Option("--ensemble", "-e", help="Ensemble whose disagreement is U.")] = None,
    grades: _Annotated[str | None, typer.Option("--grades", help="Use this kind of grades of --model as U.")] = None,
    model: _Annotated[str | None, typer.Option("--model", "-m", help="Model of --grades.")] = None,
    quantity: _Annotated[_UQQuantity | None, typer.Option("--quantity", "-q", help="Only energy or force.")] = None,
    level: _Annotated[_UQLevel | None, typer.Option("--level", help="Only structure or atom level.")] = None,
    bins: _Annotated[int, typer.Option("--bins", help="Equal-count bins of U for calibration.")] = 10,
    energy_offset: _UQOffsetOpt = _UQOffset.NONE,
    common: _UQCommonOpt = False,
) -> None:
    """Uncertainty vs true error on log axes with Spearman rho, beside the calibration curve.

    Example: warehouse plot uq --ensemble unep8 --dataset unep-v1-dft --out uq.png
    """
    from cli.context import open_from
    from queries.uq import apply_comparison_rule
    from queries.uq_data import read_ensemble_uq, read_grades_uq
    from queries.uq_figures import plot_uq
    from warehouse.errors import NoMatch

    if (ensemble is None) == (grades is None) or (grades is not None and model is None):
        raise NoMatch("give --ensemble NAME, or --grades KIND with --model NAME")
    with open_from(ctx) as wh:
        data = (read_ensemble_uq(wh, ensemble=ensemble, datasets=dataset,
                                 energy_offset=energy_offset.value) if ensemble else
                read_grades_uq(wh, model=model, kind=grades, datasets=dataset,
                               energy_offset=energy_offset.value))
    apply_comparison_rule(data, common=common)
    if data.note:
        typer.echo(f"note: {data.note}", err=True)
    typer.echo(f"wrote {plot_uq(data, out, quantity=quantity, level=level, n_bins=bins)}", err=True)


# -- leaderboard (issue 4): parity, periodic-table heatmap, error vs number of components ----

from enum import StrEnum as _StrEnum  # noqa: E402
from pathlib import Path as _Path  # noqa: E402
from typing import Annotated as _Annotated  # noqa: E402


class _Quantity(_StrEnum):
    ENERGY = "energy"
    FORCES = "forces"
    STRESS = "stress"


_Out = _Annotated[_Path, typer.Option("--out", "-o", help="Figure file (.png, .svg or .pdf).")]

from cli.compare import CommonOpt as _CommonOpt, Offset as _Offset, OffsetOpt as _OffsetOpt  # noqa: E402
_Dataset = _Annotated[list[str] | None, typer.Option("--dataset", "-d", help="Only these datasets (repeatable; pooled).")]
_Metric = _Annotated[str, typer.Option("--metric", help="Leaderboard column to draw, e.g. force_rmse.")]


@app.command("parity")
def parity_plot(
    ctx: typer.Context,
    model: _Annotated[str, typer.Option("--model", "-m", help="The model.")],
    dataset: _Annotated[str, typer.Option("--dataset", "-d", help="The dataset.")],
    out: _Out,
    quantity: _Annotated[_Quantity, typer.Option("--quantity", "-q", help="energy, forces or stress.")] = _Quantity.ENERGY,
    energy_offset: _OffsetOpt = _Offset.NONE,
) -> None:
    """Predicted against reference energies, force components or stress components.

    Errors in the corner are in the tables' units; --energy-offset per-element removes the
    model's fitted per-element energy shifts (the leaderboard's fit) and lists them.

    Example: warehouse plot parity --model eam-zhou --dataset unep-v1-dft --energy-offset per-element --out parity.pdf
    """
    from cli.context import open_from
    from queries.figures import parity_data, plot_parity

    with open_from(ctx) as wh:
        data = parity_data(wh, model=model, dataset=dataset, quantity=quantity.value,
                           energy_offset=energy_offset.value)
    path = plot_parity(data, out, quantity=quantity.value, title=f"{model} on {dataset}")
    typer.echo(f"wrote {path}", err=True)


@app.command("elements")
def elements_plot(
    ctx: typer.Context,
    model: _Annotated[str, typer.Option("--model", "-m", help="The model.")],
    out: _Out,
    dataset: _Dataset = None,
    metric: _Metric = "force_rmse",
    energy_offset: _OffsetOpt = _Offset.NONE,
) -> None:
    """Periodic-table heatmap of a per-element error (forces: atoms of that species).

    Example: warehouse plot elements --model unep-v1 --metric force_rmse --out elements.svg
    """
    from cli.context import open_from
    from queries.figures import plot_element_heatmap
    from queries.leaderboard import leaderboard
    from queries.metrics import get

    mt = get(metric)
    with open_from(ctx) as wh:
        table = leaderboard(wh, datasets=dataset or (), models=[model], by=["element"], pool=True,
                            metric=mt.name, energy_offset=energy_offset.value)
    shifted = ", per-element energy shifts removed" if energy_offset is _Offset.PER_ELEMENT else ""
    path = plot_element_heatmap(table, out, metric=mt.name, unit=mt.unit, label=mt.label,
                                title=f"{model}: {mt.label} per element{shifted}")
    typer.echo(f"wrote {path}", err=True)


@app.command("components")
def components_plot(
    ctx: typer.Context,
    out: _Out,
    model: _Annotated[list[str] | None, typer.Option("--model", "-m", help="Only these models (repeatable).")] = None,
    dataset: _Dataset = None,
    metric: _Metric = "energy_rmse",
    energy_offset: _OffsetOpt = _Offset.NONE,
    common: _CommonOpt = False,
) -> None:
    """An error against the number of components (elements per structure), one line per model.

    Models are compared on the same structures: a model's point for a number of components is
    drawn only when it predicted every such structure ok (the others are named on stderr), unless
    --common compares all on the structures they share.

    Example: warehouse plot components --metric energy_rmse --energy-offset per-element --out components.png
    """
    from cli.context import open_from
    from queries.figures import plot_components
    from queries.leaderboard import leaderboard_report
    from queries.metrics import get
    from queries.selection import complete

    mt = get(metric)
    with open_from(ctx) as wh:
        report = leaderboard_report(wh, datasets=dataset or (), models=model or (),
                                    by=["n_elements"], pool=True, metric=mt.name,
                                    energy_offset=energy_offset.value, common=common)
    table = report.table
    for note in report.notes:
        typer.echo(f"note: {note}", err=True)
    table = table[complete(table)]  # each point compares models on the same structures
    path = plot_components(table, out, metric=mt.name, unit=mt.unit, label=mt.label)
    typer.echo(f"wrote {path}", err=True)


# -- cost (issue 5): accuracy-cost Pareto fronts and throughput scaling ----------------------

from pathlib import Path as _Path  # noqa: E402
from typing import Annotated as _Annotated  # noqa: E402

from cli import pareto as _pareto  # noqa: E402


@app.command("pareto")
def pareto_plot(
    ctx: typer.Context,
    out: _Annotated[_Path, typer.Option("--out", "-o", help="Figure file (.png, .svg or .pdf).")],
    metric: _pareto.MetricOpt = "force-rmse",
    dataset: _pareto.DatasetOpt = None,
    hardware: _pareto.HardwareOpt = None,
    model: _pareto.ModelOpt = None,
    task: _pareto.TaskOpt = "md",
    price: _pareto.PriceOpt = None,
    pool: _pareto.PoolOpt = False,
    energy_offset: _OffsetOpt = _Offset.NONE,
    common: _CommonOpt = False,
) -> None:
    """Error against cost per model, one panel per timing protocol, the Pareto front drawn.

    Only models with every structure predicted ok are drawn (or all on their shared structures
    with --common); axes are logarithmic only when the values span more than 30x.

    Example: warehouse plot pareto --metric energy-rmse --dataset eos --out pareto.pdf
    """
    from queries.cost_figures import plot_pareto

    table = _pareto.pareto_table(ctx, metric=metric, dataset=dataset, hardware=hardware,
                                 model=model, task=task, price=price, pool=pool,
                                 energy_offset=energy_offset, common=common)
    for note in table.attrs.get("notes", []):
        typer.echo(f"note: {note}", err=True)
    typer.echo(f"wrote {plot_pareto(table, out)}", err=True)


@app.command("scaling")
def scaling_plot(
    ctx: typer.Context,
    out: _Annotated[_Path, typer.Option("--out", "-o", help="Figure file (.png, .svg or .pdf).")],
    model: _pareto.ModelOpt = None,
    hardware: _pareto.HardwareOpt = None,
    task: _pareto.TaskOpt = "md",
) -> None:
    """MD throughput (atom-steps/s) against system size per model and hardware, log-log.

    Example: warehouse plot scaling --model unep-v1 --out scaling.svg
    """
    from cli.context import open_from
    from queries.cost_figures import plot_scaling
    from queries.timings import scaling

    with open_from(ctx) as wh:
        table = scaling(wh, models=model or (), hardware=hardware or (), task=task)
    typer.echo(f"wrote {plot_scaling(table, out)}", err=True)

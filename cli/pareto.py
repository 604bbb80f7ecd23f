"""``warehouse pareto``: the accuracy-cost table and its Pareto front."""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

import typer

from cli.compare import CommonOpt, Offset, OffsetOpt
from cli.context import open_from
from cli.output import Format, OutOpt, emit, render
from cli.timings import readable

if TYPE_CHECKING:
    import pandas as pd


class ParetoFormat(StrEnum):
    TABLE = "table"
    MD = "md"
    CSV = "csv"
    JSON = "json"
    LATEX = "latex"


MetricOpt = Annotated[str, typer.Option("--metric", help="energy|force|stress-mae|rmse or force-norm-mae|rmse (queries.metrics).")]
DatasetOpt = Annotated[list[str] | None, typer.Option("--dataset", "-d", help="Dataset of the error (repeatable with --pool; default all, which must be one unless --pool).")]
PoolOpt = Annotated[bool, typer.Option("--pool", help="Pool several datasets into one error (never done silently).")]
HardwareOpt = Annotated[list[str] | None, typer.Option("--hardware", help="Hardware class(es) for the cost (repeatable).")]
ModelOpt = Annotated[list[str] | None, typer.Option("--model", "-m", help="Only these models (repeatable).")]
TaskOpt = Annotated[str, typer.Option("--task", help="Timing task that gives the cost: md or inference.")]
PriceOpt = Annotated[list[str] | None, typer.Option("--price-per-hour", help="CLASS=PRICE per device-hour (repeatable): compare hardware by money.")]


def pareto_table(ctx: typer.Context, *, metric: str, dataset: list[str] | None,
                 hardware: list[str] | None, model: list[str] | None, task: str,
                 price: list[str] | None, pool: bool = False, energy_offset: Offset = Offset.NONE,
                 common: bool = False) -> pd.DataFrame:
    from queries.pareto import pareto, parse_prices

    prices = parse_prices(price or (), hardware or ())
    with open_from(ctx) as wh:
        return pareto(wh, metric=metric, datasets=dataset or (), hardware=hardware or (),
                      models=model or (), task=task, price_per_hour=prices or None, pool=pool,
                      energy_offset=Offset(energy_offset).value, common=common)


def provenance(table: pd.DataFrame) -> str:
    """Where both axes came from, in one line (printed under every table and figure)."""
    return f"error: {table.attrs['error_source']}; cost: {table.attrs['cost_source']}"


def to_latex(df: pd.DataFrame) -> str:
    """A booktabs table of the front: model, hardware, error, cost, front marker."""
    import pandas as pd

    def esc(v: object) -> str:
        return str(v).replace("\\", r"\textbackslash{}").replace("_", r"\_").replace("&", r"\&").replace("%", r"\%")

    lines = [r"\begin{tabular}{llrrc}", r"\toprule",
             f"Model & Hardware & {esc(df['metric'].iloc[0])} & Cost ({esc(df['cost_unit'].iloc[0])}) & Front \\\\",
             r"\midrule"]
    for r in df.itertuples(index=False):
        err = "--" if pd.isna(r.error) else f"{r.error:.3g}"
        cost = "--" if pd.isna(r.cost) else f"{r.cost:.3g}"
        star = r"$\star$" if r.on_front else ""
        lines.append(f"{esc(r.model)} & {esc(r.hardware)} & {err} & {cost} & {star} \\\\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines)


def pareto_cmd(
    ctx: typer.Context,
    metric: MetricOpt = "force-rmse",
    dataset: DatasetOpt = None,
    hardware: HardwareOpt = None,
    model: ModelOpt = None,
    task: TaskOpt = "md",
    price: PriceOpt = None,
    pool: PoolOpt = False,
    energy_offset: OffsetOpt = Offset.NONE,
    common: CommonOpt = False,
    fmt: Annotated[ParetoFormat, typer.Option("--format", "-f", help="Output format.")] = ParetoFormat.TABLE,
    out: OutOpt = None,
) -> None:
    """Error against cost per model, and which models are on the Pareto front.

    Only models with an ok prediction for every structure are on a front, and costs are compared
    only within one timing protocol (task, system, atom count within 10 %, precision, hardware).

    Example: warehouse pareto --metric energy-rmse --dataset eos --energy-offset per-element --format md
    """
    table = pareto_table(ctx, metric=metric, dataset=dataset, hardware=hardware, model=model,
                         task=task, price=price, pool=pool, energy_offset=energy_offset,
                         common=common)
    if fmt is ParetoFormat.LATEX:
        emit(to_latex(table), out)
        return
    notes = [provenance(table), *table.attrs.get("notes", [])]
    if fmt in (ParetoFormat.JSON, ParetoFormat.CSV):
        for note in notes:
            typer.echo(f"note: {note}", err=True)
    if fmt is ParetoFormat.TABLE:
        drop = ["timing_id", "cost_unit", "metric", "datasets", "timing_system", "timing_precision"]
        if table["price_per_hour"].isna().all():  # unpriced: the protocol names the hardware
            drop += ["hardware", "price_per_hour"]
        table = table.drop(columns=drop)
    emit(render(readable(table, Format(fmt.value)), Format(fmt.value), digits=4,
                notes=notes), out)

"""``warehouse leaderboard``: error tables per model and dataset, breakdowns, exports."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer

from cli.compare import CommonOpt, Offset, OffsetOpt
from cli.context import open_from
from cli.output import Format, FormatOpt, OutOpt, emit


class By(StrEnum):
    SUBSET = "subset"
    ELEMENT = "element"
    N_ELEMENTS = "n-elements"


def leaderboard(
    ctx: typer.Context,
    dataset: Annotated[list[str] | None, typer.Option("--dataset", "-d", help="Only these datasets (repeatable).")] = None,
    model: Annotated[list[str] | None, typer.Option("--model", "-m", help="Only these models (repeatable); listed models show even with no predictions.")] = None,
    by: Annotated[list[By] | None, typer.Option("--by", help="Break down by subset tag, element or number of elements (repeatable, combines).")] = None,
    pool: Annotated[bool, typer.Option("--pool", help="Pool the selected datasets into one group.")] = False,
    exclude: Annotated[list[str] | None, typer.Option("--exclude-dataset", "-x", help="Leave this dataset out (repeatable).")] = None,
    metric: Annotated[str | None, typer.Option("--metric", help="Rank models by this metric (e.g. force_rmse, force_norm_rmse), lowest first; only models with every structure predicted ok are ranked.")] = None,
    energy_offset: OffsetOpt = Offset.NONE,
    common: CommonOpt = False,
    ci: Annotated[float | None, typer.Option("--ci", help="Bootstrap confidence level in percent, e.g. 95.")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the bootstrap.")] = 0,
    columns: Annotated[list[str] | None, typer.Option("--columns", help="Only these metric columns (repeatable or comma-separated): a name (force_rmse, or one outside the default table: force_norm_mae, force_norm_rmse) or a quantity (energy); keys and counts stay.")] = None,
    fmt: FormatOpt = Format.TABLE,
    out: OutOpt = None,
) -> None:
    """Energy (meV/atom), force (meV/Å) and stress (GPa) MAE and RMSE per model and dataset.

    Example: warehouse leaderboard --by element --energy-offset per-element --ci 95 --format latex --out table.tex
    """
    from queries.export import TOO_WIDE, report_text
    from queries.leaderboard import leaderboard_report
    from queries.stamp import make_stamp

    keys = [b.value.replace("-", "_") for b in by or ()]
    chosen = [c.strip() for text in columns or () for c in text.split(",") if c.strip()]
    with open_from(ctx) as wh:
        report = leaderboard_report(
            wh, datasets=dataset or (), models=model or (), exclude_datasets=exclude or (),
            by=keys, pool=pool, metric=metric, energy_offset=energy_offset.value, ci=ci, seed=seed,
            common=common, extra_metrics=chosen)  # --columns may name a non-default metric
        stamp = make_stamp(wh, report.fingerprint).text()
    if fmt in (Format.JSON, Format.CSV):
        for note in report.notes:
            typer.echo(f"note: {note}", err=True)
    text = report_text(report, fmt.value, stamp=stamp, columns=chosen)
    if fmt is Format.LATEX and TOO_WIDE in text:
        typer.echo("note: the table is wider than an A4 text width; choose fewer columns with"
                   " --columns (e.g. --columns energy,force)", err=True)
    emit(text, out)

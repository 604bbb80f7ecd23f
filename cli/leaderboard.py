"""``warehouse leaderboard``: error tables per model and dataset, breakdowns, exports."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from cli.compare import CommonOpt, Offset, OffsetOpt
from cli.context import open_from
from cli.output import Format, emit


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
    fmt: Annotated[Format, typer.Option("--format", "-f", help="Output format.")] = Format.TABLE,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write to this file instead of stdout.")] = None,
) -> None:
    """Energy (meV/atom), force (meV/Å) and stress (GPa) MAE and RMSE per model and dataset.

    Example: warehouse leaderboard --by element --energy-offset per-element --ci 95 --format latex --out table.tex
    """
    from queries.export import report_text
    from queries.leaderboard import COLUMNS, leaderboard_report
    from queries.stamp import make_stamp

    keys = [b.value.replace("-", "_") for b in by or ()]
    plain = not (keys or pool or exclude or metric or ci or common) and energy_offset is Offset.NONE
    with open_from(ctx) as wh:
        report = leaderboard_report(
            wh, datasets=dataset or (), models=model or (), exclude_datasets=exclude or (),
            by=keys, pool=pool, metric=metric, energy_offset=energy_offset.value, ci=ci, seed=seed,
            common=common)
        stamp = make_stamp(wh, report.fingerprint).text()
    if plain and fmt in (Format.JSON, Format.CSV):
        report.table = report.table[COLUMNS]  # the foundation's record keys, exactly
    if fmt in (Format.JSON, Format.CSV):
        for note in report.notes:
            typer.echo(f"note: {note}", err=True)
    emit(report_text(report, fmt.value, stamp=stamp), out)

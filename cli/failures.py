"""``warehouse failures``: failed and missing predictions with their reasons."""

from __future__ import annotations

from typing import Annotated

import typer

from cli.context import open_from
from cli.output import Format, FormatOpt, OutOpt, emit, render


def failures(
    ctx: typer.Context,
    model: Annotated[list[str] | None, typer.Option("--model", "-m", help="Only this model (repeatable).")] = None,
    dataset: Annotated[list[str] | None, typer.Option("--dataset", "-d", help="Only this dataset (repeatable).")] = None,
    missing: Annotated[bool, typer.Option("--missing/--failed-only", help="Also list structures without a prediction.")] = True,
    fmt: FormatOpt = Format.TABLE,
    out: OutOpt = None,
) -> None:
    """List failed and missing predictions with their reasons, one row per structure.

    Missing: a member of a dataset that the model has other predictions on (or of a named
    dataset, for a named model) without a prediction. A count per model and dataset, with the
    commonest reason, goes to stderr.

    Example: warehouse failures --model emt --dataset mlearn-Mo-test --format json
    """
    from queries.failures import failures as find, summary_lines

    with open_from(ctx) as wh:
        table = find(wh, models=model or [], datasets=dataset or [], missing=missing)
    if table.empty:
        typer.echo("no failed or missing predictions", err=True)
    for line in summary_lines(table):
        typer.echo(line, err=True)
    if not table.empty or fmt in (Format.JSON, Format.CSV):
        emit(render(table, fmt), out)

"""``warehouse properties``: property parity of models against a reference."""

from __future__ import annotations

from typing import Annotated

import typer

from cli.context import open_from
from cli.output import Format, FormatOpt, OutOpt, emit, render


def properties(
    ctx: typer.Context,
    prop: Annotated[list[str] | None, typer.Option("--property", "-p", help="Only these property kinds (repeatable).")] = None,
    material: Annotated[list[str] | None, typer.Option("--material", help="Only these materials (repeatable).")] = None,
    model: Annotated[list[str] | None, typer.Option("--model", "-m", help="Only these models (repeatable).")] = None,
    reference: Annotated[str | None, typer.Option("--reference", help="Level of theory to compare with (needed when several).")] = None,
    pairs: Annotated[bool, typer.Option("--pairs", help="Every (material, key) pair instead of MAE/RMSE per kind and model.")] = False,
    fmt: FormatOpt = Format.TABLE,
    out: OutOpt = None,
) -> None:
    """MAE/RMSE of model properties against a reference per property kind and model (or the pairs).

    Example: warehouse properties --property stacking_fault_energy --format md
    """
    from queries.properties import parity

    with open_from(ctx) as wh:
        report = parity(wh, properties=prop or (), materials=material or (), models=model or (),
                        reference=reference)
    table = report.table if pairs else report.summary
    emit(render(table, fmt, digits=4, notes=report.notes), out)

"""``warehouse report``: the results as a static site (tables and figures) that opens from file://."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.context import open_from


def report(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to write index.html and its figures into.")],
    dataset: Annotated[list[str] | None, typer.Option("--dataset", "-d", help="Only these datasets (repeatable).")] = None,
    energy_offset: Annotated[str, typer.Option("--energy-offset", help="none or per-element.")] = "none",
) -> None:
    """Write a static report: leaderboard, per-element heat map, Pareto, parity, UQ, MD, properties.

    Opens from file:// with no server; a provenance footer says what it was computed from.

    Example: warehouse report --out report/ --energy-offset per-element
    """
    from queries.report import build_report

    with open_from(ctx) as wh:
        index = build_report(wh, out, datasets=dataset or (), energy_offset=energy_offset)
    typer.echo(f"wrote {index}", err=True)

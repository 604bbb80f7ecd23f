"""``warehouse ingest grades``: per-atom extrapolation grades (e.g. D-optimality gamma) of a model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.context import argv, open_from


def grades(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="Extended XYZ with a per-atom array, or a CSV (hash|frame, atom_index, grade).")],
    model: Annotated[str, typer.Option("--model", "-m", help="Model the grades belong to.")],
    kind: Annotated[str, typer.Option("--kind", "-k", help="Kind of grade, e.g. gamma.")],
    array: Annotated[str | None, typer.Option("--array", help="Extended XYZ: per-atom array name (default: the kind).")] = None,
    dataset: Annotated[str | None, typer.Option("--dataset", "-d", help="CSV with frame numbers: the dataset they index.")] = None,
    subset: Annotated[str | None, typer.Option("--subset", help="CSV with frame numbers: the subset, when frame numbers repeat.")] = None,
) -> None:
    """Store per-atom grades of a model; `warehouse uq --grades KIND --model M` analyses them.

    Example: warehouse ingest grades gamma.xyz --model grace-fs --kind gamma
    """
    from ingest.grades import ingest_grades

    with open_from(ctx) as wh:
        summary = ingest_grades(wh, path, model=model, kind=kind, array=array, dataset=dataset,
                                subset=subset, argv=argv())
    typer.echo(summary.line())

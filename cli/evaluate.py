"""``warehouse evaluate``: run an ASE calculator over a dataset; store predictions and timings."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.context import argv, open_from


def evaluate(
    ctx: typer.Context,
    model: Annotated[str, typer.Option("--model", "-m", help="Name to store the predictions under.")],
    calculator: Annotated[str, typer.Option("--calculator", "-c", help=(
        "emt | eam:FILE|DIR|F1,F2 | nep:FILE | chgnet[:0.3.0|0.2.0] |"
        " sevennet:7net-0|7net-l3i5|7net-mf-0[:MODAL] | 'module:factory key=value ...'"))],
    dataset: Annotated[str, typer.Option("--dataset", "-d", help="Stored dataset to evaluate.")],
    device: Annotated[str, typer.Option("--device", help="cpu, cuda[:N], or auto (CUDA when torch sees one; torch calculators).")] = "cpu",
    batch_size: Annotated[int, typer.Option("--batch-size", help="Structures per model call for calculators with batched inference (chgnet, sevennet); 1: one at a time.")] = 1,
    md_steps: Annotated[int, typer.Option("--md-steps", help="Timed NVE MD steps per size (0: no MD timing).")] = 20,
    warmup: Annotated[int, typer.Option("--warmup", help="Untimed MD steps before the clock starts.")] = 5,
    sizes: Annotated[str | None, typer.Option("--sizes", help="Atom counts of the MD supercells, e.g. 128,1024,8192 (default 256).")] = None,
    cell: Annotated[Path | None, typer.Option("--cell", help="Structure file for the MD cell (default: the dataset's first periodic structure).")] = None,
) -> None:
    """Run an ASE calculator over a dataset and store its predictions and timings in one run.

    Example: warehouse evaluate --model unep-v1 --calculator nep:nep.txt --dataset eos --sizes 128,1024
    """
    from ingest.evaluate import run_evaluate
    from warehouse.errors import IngestError

    try:
        size_list = [int(s) for s in sizes.split(",")] if sizes else []
    except ValueError:
        raise IngestError(f"--sizes {sizes!r}: give atom counts separated by commas") from None
    with open_from(ctx) as wh:
        result = run_evaluate(wh, model=model, calculator=calculator, dataset=dataset,
                              device=device, batch_size=batch_size, md_steps=md_steps, warmup_steps=warmup,
                              sizes=size_list, cell=cell, argv=argv())
    typer.echo(result.summary.line())
    for note in result.summary.notes:
        typer.echo(f"  {note}")

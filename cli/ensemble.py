"""``warehouse ensemble``: named sets of models whose disagreement is an uncertainty."""

from __future__ import annotations

from typing import Annotated

import typer

from cli.context import WarehouseGroup, open_from
from cli.output import Format, FormatOpt, render

app = typer.Typer(cls=WarehouseGroup, help="Define ensembles of models for `warehouse uq`.",
                  no_args_is_help=True)


@app.command()
def add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Ensemble name (created if new).")],
    member: Annotated[list[str], typer.Option("--member", "-m", help="A stored model (repeatable).")],
    description: Annotated[str | None, typer.Option("--description", help="Free text.")] = None,
) -> None:
    """Create an ensemble or add member models to it.

    Example: warehouse ensemble add unep8 --member unep-v1 --member unep-v1-4-4-30
    """
    from ingest.ensembles import add_to_ensemble

    with open_from(ctx) as wh:
        added, present = add_to_ensemble(wh, name, member, description=description)
    typer.echo(f"ensemble {name}: added {added} members; already members {present}")


@app.command()
def remove(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Ensemble name.")],
    member: Annotated[list[str] | None, typer.Option("--member", "-m", help="Only remove these models (repeatable).")] = None,
) -> None:
    """Remove members from an ensemble, or the whole ensemble when no --member is given.

    Example: warehouse ensemble remove unep8 --member unep-v1-4-4-30
    """
    from ingest.ensembles import remove_from_ensemble

    with open_from(ctx) as wh:
        n = remove_from_ensemble(wh, name, member or ())
    typer.echo(f"ensemble {name}: removed {n} members" + ("" if member else " and the ensemble"))


@app.command("list")
def list_cmd(
    ctx: typer.Context,
    fmt: FormatOpt = Format.TABLE,
) -> None:
    """List ensembles with their members.

    Example: warehouse ensemble list --format json
    """
    from ingest.ensembles import list_ensembles

    with open_from(ctx) as wh:
        table = list_ensembles(wh)
    typer.echo(render(table, fmt))

"""``warehouse dataset``: list, rename and remove datasets."""

from __future__ import annotations

from typing import Annotated

import typer

from cli.context import WarehouseGroup, open_from
from cli.output import Format, FormatOpt, OutOpt, YesOpt, emit, render

app = typer.Typer(cls=WarehouseGroup, help="List, rename and remove datasets.", no_args_is_help=True)


@app.command("list")
def list_cmd(
    ctx: typer.Context,
    fmt: FormatOpt = Format.TABLE,
    out: OutOpt = None,
) -> None:
    """List datasets with their level of theory, structures, atoms and references.

    Example: warehouse dataset list --format csv
    """
    from queries.catalog import list_datasets

    with open_from(ctx) as wh:
        emit(render(list_datasets(wh), fmt), out)


@app.command()
def rename(
    ctx: typer.Context,
    old: Annotated[str, typer.Argument(help="Current name.")],
    new: Annotated[str, typer.Argument(help="New name.")],
) -> None:
    """Rename a dataset (its structures, labels and predictions stay as they are).

    Example: warehouse dataset rename mo mlearn-Mo-test
    """
    from ingest.edits import rename_dataset

    with open_from(ctx) as wh:
        rename_dataset(wh, old, new)
    typer.echo(f"dataset {old!r} is now {new!r}")


@app.command()
def remove(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Dataset to remove.")],
    yes: YesOpt = False,
) -> None:
    """Remove a dataset: its memberships, the structures no other dataset holds with their
    references and every model's predictions of them, and their lake files; one transaction.

    Example: warehouse dataset remove scratch --yes
    """
    from ingest.edits import remove_dataset

    with open_from(ctx) as wh:
        plan = remove_dataset(wh, name, dry_run=True)
        if not yes:
            typer.confirm(f"Remove {plan.line()}?", abort=True)
        done = remove_dataset(wh, name)
    typer.echo(f"removed {done.line()}")

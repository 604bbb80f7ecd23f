"""``warehouse model``: register models and their metadata, list them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.context import WarehouseGroup, argv, open_from
from cli.output import Format, FormatOpt, OutOpt, YesOpt, emit, render

app = typer.Typer(cls=WarehouseGroup, help="Register, show, list, rename and remove interatomic potentials.",
                  no_args_is_help=True)


@app.command()
def add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Model name, as predictions will refer to it.")],
    family: Annotated[str | None, typer.Option("--family", help="NEP, GRACE-FS, MACE, EAM, ...")] = None,
    version: Annotated[str | None, typer.Option("--version", help="Model version.")] = None,
    framework: Annotated[str | None, typer.Option("--framework", help="GPUMD, ASE, LAMMPS, ...")] = None,
    n_parameters: Annotated[int | None, typer.Option("--n-parameters", help="Number of parameters.")] = None,
    training_data: Annotated[str | None, typer.Option("--training-data", help="What it was trained on.")] = None,
    level_of_theory: Annotated[str | None, typer.Option("--level-of-theory", "-l", help="Level of theory of its training data.")] = None,
    conservative: Annotated[bool | None, typer.Option("--conservative/--direct-forces", help="Forces are -dE/dx (or predicted directly).")] = None,
    licence: Annotated[str | None, typer.Option("--licence", help="Licence of the model file.")] = None,
    url: Annotated[str | None, typer.Option("--url", help="Where to get it.")] = None,
    doi: Annotated[str | None, typer.Option("--doi", help="DOI of its paper.")] = None,
    file: Annotated[Path | None, typer.Option("--file", help="Parameter file: binds the name to its sha256.")] = None,
    calculator: Annotated[str | None, typer.Option("--calculator", "-c", help=(
        "Calculator spec (as for evaluate): binds the name to it and its files."))] = None,
) -> None:
    """Register a model (or complete the metadata of a registered one).

    --file and --calculator bind the name to its parameters: later evaluations and predictions
    under the name must use the same ones. A model that holds predictions but no binding can be
    bound this way; a bound one refuses other files.

    Example: warehouse model add unep-v1 --family NEP --n-parameters 98000 --file nep.txt
    """
    from ingest.registry import register_model

    with open_from(ctx) as wh:
        summary = register_model(
            wh, name, level_of_theory=level_of_theory, file=file, calculator=calculator,
            argv=argv(), family=family,
            version=version, framework=framework, n_parameters=n_parameters,
            training_data=training_data, conservative=conservative, licence=licence, url=url,
            doi=doi,
        )
    typer.echo(summary.line())
    for note in summary.notes:
        typer.echo(f"  {note}")


@app.command("list")
def list_cmd(
    ctx: typer.Context,
    fmt: FormatOpt = Format.TABLE,
    out: OutOpt = None,
) -> None:
    """List models with their metadata and number of predictions.

    Example: warehouse model list --format csv
    """
    from ingest.registry import list_models

    with open_from(ctx) as wh:
        table = list_models(wh)
    emit(render(table, fmt), out)


@app.command()
def show(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Model name.")],
    fmt: FormatOpt = Format.TABLE,
) -> None:
    """Show a model: its metadata, its binding (calculator, parameter files and sha256) and
    what is stored of it.

    Example: warehouse model show unep-v1
    """
    from ingest.registry import show_model

    with open_from(ctx) as wh:
        table = show_model(wh, name)
    typer.echo(render(table, fmt))


@app.command()
def rename(
    ctx: typer.Context,
    old: Annotated[str, typer.Argument(help="Current name.")],
    new: Annotated[str, typer.Argument(help="New name.")],
) -> None:
    """Rename a model (its lake files move to the new model=NAME folders).

    Example: warehouse model rename unep-v1 unep-v1-4-4-80
    """
    from ingest.edits import rename_model

    with open_from(ctx) as wh:
        moved = rename_model(wh, old, new)
    typer.echo(f"model {old!r} is now {new!r} ({len(moved)} lake files moved)")


@app.command()
def remove(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Model to remove.")],
    yes: YesOpt = False,
) -> None:
    """Remove a model with its predictions, timings, MD runs, grades, training records,
    ensemble memberships and lake files, in one transaction.

    Example: warehouse model remove unep-v1-scratch --yes
    """
    from ingest.edits import remove_model

    with open_from(ctx) as wh:
        plan = remove_model(wh, name, dry_run=True)
        if not yes:
            typer.confirm(f"Remove {plan.line()}?", abort=True)
        done = remove_model(wh, name)
    typer.echo(f"removed {done.line()}")

"""``warehouse db``: schema migrations."""

from __future__ import annotations

from typing import Annotated

import typer

from cli.context import WarehouseGroup
from warehouse import migrate
from warehouse.db import current_revision, make_engine
from warehouse.settings import Settings

app = typer.Typer(cls=WarehouseGroup, help="Create, upgrade or inspect the catalog schema.",
                  no_args_is_help=True)


def _engine(ctx: typer.Context):
    obj = ctx.find_root().obj or {}
    return make_engine(Settings.resolve(url=obj.get("url"), lake=obj.get("lake")).url)


@app.command()
def upgrade(
    ctx: typer.Context,
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
) -> None:
    """Upgrade the catalog schema (creates it in an empty database).

    Example: warehouse db upgrade
    """
    engine = _engine(ctx)
    migrate.upgrade(engine, revision)
    typer.echo(f"catalog at revision {current_revision(engine)}")


@app.command()
def downgrade(
    ctx: typer.Context,
    revision: Annotated[str, typer.Argument(help="Target revision, or 'base' to drop everything.")],
) -> None:
    """Downgrade the catalog schema to REVISION.

    Example: warehouse db downgrade base
    """
    engine = _engine(ctx)
    migrate.downgrade(engine, revision)
    typer.echo(f"catalog at revision {current_revision(engine)}")


@app.command()
def current(ctx: typer.Context) -> None:
    """Print the catalog's schema revision and the code's head revision.

    Example: warehouse db current
    """
    engine = _engine(ctx)
    typer.echo(f"catalog: {current_revision(engine)}\ncode:    {migrate.head_revision()}")

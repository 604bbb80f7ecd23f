"""What every command shares: the warehouse location and clean errors."""

from __future__ import annotations

import sys
from typing import Any

import typer
from typer.core import TyperGroup

from warehouse import Warehouse, open_warehouse
from warehouse.errors import WarehouseError


class WarehouseGroup(TyperGroup):
    """Turns :class:`WarehouseError` into a one-line message and a non-zero exit.

    Anything else is a bug and keeps its traceback.
    """

    def invoke(self, ctx: typer.Context) -> Any:
        try:
            return super().invoke(ctx)
        except WarehouseError as exc:
            typer.echo(f"Error: {exc}", err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            typer.echo("Interrupted: nothing from this command was kept.", err=True)
            sys.exit(130)


def open_from(ctx: typer.Context, *, check_schema: bool = True) -> Warehouse:
    obj = ctx.find_root().obj or {}
    return open_warehouse(obj.get("url"), obj.get("lake"), check_schema=check_schema)


def argv() -> list[str]:
    return list(sys.argv)

"""``warehouse plot``: figures (PNG or SVG) for papers. Each topic adds its commands here."""

from __future__ import annotations

import typer

from cli.context import WarehouseGroup

app = typer.Typer(cls=WarehouseGroup, help="Write figures (PNG/SVG) computed from the warehouse.",
                  no_args_is_help=True)

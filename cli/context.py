"""What every command shares: the warehouse location and clean errors."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import typer
from typer.core import TyperGroup

if TYPE_CHECKING:
    from warehouse import Warehouse

# The same names as warehouse.settings.URL_ENV and LAKE_ENV (a test checks): importing anything
# from the warehouse package loads sqlalchemy, pyarrow and the models, ~0.8 s of start-up.
URL_ENV = "WAREHOUSE_URL"
LAKE_ENV = "WAREHOUSE_LAKE"


def _is_warehouse_error(exc: BaseException) -> bool:
    # A WarehouseError can only exist once warehouse.errors was imported; --help never imports it.
    errors = sys.modules.get("warehouse.errors")
    return errors is not None and isinstance(exc, errors.WarehouseError)


class WarehouseGroup(TyperGroup):
    """Turns :class:`WarehouseError` into a one-line message and a non-zero exit.

    Anything else is a bug and keeps its traceback.
    """

    def invoke(self, ctx: typer.Context) -> Any:
        try:
            return super().invoke(ctx)
        except BaseException as exc:
            # first a signal (ingest.interrupts.Interrupted, or a KeyboardInterrupt before the
            # console script's handlers, when embedded), also one that C code wrapped in
            # another error: never reported as a failure of the command's input
            code = interrupted_code(exc)
            if code is not None:
                interrupted(code)
            if not _is_warehouse_error(exc):
                raise
            typer.echo(f"Error: {exc}", err=True)
            sys.exit(exc.exit_code)


from cli.early import interrupted_code, interrupted_message  # noqa: E402 - one wording for every place


def interrupted(code: int) -> None:
    """Say that the command stopped on a signal and exit with ``code`` (130 or 143)."""
    typer.echo(interrupted_message(), err=True)
    sys.exit(code)


def open_from(ctx: typer.Context, *, check_schema: bool = True) -> Warehouse:
    from warehouse import open_warehouse

    obj = ctx.find_root().obj or {}
    return open_warehouse(obj.get("url"), obj.get("lake"), check_schema=check_schema)


def argv() -> list[str]:
    return list(sys.argv)

"""``warehouse sql``: one SQL (DuckDB's) over the catalog's tables and views and the lake's files."""

from __future__ import annotations

from typing import Annotated

import typer

from cli.context import open_from
from cli.output import Format, FormatOpt, OutOpt, emit, render


def sql(
    ctx: typer.Context,
    query: Annotated[str, typer.Argument(help="A DuckDB SQL query; `SHOW TABLES` lists the names.")],
    fmt: FormatOpt = Format.TABLE,
    out: OutOpt = None,
) -> None:
    """Query catalog and lake together: catalog tables, lake_* files, atoms, atom_errors, ...

    The catalog is attached read-only; the lake's Parquet files are views (docs/SQL.md lists
    every name). Units: eV, Å, eV/Å, GPa.

    Example: warehouse sql "SELECT model, element, sqrt(avg(dfx*dfx + dfy*dfy + dfz*dfz) / 3) AS force_rmse FROM atom_errors GROUP BY ALL"
    """
    from queries.sql import run_sql

    with open_from(ctx) as wh:
        table = run_sql(wh, query)
    emit(render(table, fmt, digits=6), out)

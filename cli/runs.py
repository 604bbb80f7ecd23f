"""``warehouse runs``: the provenance of every ingest."""

from __future__ import annotations

from typing import Annotated

import typer

from cli.context import open_from
from cli.output import Format, FormatOpt, OutOpt, emit, render


def runs(
    ctx: typer.Context,
    kind: Annotated[str | None, typer.Option("--kind", help="Only runs of this kind (structures, gpumd, predictions, ...).")] = None,
    status: Annotated[str | None, typer.Option("--status", help="Only runs with this status (ok, failed).")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", help="Newest N runs (0 = all).")] = 50,
    fmt: FormatOpt = Format.TABLE,
    out: OutOpt = None,
) -> None:
    """List ingest runs: source and sha256, kind, status, counts, user, host, times, versions.

    Example: warehouse runs --status failed --format md
    """
    from ingest.runs import list_runs

    with open_from(ctx) as wh:
        table = list_runs(wh, kind=kind, status=status, limit=limit or None,
                          compact=fmt is Format.TABLE)
    emit(render(table, fmt, digits=2), out)

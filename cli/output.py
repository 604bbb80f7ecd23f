"""One output option for every command that prints a table: table, md, csv, json, latex, html.

The formatting itself lives in :mod:`queries.export` (pure functions, also usable from
notebooks); this module adapts it to the CLI. ``render(df, fmt)`` works for any DataFrame; the
keyword options (units, best-in-bold, a provenance stamp, notes) are for tables that have them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Format", "FormatOpt", "OutOpt", "YesOpt", "emit", "render", "to_json", "to_markdown",
           "to_text_table"]


def __getattr__(name: str):
    # deferred: queries.export imports pandas (~0.4 s of start-up for every command)
    if name in ("to_json", "to_markdown", "to_text_table"):
        import queries.export

        return getattr(queries.export, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class Format(StrEnum):
    TABLE = "table"
    MD = "md"
    CSV = "csv"
    JSON = "json"
    LATEX = "latex"
    HTML = "html"


# The one output option of every command that prints a table (declare as `fmt: FormatOpt =
# Format.TABLE, out: OutOpt = None`).
FormatOpt = Annotated[Format, typer.Option("--format", "-f", help="Output format.")]
OutOpt = Annotated[Path | None, typer.Option("--out", "-o", help="Write to this file instead of stdout.")]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]


def render(
    df: pd.DataFrame,
    fmt: Format,
    *,
    digits: int = 3,
    units: Mapping[str, str] | None = None,
    best: Sequence[str] = (),
    group: Sequence[str] = (),
    stamp: str | None = None,
    notes: Sequence[str] = (),
) -> str:
    """``df`` as text in ``fmt``. JSON is a list of records; JSON and CSV carry no stamp/notes."""
    from queries.export import render_table

    return render_table(df, Format(fmt).value, digits=digits, units=units, best=best, group=group,
                        stamp=stamp, notes=notes)


def emit(text: str, out: Path | None = None) -> None:
    """Print ``text``, or write it to ``out`` (its folder made when it does not exist yet)."""
    if out is None:
        typer.echo(text)
        return
    if out.is_dir():
        from warehouse.errors import WarehouseError

        raise WarehouseError(f"--out {out}: is a folder; name a file in it (e.g. {out / 'table.tex'})")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
    typer.echo(f"wrote {out}", err=True)

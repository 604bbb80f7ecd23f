"""``warehouse``: the command-line entry point and its top-level commands."""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from cli import db as db_cmds
from cli import ingest as ingest_cmds
from cli import leaderboard as leaderboard_cmds
from cli import models as model_cmds
from cli import runs as runs_cmds
from cli import plot as plot_cmds
from cli import evaluate as evaluate_cmds, pareto as pareto_cmds, timings as timings_cmds
from cli import ensemble as ensemble_cmds, grades as grades_cmds, uq as uq_cmds
from cli.context import LAKE_ENV, URL_ENV, WarehouseGroup, argv, open_from
from cli.output import Format, render

app = typer.Typer(
    cls=WarehouseGroup,
    help="A results warehouse for benchmarking machine-learning interatomic potentials.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)
app.add_typer(db_cmds.app, name="db")
app.add_typer(ingest_cmds.app, name="ingest")
app.add_typer(model_cmds.app, name="model")
app.command("runs")(runs_cmds.runs)
app.add_typer(plot_cmds.app, name="plot")
for _cost in (evaluate_cmds, timings_cmds, pareto_cmds):  # issue 5: evaluate, timings, pareto
    _cost.register(app)
app.add_typer(ensemble_cmds.app, name="ensemble")
app.command("uq")(uq_cmds.uq)
ingest_cmds.app.command("grades")(grades_cmds.grades)


@app.callback()
def root(
    ctx: typer.Context,
    url: Annotated[str | None, typer.Option(
        "--url", envvar=URL_ENV, help="Catalog database (SQLAlchemy URL). Default: embedded SQLite."
    )] = None,
    lake: Annotated[str | None, typer.Option(
        "--lake", envvar=LAKE_ENV, help="Array lake root (folder or URI). Default: ./warehouse-data/lake."
    )] = None,
) -> None:
    """Store DFT labels, model predictions, timings and MD output; ask for leaderboards."""
    ctx.obj = {"url": url, "lake": lake}


@app.command()
def info(ctx: typer.Context) -> None:
    """Show the engine, lake, schema revision and row counts.

    Example: warehouse info
    """
    with open_from(ctx) as wh:
        typer.echo(f"engine:   {wh.dialect} ({wh.engine.url.render_as_string(hide_password=True)})")
        typer.echo(f"lake:     {wh.lake.root_uri}")
        typer.echo(f"revision: {wh.revision()}")
        for table, n in wh.counts().items():
            typer.echo(f"  {table:<20} {n:>10}")
        from queries.catalog import list_datasets, list_models

        for title, frame in (("datasets", list_datasets(wh)), ("models", list_models(wh))):
            if not frame.empty:
                typer.echo(f"\n{title}:\n" + render(frame, Format.TABLE))


@app.command()
def demo(ctx: typer.Context) -> None:
    """Build a small real benchmark (mlearn Cu/Ni DFT test sets, ASE's EMT) and print its leaderboard.

    Example: warehouse demo
    """
    from ingest.demo import run_demo
    from queries.export import report_text
    from queries.leaderboard import leaderboard, leaderboard_report

    with open_from(ctx) as wh:
        for summary in run_demo(wh, argv=argv()):
            typer.echo(summary.line(), err=True)
            for note in summary.notes:
                typer.echo(f"  {note}", err=True)
        table = leaderboard(wh, models=["emt"])
        shifted = leaderboard_report(wh, models=["emt"], energy_offset="per-element")
    typer.echo(render(table, Format.TABLE))
    typer.echo(
        "\nEMT's energies have another zero than the DFT reference's, so the energy errors above"
        " are dominated by a constant per element. With a per-element least-squares shift fitted"
        " on each dataset (forces and stresses are unaffected):\n"
    )
    typer.echo(report_text(shifted, "table", stamp=None))


app.command("leaderboard")(leaderboard_cmds.leaderboard)


@app.command()
def check(
    ctx: typer.Context,
    repair: Annotated[bool, typer.Option("--repair", help="Delete lake files that no catalog row points to.")] = False,
) -> None:
    """Check that every catalog row's lake file exists with its recorded sha256, and find orphans.

    Example: warehouse check --repair
    """
    from warehouse.check import check_lake

    with open_from(ctx) as wh:
        report = check_lake(wh, repair=repair)
    for line in report.lines():
        typer.echo(line)
    if report.problems:
        raise typer.Exit(1)


def main() -> None:
    """Run the command line (raises SystemExit, as click does)."""
    from cli import early

    early.start(sys.argv[1:])  # an ingest's file is read while the command line is built
    app()


def console() -> None:
    """The ``warehouse`` console script: :func:`main`, then, after ``ingest structures``, an
    immediate exit.

    When that command returns, its transaction is committed or undone, its connections, lake
    files and reader process are closed, and its failure (if any) is recorded; what remains is
    the interpreter's teardown, freeing its objects one by one: ~0.2 s after 1.3M atoms, 8 % of
    the ingest. Output is flushed first. Other commands end normally (a file object that one of
    them left open is flushed by that teardown).
    """
    from cli import early

    try:
        main()
    except SystemExit as exc:
        if early.guess_path(sys.argv[1:]) is None:
            raise
        _leave(exc.code)


def _leave(code: object) -> None:
    if code is None:
        code = 0
    elif not isinstance(code, int):
        sys.stderr.write(f"{code}\n")
        code = 1
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more can be said there
            pass
    os._exit(code)


# -- issue 7: MD observables and properties ---------------------------------------------------
from cli import md as md_cmds, properties as properties_cmds  # noqa: E402

app.add_typer(md_cmds.app, name="md")
app.command("properties")(properties_cmds.properties)
ingest_cmds.app.command("md")(md_cmds.ingest_md)
ingest_cmds.app.command("properties")(md_cmds.ingest_properties)

"""``warehouse``: the command-line entry point and its top-level commands.

The command line is built for what it is asked to run: :func:`build` with a top-level command's
name registers only that command (and its subcommands), so ``warehouse ingest structures ...``
neither imports the modules of the other thirty commands nor has typer build them (~0.13 s of
every start, measured on the 2-core machine). Anything else (``--help``, no command, an unknown
name) gets every command, so help texts and error messages are those of the full command line.
``cli.app.app`` is the full command line, built on first use.
"""

from __future__ import annotations

import importlib
import sys
from typing import Annotated

import typer

from cli.context import LAKE_ENV, URL_ENV, WarehouseGroup, argv, open_from
from cli.output import Format, render


def _show_version(value: bool) -> None:
    if value:
        from warehouse import __version__

        typer.echo(f"warehouse (mlip-warehouse) {__version__}")
        raise typer.Exit()


def root(
    ctx: typer.Context,
    url: Annotated[str | None, typer.Option(
        "--url", envvar=URL_ENV, help="Catalog database (SQLAlchemy URL). Default: embedded SQLite."
    )] = None,
    lake: Annotated[str | None, typer.Option(
        "--lake", envvar=LAKE_ENV, help="Array lake root (folder or URI). Default: ./warehouse-data/lake."
    )] = None,
    version: Annotated[bool, typer.Option(
        "--version", is_eager=True, callback=_show_version, help="Print the version and exit."
    )] = False,
) -> None:
    """Store DFT labels, model predictions, timings and MD output; ask for leaderboards."""
    from warehouse.provenance import command_started

    command_started()  # `warehouse runs` shows each command's wall time, not its commit's
    ctx.obj = {"url": url, "lake": lake}


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


# Every top-level command, in the order that help lists them: its module and the object there,
# a group (typer.Typer) or a command (a function). cli.ingest registers its subcommands from
# other modules itself, so that group is whole wherever it is used.
COMMANDS: dict[str, tuple[str, str]] = {
    "db": ("cli.db", "app"), "ingest": ("cli.ingest", "app"), "model": ("cli.models", "app"),
    "runs": ("cli.runs", "runs"), "plot": ("cli.plot", "app"),
    "evaluate": ("cli.evaluate", "evaluate"), "timings": ("cli.timings", "timings_cmd"),  # issue 5
    "pareto": ("cli.pareto", "pareto_cmd"), "ensemble": ("cli.ensemble", "app"),
    "uq": ("cli.uq", "uq"), "info": ("cli.app", "info"), "demo": ("cli.app", "demo"),
    "leaderboard": ("cli.leaderboard", "leaderboard"), "check": ("cli.app", "check"),
    "md": ("cli.md", "app"), "properties": ("cli.properties", "properties"),  # issue 7
    "dataset": ("cli.datasets", "app"), "failures": ("cli.failures", "failures"),  # issue 16
    "sql": ("cli.sql", "sql"), "report": ("cli.report", "report"),
}


def _register(cli: typer.Typer, name: str) -> None:
    module, attr = COMMANDS[name]
    target = getattr(importlib.import_module(module), attr)
    if isinstance(target, typer.Typer):
        cli.add_typer(target, name=name)
    else:
        cli.command(name)(target)


def build(command: str | None = None) -> typer.Typer:
    """The command line with every command, or only the top-level ``command`` (a name in
    :data:`COMMANDS`) and its subcommands."""
    cli = typer.Typer(
        cls=WarehouseGroup,
        help="A results warehouse for benchmarking machine-learning interatomic potentials.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_show_locals=False,
    )
    cli.callback()(root)
    for name in COMMANDS if command is None else [command]:
        _register(cli, name)
    return cli


def command_name(args: list[str]) -> str | None:
    """The top-level command that ``args`` (the arguments after the program name) run: the
    first argument after the root options, if it names one; else None."""
    from cli import early

    i = early.skip_root_options(args)
    if i is None or i >= len(args) or args[i] not in COMMANDS:
        return None
    return args[i]


def __getattr__(name: str) -> typer.Typer:
    if name == "app":  # the full command line, for tests and for embedding
        global app
        app = build()
        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main() -> None:
    """Run the command line (raises SystemExit, as click does)."""
    from cli import early
    from ingest.interrupts import install

    install()  # (again, where the console script did already: the same handlers)
    try:
        early.start(sys.argv[1:])  # an ingest's file is read while the command line is built
        build(command_name(sys.argv[1:]))()
    except BaseException as exc:  # a signal outside a command's own handling (cli.context)
        code = early.interrupted_code(exc)
        if code is None:
            raise
        typer.echo(early.interrupted_message(), err=True)
        sys.exit(code)


def console() -> None:
    """The console script as installed before its entry point moved to
    :func:`cli.early.console` (an editable install made earlier still calls this one; it works,
    without the reader's head start, until ``pip install -e .`` is run again)."""
    from cli.early import console as run

    run()

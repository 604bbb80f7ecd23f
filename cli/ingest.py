"""``warehouse ingest``: store what a run produced."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from cli.context import WarehouseGroup, argv, open_from

app = typer.Typer(cls=WarehouseGroup, help="Store structures, labels, predictions and more.",
                  no_args_is_help=True)


class Progress:
    """Structures and atoms per second on one self-rewriting stderr line, on a terminal only."""

    def __init__(self, *, enabled: bool | None = None) -> None:
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.start = time.perf_counter()
        self.structures = self.atoms = 0

    def __call__(self, n_structures: int, n_atoms: int) -> None:
        self.structures += n_structures
        self.atoms += n_atoms
        if self.enabled:
            dt = max(time.perf_counter() - self.start, 1e-9)
            sys.stderr.write(f"\r  {self.structures:,} structures, {self.atoms:,} atoms"
                             f"  ({self.structures / dt:,.0f} structures/s, {self.atoms / dt:,.0f} atoms/s)")
            sys.stderr.flush()

    def done(self) -> None:
        if self.enabled and self.structures:
            sys.stderr.write("\n")


ParametersOpt = Annotated[list[Path] | None, typer.Option(
    "--parameters", help="The model's parameter file (repeat for several): binds the model name,"
                         " or is checked against its binding.")]
VersionOpt = Annotated[str | None, typer.Option(
    "--version", help="Store as MODEL@VERSION: a new version of a model bound to other parameters.")]


VoigtOpt = Annotated[str | None, typer.Option(
    "--voigt-order", help="Order of six-number stress= or virial= values in the file, e.g."
    " xx,yy,zz,yz,xz,xy (ASE's) or xx,yy,zz,xy,yz,zx (GPUMD's); without it six numbers are"
    " refused (a 3x3 needs no order).")]


def _voigt(text: str | None) -> tuple[str, ...] | None:
    from ingest.labels import parse_voigt_order
    from warehouse.errors import IngestError

    if text is None:
        return None
    try:
        return parse_voigt_order(text)
    except ValueError as exc:
        raise IngestError(str(exc)) from None


LevelOpt = Annotated[str | None, typer.Option(
    "--level-of-theory", "-l", help="Name of the reference's level of theory (e.g. VASP-PBE-520eV).")]


@app.command()
def structures(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(
        help="Structure file: extended XYZ (.xyz/.extxyz, .gz), mlearn JSON, vasprun.xml/OUTCAR,"
             " ASE database (.db), gracemaker pickle (.pkl, with --trust-pickle).")],
    dataset: Annotated[str, typer.Option("--dataset", "-d", help="Dataset to add them to.")],
    level_of_theory: LevelOpt = None,
    subset: Annotated[str | None, typer.Option("--subset", help="Subset tag (default: config_type).")] = None,
    split: Annotated[str | None, typer.Option("--split", help="Split tag, e.g. train or test.")] = None,
    fmt: Annotated[str | None, typer.Option(
        "--format", help="Reader: extxyz, mlearn-json, vasp, ase-db, pickle (default: from the file name).")] = None,
    trust_pickle: Annotated[bool, typer.Option(
        "--trust-pickle", help="Allow loading a pickle (unpickling can run arbitrary code).")] = False,
    voigt_order: VoigtOpt = None,
) -> None:
    """Store structures and their DFT labels (energy, forces, stress) as references.

    Example: warehouse ingest structures train.xyz --dataset pbte --level-of-theory PBE
    """
    order = _voigt(voigt_order)
    reader = _start_reading(path, fmt, order)
    progress = Progress()
    try:
        from ingest.api import ingest_structures  # the catalog machinery: ~0.8 s of imports

        with open_from(ctx) as wh:
            summary = ingest_structures(wh, path, dataset=dataset, level_of_theory=level_of_theory,
                                        subset=subset, split=split, fmt=fmt,
                                        trust_pickle=trust_pickle, argv=argv(), progress=progress,
                                        reader=reader, voigt_order=order)
    finally:
        progress.done()
        if reader is not None:
            reader.close()
    typer.echo(summary.line())


def _start_reading(path: Path, fmt: str | None, voigt_order: tuple[str, ...] | None):
    """The reader of an extended XYZ file: the one started before the command line was parsed
    (cli.early), or a new one; None for other formats (and with --voigt-order, which the early
    start does not know: ingest_structures starts that reader)."""
    from cli import early

    if voigt_order is not None:
        return None
    return early.take(path, fmt) or early.start_reader(path, fmt)


@app.command()
def predictions(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="Extended XYZ with a model's predictions.")],
    model: Annotated[str, typer.Option("--model", "-m", help="Model name (registered on first use).")],
    energy_key: Annotated[str | None, typer.Option("--energy-key", help="Info key of the predicted energy (eV).")] = None,
    forces_key: Annotated[str | None, typer.Option("--forces-key", help="Per-atom array of predicted forces (eV/Å).")] = None,
    stress_key: Annotated[str | None, typer.Option("--stress-key", help="Info key of the predicted stress (eV/Å^3, ASE sign).")] = None,
    virial_key: Annotated[str | None, typer.Option("--virial-key", help="Info key of the predicted total virial (eV).")] = None,
    parameters: ParametersOpt = None,
    version: VersionOpt = None,
    force: Annotated[bool, typer.Option("--force", help=(
        "Store predictions even if every one equals the stored reference labels."))] = False,
    voigt_order: VoigtOpt = None,
) -> None:
    """Store a model's predictions, matched to stored structures by content hash.

    A model name bound to parameter files (by evaluate, gpumd, model add --file or an earlier
    --parameters) takes predictions only with --parameters naming the same files.

    Example: warehouse ingest predictions mace_on_test.xyz --model mace-mp-0 --forces-key forces_pred
    """
    from cli import early
    from ingest.labels import PREDICTION_KEYS, prediction_keys

    keys = prediction_keys(energy=energy_key, forces=forces_key, stress=stress_key, virial=virial_key,
                           voigt_order=_voigt(voigt_order))
    # the reader started before the command line was parsed, if it reads the file as asked
    reader = early.take(path, None, "predictions") if keys == PREDICTION_KEYS else None
    progress = Progress()
    try:
        from ingest.api import ingest_predictions  # the catalog machinery

        with open_from(ctx) as wh:
            summary = ingest_predictions(wh, path, model=model, keys=keys,
                                         parameters=parameters or [], version=version,
                                         force=force, argv=argv(), progress=progress,
                                         reader=reader)
    finally:
        progress.done()
        if reader is not None:
            reader.close()
    typer.echo(summary.line())


@app.command()
def gpumd(
    ctx: typer.Context,
    folder: Annotated[Path, typer.Argument(help="GPUMD nep folder (train.xyz + *_train.out).")],
    model: Annotated[str, typer.Option("--model", "-m", help="Name of the NEP model.")],
    dataset: Annotated[str, typer.Option("--dataset", "-d", help="Dataset of its structures.")],
    level_of_theory: LevelOpt = None,
    xyz: Annotated[Path | None, typer.Option(
        "--xyz", help="Structure file the outputs follow, for a folder without one (prediction runs).")] = None,
    parameters: ParametersOpt = None,
    version: VersionOpt = None,
    voigt_order: VoigtOpt = None,
) -> None:
    """Store a GPUMD NEP model's predictions (and its structures if they are new), and loss.out.

    Without --level-of-theory an existing dataset's own is used. The model name is bound to
    the folder's nep.txt (or --parameters).

    Example: warehouse ingest gpumd nep_prediction/ --model pbte-nep --dataset pbte --xyz nep_train/train.xyz
    """
    from ingest.api import ingest_gpumd

    with open_from(ctx) as wh:
        summary = ingest_gpumd(wh, folder, model=model, dataset=dataset,
                               level_of_theory=level_of_theory, xyz=xyz,
                               parameters=parameters or [], version=version, argv=argv(),
                               voigt_order=_voigt(voigt_order))
    typer.echo(summary.line())


# Subcommands defined beside the commands they belong with (issues 5-7), registered here so that
# this group is whole wherever it is used.
def _register_others() -> None:
    from cli import grades, md, timings

    app.command("timings")(timings.ingest_timings_cmd)
    app.command("grades")(grades.grades)
    app.command("md")(md.ingest_md)
    app.command("properties")(md.ingest_properties)


_register_others()

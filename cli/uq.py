"""``warehouse uq``: ensemble disagreement (or extrapolation grades) against the true error."""

from __future__ import annotations

from typing import Annotated

import typer

from cli.compare import CommonOpt, Offset, OffsetOpt
from cli.context import open_from
from cli.output import Format, FormatOpt, OutOpt, emit, render
from queries.uq_options import DEFAULT_N_BOOT, By, Level, Show


def uq(
    ctx: typer.Context,
    dataset: Annotated[list[str], typer.Option("--dataset", "-d", help="Dataset(s) with references (repeatable).")],
    ensemble: Annotated[str | None, typer.Option("--ensemble", "-e", help="Ensemble whose disagreement is U.")] = None,
    grades: Annotated[str | None, typer.Option("--grades", help="Use this kind of per-atom grades of --model as U.")] = None,
    model: Annotated[str | None, typer.Option("--model", "-m", help="Model whose grades (and own error) --grades uses.")] = None,
    level: Annotated[Level | None, typer.Option("--level", help="Only this level (default: both).")] = None,
    show: Annotated[Show, typer.Option("--show", help="Rank correlation, calibration bins, or threshold precision/recall.")] = Show.SUMMARY,
    by: Annotated[By | None, typer.Option("--by", help="Break the summary down by this.")] = None,
    threshold: Annotated[float | None, typer.Option("--threshold", help="Flag U above this (meV/atom, meV/Å; grades: the grade). Grades default: 1.")] = None,
    top_fraction: Annotated[float | None, typer.Option("--top-fraction", help="Flag this share of the highest U instead (default 0.1 for ensembles).")] = None,
    high_error_fraction: Annotated[float, typer.Option("--high-error-fraction", help="High-error cases: this share of the largest errors.")] = 0.1,
    bins: Annotated[int, typer.Option("--bins", help="Calibration: number of equal-count bins of U.")] = 10,
    n_boot: Annotated[int, typer.Option("--n-boot", help="Bootstrap resamples for the CI of rho.")] = DEFAULT_N_BOOT,
    seed: Annotated[int, typer.Option("--seed", help="Bootstrap seed.")] = 0,
    energy_offset: OffsetOpt = Offset.NONE,
    common: CommonOpt = False,
    fmt: FormatOpt = Format.TABLE,
    out: OutOpt = None,
) -> None:
    """Spearman rho (bootstrap CI) of uncertainty U vs true error e, at structure and atom level.

    U and e are max-deviation ensemble disagreement and |reference - ensemble mean| (DESIGN.md);
    --show calibration bins U; --show threshold gives precision/recall for the highest errors.

    Every member needs an ok prediction for every structure (else --common uses the structures
    they share); --energy-offset per-element removes each member's per-element energy shifts.

    Example: warehouse uq --ensemble unep8 --dataset unep-v1-dft --energy-offset per-element --format json
    """
    from queries.uq import uq_report

    with open_from(ctx) as wh:
        table, data = uq_report(
            wh, datasets=dataset, ensemble=ensemble, grades=grades, model=model, show=show,
            level=level, by=by, threshold=threshold, top_fraction=top_fraction,
            high_error_fraction=high_error_fraction, n_bins=bins, n_boot=n_boot, seed=seed,
            energy_offset=energy_offset.value, common=common)
    stamp = f"{data.source} ({', '.join(data.members)}) on {', '.join(data.datasets)}"
    if fmt not in (Format.JSON, Format.CSV):  # the stamp names them; records keep them
        table = table.drop(columns=["source", "dataset"], errors="ignore")
    emit(render(table, fmt, stamp=stamp, notes=[data.note] if data.note else ()), out)

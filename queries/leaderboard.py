"""Error tables per model and dataset (or pooled datasets), with optional breakdowns.

Definitions (DESIGN.md, Metrics), for the structures j of a group with N_j atoms:
energy MAE = mean_j |dE_j| and RMSE = sqrt(mean_j dE_j^2) with dE_j = (E_pred - E_ref) / N_j;
force MAE = sum |dF_ia| / (3 sum N_j) and RMSE = sqrt(sum dF_ia^2 / (3 sum N_j)) over the structures
with force labels (per Cartesian component, atom-weighted); stress per Voigt component likewise.
Reported in meV/atom, meV/Å and GPa. The reference of a dataset is its own level of theory.
Every figure is an SQL aggregate of the per-structure error sums stored at ingest, read from the
pre-grouped sums kept at ingest (``queries.rollup``; same numbers), except with
``energy_offset="per-element"`` or ``ci``, which need the per-structure rows (fetched by
:func:`queries.breakdowns.structure_errors`) and are computed in numpy.

Columns (:class:`Col`): model, dataset, n_structures (expected: members with reference labels),
n_atoms, n_failed (predictions that failed), n_missing (no prediction), and the six metrics.
With any option beyond ``datasets``/``models`` the table also carries n_predicted (ok
predictions; n_structures = n_predicted + n_failed + n_missing), the group keys of ``by``
(``subset``, ``element``, ``n_elements``), ``rank`` with ``metric``, and ``<metric>_lo``/``_hi``
with ``ci``.

Breakdowns (``by``): ``subset`` (the member's subset tag), ``n_elements`` (number of components),
``element``: for energy and stress the structures containing the element, for forces only the
atoms of that species (from ``prediction_element_errors``); n_atoms is then the count of atoms of
that species. Keys combine (``by=("subset", "element")``).

Pooling (``pool=True``): all selected datasets (minus ``exclude_datasets``) form one group named
``pooled(a+b+...)``; a structure in two pooled datasets with the same level of theory counts once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
import pandas as pd
from sqlalchemy import select

from queries.breakdowns import (
    BY_KEYS,
    Selection,
    expected_statement,
    resolve_selection,
    sums_statement,
)
from warehouse import models as m
from warehouse.core import Warehouse
from warehouse.errors import NoMatch


class Col(StrEnum):
    MODEL = "model"
    DATASET = "dataset"
    N_STRUCTURES = "n_structures"
    N_ATOMS = "n_atoms"
    N_FAILED = "n_failed"
    N_MISSING = "n_missing"
    ENERGY_MAE = "energy_mae"
    ENERGY_RMSE = "energy_rmse"
    FORCE_MAE = "force_mae"
    FORCE_RMSE = "force_rmse"
    STRESS_MAE = "stress_mae"
    STRESS_RMSE = "stress_rmse"


COLUMNS = [c.value for c in Col]
COUNTS = ["n_structures", "n_atoms", "n_failed", "n_missing"]
METRICS = [c.value for c in Col][6:]
UNITS = {
    Col.ENERGY_MAE: "meV/atom", Col.ENERGY_RMSE: "meV/atom",
    Col.FORCE_MAE: "meV/Å", Col.FORCE_RMSE: "meV/Å",
    Col.STRESS_MAE: "GPa", Col.STRESS_RMSE: "GPa",
}
OFFSET_POLICIES = ("none", "per-element")


@dataclass
class LeaderboardReport:
    """A leaderboard table and what a reader needs beside it."""

    table: pd.DataFrame
    offsets: pd.DataFrame | None = None  # model, dataset, element, shift_ev_per_atom
    notes: list[str] = field(default_factory=list)
    fingerprint: str = ""  # sha256 of the rows used (see queries.stamp.rows_fingerprint)
    keys: tuple[str, ...] = ()


def _ratio(num: pd.Series, den: pd.Series) -> pd.Series:
    num = pd.to_numeric(num, errors="coerce").astype(float)
    den = pd.to_numeric(den, errors="coerce").astype(float)
    return num.where(den > 0) / den.where(den > 0)


def finish_metrics(sums: pd.DataFrame, keep: Sequence[str] = ()) -> pd.DataFrame:
    """Turn the SQL sums into MAE/RMSE in report units; ``keep`` names extra columns to carry."""
    out = sums[["model", "dataset", *keep, *COUNTS]].copy()
    out[Col.ENERGY_MAE] = 1000 * _ratio(sums["e_abs"], sums["n_energy"])
    out[Col.ENERGY_RMSE] = 1000 * np.sqrt(_ratio(sums["e_sq"], sums["n_energy"]))
    out[Col.FORCE_MAE] = 1000 * _ratio(sums["f_abs"], sums["f_n"])
    out[Col.FORCE_RMSE] = 1000 * np.sqrt(_ratio(sums["f_sq"], sums["f_n"]))
    out[Col.STRESS_MAE] = _ratio(sums["s_abs"], sums["s_n"])
    out[Col.STRESS_RMSE] = np.sqrt(_ratio(sums["s_sq"], sums["s_n"]))
    for c in COUNTS:
        out[c] = pd.to_numeric(out[c]).fillna(0).astype(int)
    return out


def _read(wh: Warehouse, stmt) -> pd.DataFrame:
    with wh.engine.connect() as conn:
        return pd.read_sql(stmt, conn)


def group_sums(wh: Warehouse, sel: Selection, *, use_rollup: bool = True) -> pd.DataFrame:
    """Counts and error sums per (model, dataset, keys), with expected and missing counts.

    From the sums kept at ingest (``queries.rollup``), or live with ``use_rollup=False`` and for
    pools whose datasets share structures. Both give the same numbers (up to the order of
    floating-point summation). Either way only reads.
    """
    from queries.rollup import pool_has_shared_structures, rollup_frames

    keys = list(sel.by)
    if use_rollup and not pool_has_shared_structures(wh, sel):
        sums, expected = rollup_frames(wh, sel)
    else:
        sums = _read(wh, sums_statement(sel))
        expected = _read(wh, expected_statement(sel))
    if sums.empty and not sel.models:  # models asked for by name show as all missing
        raise NoMatch("no predictions match these filters" + sel.describe()
                      + "; `warehouse info` lists what is stored")
    if sel.models:
        pairs = pd.MultiIndex.from_product(
            [list(sel.models), expected["dataset"].unique()], names=["model", "dataset"]
        ).to_frame(index=False)
    else:  # a model appears for the datasets it has predictions on
        pairs = sums[["model", "dataset"]].drop_duplicates()
    rows = pairs.merge(expected, on="dataset").merge(sums, on=["model", "dataset", *keys], how="left")
    for c in ("n_structures", "n_atoms", "n_predicted", "n_failed", "n_energy", "f_n", "s_n",
              "id_sum", "max_run"):
        rows[c] = pd.to_numeric(rows[c]).fillna(0).astype("int64")
    rows["n_missing"] = rows["n_structures"] - rows["n_predicted"] - rows["n_failed"]
    return rows.sort_values(["dataset", *keys, "model"], kind="stable").reset_index(drop=True)


def leaderboard_report(
    wh: Warehouse,
    *,
    datasets: Sequence[str] = (),
    models: Sequence[str] = (),
    exclude_datasets: Sequence[str] = (),
    by: Sequence[str] = (),
    pool: bool = False,
    metric: str | None = None,
    energy_offset: str = "none",
    ci: float | None = None,
    seed: int = 0,
    n_boot: int = 1000,
    use_rollup: bool = True,
) -> LeaderboardReport:
    """The leaderboard with its notes, fitted energy offsets and row fingerprint."""
    from queries.bootstrap import bootstrap_metrics
    from queries.breakdowns import structure_errors
    from queries.offsets import apply_offsets, fit_element_offsets
    from queries.stamp import rows_fingerprint

    _check_options(by=by, metric=metric, energy_offset=energy_offset, ci=ci)
    sel = resolve_selection(wh, datasets=datasets, models=models, exclude=exclude_datasets,
                            by=by, pool=pool)
    sums = group_sums(wh, sel, use_rollup=use_rollup)
    keys = list(sel.by)
    table = finish_metrics(sums, keep=keys)
    table.insert(table.columns.get_loc("n_failed"), "n_predicted", sums["n_predicted"].astype(int))
    report = LeaderboardReport(table=table, notes=list(sel.notes), keys=tuple(keys))
    per_structure = None
    if energy_offset == "per-element" or ci:
        per_structure = structure_errors(wh, sel)
    if energy_offset == "per-element":
        report.offsets = fit_element_offsets(wh, sel, per_structure)
        per_structure = apply_offsets(per_structure, report.offsets, wh, sel)
        _replace_energy_metrics(table, per_structure, keys)
        report.notes.append("energy errors after a per-element least-squares shift fitted per"
                            " model and dataset (shifts reported with the table)")
        k = report.offsets.groupby(["model", "dataset"])["element"].transform("size")
        if (under := report.offsets[report.offsets["rank"] < k]).size:
            pairs = sorted({f"{a}/{b}" for a, b in zip(under["model"], under["dataset"], strict=True)})
            report.notes.append("compositions do not determine every shift for " + ", ".join(pairs)
                                + ": the minimum-norm shifts are shown (errors are unaffected)")
    if ci:
        cis = bootstrap_metrics(per_structure, keys=["model", "dataset", *keys], level=ci,
                                seed=seed, n_boot=n_boot)
        table = table.merge(cis, on=["model", "dataset", *keys], how="left")
        report.notes.append(f"{ci:g}% bootstrap CIs over structures ({n_boot} resamples, seed {seed})")
    if metric:
        table["rank"] = table.groupby(["dataset", *keys], dropna=False)[metric].rank(method="min")
        table = table.sort_values(["dataset", *keys, "rank", "model"], kind="stable")
        table["rank"] = table["rank"].astype("Int64")
    report.table = table.reset_index(drop=True)
    report.fingerprint = rows_fingerprint(sums, options=dict(
        by=keys, pool=pool, energy_offset=energy_offset, ci=ci, seed=seed if ci else None))
    n_failed, n_missing = int(table["n_failed"].sum()), int(table["n_missing"].sum())
    if n_failed or n_missing:
        report.notes.append(f"{n_failed} failed and {n_missing} missing predictions are counted"
                            " in n_failed / n_missing, not in the errors")
    return report


def _replace_energy_metrics(table: pd.DataFrame, per: pd.DataFrame, keys: list[str]) -> None:
    g = per.dropna(subset=["e"]).groupby(["model", "dataset", *keys], dropna=False)["e"]
    stats = pd.DataFrame({
        Col.ENERGY_MAE.value: g.apply(lambda x: 1000 * np.abs(x).mean()),
        Col.ENERGY_RMSE.value: g.apply(lambda x: 1000 * np.sqrt((x * x).mean())),
    }).reset_index()
    merged = table[["model", "dataset", *keys]].merge(stats, on=["model", "dataset", *keys], how="left")
    for c in (Col.ENERGY_MAE.value, Col.ENERGY_RMSE.value):
        table[c] = merged[c].to_numpy()


def _check_options(*, by: Sequence[str], metric: str | None, energy_offset: str, ci: float | None) -> None:
    if bad := [k for k in by if k not in BY_KEYS]:
        raise NoMatch(f"unknown breakdown {', '.join(bad)}; use one of {', '.join(BY_KEYS)}")
    if metric is not None and metric not in METRICS:
        raise NoMatch(f"unknown metric {metric!r}; use one of {', '.join(METRICS)}")
    if energy_offset not in OFFSET_POLICIES:
        raise NoMatch(f"unknown energy offset {energy_offset!r}; use none or per-element")
    if ci is not None and not 0 < ci < 100:
        raise NoMatch(f"--ci must be a percentage between 0 and 100, not {ci}")


def leaderboard(
    wh: Warehouse,
    *,
    datasets: Sequence[str] = (),
    models: Sequence[str] = (),
    **options,
) -> pd.DataFrame:
    """Energy, force and stress MAE/RMSE per model and dataset (columns: :class:`Col`).

    With no ``options`` the columns are exactly :data:`COLUMNS`; ``options`` are those of
    :func:`leaderboard_report` (by, pool, exclude_datasets, metric, energy_offset, ci, seed).
    """
    report = leaderboard_report(wh, datasets=datasets, models=models, **options)
    if not options:
        return report.table[COLUMNS]
    return report.table


def known_names(wh: Warehouse, table: type[m.Dataset] | type[m.Model]) -> list[str]:
    with wh.session() as s:
        return list(s.scalars(select(table.name).order_by(table.name)))

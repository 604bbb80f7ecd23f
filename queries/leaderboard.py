"""Error tables per model and dataset (or pooled datasets), with optional breakdowns.

Definitions (DESIGN.md, Metrics), for the structures j of a group with N_j atoms:
energy MAE = mean_j |dE_j| and RMSE = sqrt(mean_j dE_j^2) with dE_j = (E_pred - E_ref) / N_j;
force MAE = sum |dF_ia| / (3 sum N_j) and RMSE = sqrt(sum dF_ia^2 / (3 sum N_j)) over the structures
with force labels (per Cartesian component, atom-weighted); stress per Voigt component likewise.
Reported in meV/atom, meV/Å and GPa; every metric is defined once in :mod:`queries.metrics`
(``force_norm_mae``/``force_norm_rmse``, the per-atom vector-norm force errors, are added to the
table when asked for by ``metric``). The reference of a dataset is its own level of theory.
Every figure is an SQL aggregate of the per-structure error sums stored at ingest, read from the
pre-grouped sums kept at ingest (``queries.rollup``; same numbers), except with
``energy_offset="per-element"`` or ``ci``, which need the per-structure rows (fetched by
:func:`queries.breakdowns.structure_errors`) and are computed in numpy.

Columns (:class:`Col`): model, dataset, n_structures (expected: members with reference labels),
n_atoms, n_failed (predictions that failed), n_missing (no prediction), and the six metrics.
With any option beyond ``datasets``/``models`` the table also carries n_predicted (ok
predictions; n_structures = n_predicted + n_failed + n_missing), the group keys of ``by``
(``subset``, ``element``, ``n_elements``), ``rank`` with ``metric``, and ``<metric>_lo``/``_hi``
with ``ci``. Ranks follow the comparison rule of :mod:`queries.selection` (complete coverage, or
``common`` structures).

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

import pandas as pd
from sqlalchemy import select

from queries import metrics as metric_registry
from queries import selection
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


COUNTS = ["n_structures", "n_atoms", "n_failed", "n_missing"]
METRICS = list(metric_registry.DEFAULT)  # the default table's metric columns (queries.metrics)
COLUMNS = ["model", "dataset", *COUNTS, *METRICS]
UNITS = dict(metric_registry.UNITS)
OFFSET_POLICIES = selection.OFFSET_POLICIES


@dataclass
class LeaderboardReport:
    """A leaderboard table and what a reader needs beside it."""

    table: pd.DataFrame
    offsets: pd.DataFrame | None = None  # model, dataset, element, shift_ev_per_atom
    notes: list[str] = field(default_factory=list)
    fingerprint: str = ""  # sha256 of the rows used (see queries.stamp.rows_fingerprint)
    keys: tuple[str, ...] = ()
    # --common: the structures left out (dataset, structure_id, formula, missing_for)
    left_out: pd.DataFrame | None = None


def finish_metrics(sums: pd.DataFrame, keep: Sequence[str] = (),
                   metrics: Sequence[str] = METRICS) -> pd.DataFrame:
    """Turn the SQL sums into MAE/RMSE in report units; ``keep`` names extra columns to carry."""
    out = sums[["model", "dataset", *keep, *COUNTS]].copy()
    out = pd.concat([out, metric_registry.finish(sums, metrics)], axis=1)
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
              "fn_n", "id_sum", "max_run"):
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
    common: bool = False,
    use_rollup: bool = True,
    extra_metrics: Sequence[str] = (),
) -> LeaderboardReport:
    """The leaderboard with its notes, fitted energy offsets and row fingerprint.

    Its metric columns are the default ones (:data:`METRICS`), ``extra_metrics`` (names in the
    metric registry, e.g. ``force_norm_rmse``) and ``metric``.

    Ranks (``metric``) follow the comparison rule of :mod:`queries.selection`: only rows with an
    ok prediction for every structure of their group are ranked, the others are listed after
    them, unranked; with ``common`` every row is computed on the structures all selected models
    predicted ok (``report.left_out`` lists the rest).
    """
    from queries.stamp import rows_fingerprint

    metric = _check_options(by=by, metric=metric, energy_offset=energy_offset, ci=ci)
    sel = resolve_selection(wh, datasets=datasets, models=models, exclude=exclude_datasets,
                            by=by, pool=pool)
    names = list(dict.fromkeys([*METRICS, *(m for m in extra_metrics if m in metric_registry.REGISTRY),
                                *([metric] if metric else [])]))
    sums = group_sums(wh, sel, use_rollup=use_rollup)
    keys = list(sel.by)
    table = finish_metrics(sums, keep=keys, metrics=names)
    table.insert(table.columns.get_loc("n_failed"), "n_predicted", sums["n_predicted"].astype(int))
    report = LeaderboardReport(table=table, notes=list(sel.notes), keys=tuple(keys))
    if energy_offset == "per-element" or ci or common:
        _from_structures(wh, sel, report, names=names, energy_offset=energy_offset, ci=ci,
                         seed=seed, n_boot=n_boot, common=common)
    table = report.table
    if metric:
        table = _rank(table, metric, keys)
        if note := selection.coverage_note(table, keys):
            report.notes.append(note)
    report.table = table.reset_index(drop=True)
    # the rows without the force-norm sums (kept since schema 0007): fingerprints printed
    # before then still identify the same rows
    report.fingerprint = rows_fingerprint(sums.drop(columns=["fn_abs", "fn_sq", "fn_n"],
                                                    errors="ignore"), options=dict(
        by=keys, pool=pool, energy_offset=energy_offset, ci=ci, seed=seed if ci else None,
        common=common or None))
    n_failed, n_missing = int(table["n_failed"].sum()), int(table["n_missing"].sum())
    if n_failed or n_missing:
        report.notes.append(f"{n_failed} failed and {n_missing} missing predictions are counted"
                            " in n_failed / n_missing, not in the errors")
    return report


def _rank(table: pd.DataFrame, metric: str, keys: list[str]) -> pd.DataFrame:
    """Rank the complete rows of each group by ``metric``; incomplete rows follow, unranked."""
    ranked = table[metric].where(selection.complete(table))
    groups = [table[k] for k in ["dataset", *keys]]
    table = table.assign(rank=ranked.groupby(groups, dropna=False).rank(method="min"))
    table = table.sort_values(["dataset", *keys, "rank", "model"], kind="stable",
                              na_position="last")
    table["rank"] = table["rank"].astype("Int64")
    return table


def _from_structures(wh: Warehouse, sel: Selection, report: LeaderboardReport, *,
                     names: list[str], energy_offset: str, ci: float | None, seed: int,
                     n_boot: int, common: bool) -> None:
    """Recompute the metrics from the per-structure rows: common structures, shifts, CIs."""
    from queries.bootstrap import bootstrap_metrics
    from queries.breakdowns import structure_errors

    keys = list(report.keys)
    per = structure_errors(wh, sel)
    table = report.table
    if common:
        chosen = list(sel.models) or sorted(table.loc[table["n_predicted"] > 0, "model"].unique())
        per, kept = selection.restrict_to_common(per, selection.labelled_members(wh, sel), chosen)
        table = _common_counts(wh, sel, table[table["model"].isin(chosen)], per, keys)
        report.left_out = kept.left_out
        report.notes.append(kept.note())
        if dropped := sorted(set(report.table["model"]) - set(chosen)):
            report.notes.append("--common: models without any ok prediction are left out: "
                                + ", ".join(dropped))
    if energy_offset == "per-element":
        per, report.offsets = selection.shift_energies(wh, sel, per)
        report.notes.append("energy errors after a per-element least-squares shift fitted per"
                            " model and dataset (shifts reported with the table)")
        k = report.offsets.groupby(["model", "dataset"])["element"].transform("size")
        if (under := report.offsets[report.offsets["rank"] < k]).size:
            pairs = sorted({f"{a}/{b}" for a, b in zip(under["model"], under["dataset"], strict=True)})
            report.notes.append("compositions do not determine every shift for " + ", ".join(pairs)
                                + ": the minimum-norm shifts are shown (errors are unaffected)")
    group = ["model", "dataset", *keys]
    stats = metric_registry.row_sums(per[per["status"] == "ok"], group)
    stats = pd.concat([stats[group], metric_registry.finish(stats, names)], axis=1)
    merged = table[group].merge(stats, on=group, how="left")
    table = table.copy()
    for c in names:
        table[c] = merged[c].to_numpy()
    if ci:
        cis = bootstrap_metrics(per, keys=group, level=ci, seed=seed, n_boot=n_boot)
        table = table.merge(cis, on=group, how="left")
        report.notes.append(f"{ci:g}% bootstrap CIs over structures ({n_boot} resamples, seed {seed})")
    report.table = table


def _common_counts(wh: Warehouse, sel: Selection, table: pd.DataFrame, per: pd.DataFrame,
                   keys: list[str]) -> pd.DataFrame:
    """Counts over the common structures: each is predicted ok by every selected model."""
    from queries.offsets import compositions

    rows = per.drop_duplicates(["model", "dataset", *keys, "structure_id"])
    if "element" in keys:  # n_atoms counts the atoms of that species
        comp = compositions(wh, sel).rename(columns={"count": "n_el"})
        rows = rows.merge(comp, on=["structure_id", "element"], how="left")
        rows["n_atoms"] = rows["n_el"]
    g = rows.groupby(["model", "dataset", *keys], dropna=False)
    counts = pd.DataFrame({"n_structures": g["structure_id"].nunique(),
                           "n_atoms": g["n_atoms"].sum()}).reset_index()
    out = table.drop(columns=["n_structures", "n_atoms"]).merge(
        counts, on=["model", "dataset", *keys], how="left")
    for c in ("n_structures", "n_atoms"):
        out[c] = out[c].fillna(0).astype(int)
    out["n_predicted"] = out["n_structures"]
    out["n_failed"] = 0
    out["n_missing"] = 0
    return out[list(table.columns)].reset_index(drop=True)


def _check_options(*, by: Sequence[str], metric: str | None, energy_offset: str,
                   ci: float | None) -> str | None:
    """Refuse bad options before any work; return the metric's registry name."""
    if bad := [k for k in by if k not in BY_KEYS]:
        raise NoMatch(f"unknown breakdown {', '.join(bad)}; use one of {', '.join(BY_KEYS)}")
    selection.check_offset(energy_offset)
    if ci is not None and not 0 < ci < 100:
        raise NoMatch(f"--ci must be a percentage between 0 and 100, not {ci}")
    return None if metric is None else metric_registry.get(metric).name


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

"""Accuracy-cost Pareto fronts: models not dominated in (error, cost).

Both axes obey the comparison rule of DESIGN.md ("Comparability and identity"):

* **Error** comes from the leaderboard (:func:`queries.leaderboard.leaderboard_report`) on one
  dataset, or on several only when pooling is asked for (``pool``); never pooled silently. A
  model enters the front only with an ok prediction for every structure of the pool; the others
  are listed with their coverage and never on the front (:mod:`queries.selection`). With
  ``common`` every model's error is taken on the structures all of them predicted ok. The
  energy offset policy (``energy_offset``) is the leaderboard's, with the same fit.
* **Cost** comes from the ``timings`` table: seconds per atom-step (1 / atom-steps per second)
  of the model's fastest successful record of the task (``md`` by default) *within one
  protocol*: the same task, system (``system``, else ``composition``), precision, hardware class
  and atom count within 10 % (:data:`ATOM_TOLERANCE`). Records of different protocols are never
  compared: each protocol gets its own front (column ``protocol``), and the notes say so. With
  prices per hour of each hardware class, cost becomes money per million atom-steps and the
  hardware class leaves the protocol, so CPU nodes and GPUs share one front, as in the reference
  study's "192 CPU cores vs one H100 at equal charge".

A point is dominated when another point of its protocol is no worse on both axes and better on
one; ties stay on the front. Columns: :data:`COLUMNS`. ``df.attrs`` says where each axis came
from (``error_source``, ``cost_source``) and carries the ``notes``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import StrEnum

import numpy as np
import pandas as pd

from queries import metrics as metric_registry
from queries import selection
from queries.leaderboard import leaderboard_report
from queries.timings import timings
from warehouse.core import Warehouse
from warehouse.errors import NoMatch

# The error metrics by their CLI names (energy-rmse, force-norm-rmse, ...): the registry's.
METRICS = {mt.cli_name: mt for mt in metric_registry.REGISTRY.values()}
ATOM_TOLERANCE = 0.10  # atom counts within 10 % are one protocol


class Col(StrEnum):
    MODEL = "model"
    HARDWARE = "hardware"
    PROTOCOL = "protocol"
    DATASETS = "datasets"
    METRIC = "metric"
    ERROR = "error"
    N_STRUCTURES = "n_structures"
    N_PREDICTED = "n_predicted"
    N_FAILED = "n_failed"
    N_MISSING = "n_missing"
    ATOM_STEPS_PER_S = "atom_steps_per_s"
    S_PER_ATOM_STEP = "s_per_atom_step"
    PRICE_PER_HOUR = "price_per_hour"
    COST = "cost"
    COST_UNIT = "cost_unit"
    TIMING_ID = "timing_id"
    TIMING_SYSTEM = "timing_system"
    TIMING_N_ATOMS = "timing_n_atoms"
    TIMING_PRECISION = "timing_precision"
    ON_FRONT = "on_front"
    DOMINATED_BY = "dominated_by"
    NOTE = "note"


COLUMNS = [c.value for c in Col]


def pareto_front(errors: Sequence[float], costs: Sequence[float]) -> np.ndarray:
    """Boolean mask of the points not dominated when minimising both error and cost.

    NaN on either axis is never on the front.
    """
    e, c = np.asarray(errors, dtype=float), np.asarray(costs, dtype=float)
    ok = np.isfinite(e) & np.isfinite(c)
    front = ok.copy()
    for i in np.flatnonzero(ok):
        others = ok & (e <= e[i]) & (c <= c[i]) & ((e < e[i]) | (c < c[i]))
        front[i] = not others.any()
    return front


def _dominators(e: np.ndarray, c: np.ndarray, names: Sequence[str]) -> list[str | None]:
    out: list[str | None] = []
    for i in range(len(e)):
        if not (np.isfinite(e[i]) and np.isfinite(c[i])):
            out.append(None)
            continue
        dom = (e <= e[i]) & (c <= c[i]) & ((e < e[i]) | (c < c[i])) & np.isfinite(e) & np.isfinite(c)
        out.append(", ".join(sorted({names[j] for j in np.flatnonzero(dom)})) or None)
    return out


def model_errors(wh: Warehouse, *, metric: str, datasets: Sequence[str], models: Sequence[str],
                 pool: bool = False, energy_offset: str = "none",
                 common: bool = False) -> tuple[pd.DataFrame, list[str], str]:
    """One error per model: (table of model, error, counts, complete), notes, dataset label."""
    mt = _metric(metric)
    report = leaderboard_report(wh, datasets=datasets, models=models, pool=pool, metric=mt.name,
                                energy_offset=energy_offset, common=common)
    table = report.table
    notes = [n for n in report.notes if not n.startswith("not ranked")]  # said below, for fronts
    if not pool and table["dataset"].nunique() > 1:
        names = ", ".join(sorted(table["dataset"].unique()))
        raise NoMatch(f"errors come from several datasets ({names}): a front compares models on"
                      " one set of structures; name one with --dataset, or pool them with --pool")
    out = table[["model", "n_structures", "n_predicted", "n_failed", "n_missing"]].copy()
    out["error"] = table[mt.name]
    out["complete"] = selection.complete(table)
    return out.reset_index(drop=True), notes, str(table["dataset"].iloc[0])


def _metric(metric: str) -> metric_registry.Metric:
    if metric not in METRICS and metric.replace("_", "-") not in METRICS:
        raise NoMatch(f"metric {metric!r} is not one of {', '.join(METRICS)}")
    return metric_registry.get(metric)


def protocols(tim: pd.DataFrame, *, priced: bool) -> pd.Series:
    """A protocol label per timing row: task, system, precision, hardware class (unless priced)
    and atom count within :data:`ATOM_TOLERANCE` of the smallest of its cluster."""
    system = tim["system"].fillna(tim["composition"]).fillna("system not stated")
    precision = tim["precision"].fillna("precision not stated")
    keys = pd.DataFrame({"task": tim["task"], "system": system, "precision": precision,
                         "hardware": "" if priced else tim["hardware"].fillna("")})
    labels = pd.Series("", index=tim.index, dtype=object)
    for key, idx in keys.groupby(list(keys.columns), sort=True).groups.items():
        n = pd.to_numeric(tim.loc[idx, "n_atoms"], errors="coerce").sort_values()
        start = None
        for i, v in n.items():
            if pd.isna(v):
                size = "atoms not stated"
            else:
                if start is None or v > start * (1 + ATOM_TOLERANCE):
                    start = v
                size = f"{int(start)}+ atoms"
            task, sys_, prec, hw = key
            labels[i] = ", ".join(x for x in (task, sys_, size, prec, hw) if x)
    return labels


def _timings(wh: Warehouse, models: list[str], task: str, hardware: Sequence[str],
             price_per_hour: Mapping[str, float] | None) -> tuple[pd.DataFrame, list[str]]:
    tim = timings(wh, models=models, task=task, hardware=hardware)
    tim = tim[(tim["status"] == "ok") & (tim["atom_steps_per_s"] > 0)]
    classes = _choose_classes(tim, hardware, price_per_hour)
    tim = tim[tim["hardware"].isin(classes)].copy()
    tim["protocol"] = protocols(tim, priced=bool(price_per_hour))
    keys = ["model", "protocol", "hardware"]
    best = tim.loc[tim.groupby(keys)["atom_steps_per_s"].idxmax()] if len(tim) else tim
    return best.reset_index(drop=True), classes


def pareto(
    wh: Warehouse,
    *,
    metric: str = "force-rmse",
    datasets: Sequence[str] = (),
    hardware: Sequence[str] = (),
    models: Sequence[str] = (),
    task: str = "md",
    price_per_hour: Mapping[str, float] | None = None,
    pool: bool = False,
    energy_offset: str = "none",
    common: bool = False,
) -> pd.DataFrame:
    """Error (from the leaderboard) against cost (from timings) per model, a front per protocol."""
    mt = _metric(metric)
    errs, notes, pool_label = model_errors(wh, metric=mt.name, datasets=datasets, models=models,
                                           pool=pool, energy_offset=energy_offset, common=common)
    best, classes = _timings(wh, list(errs["model"]), task, hardware, price_per_hour)
    rows = errs.merge(best[["model", "hardware", "protocol", "atom_steps_per_s", "timing_id",
                            "system", "n_atoms", "precision", "device_count"]],
                      on="model", how="left")
    rows = rows.rename(columns={"n_atoms": "timing_n_atoms", "system": "timing_system",
                                "precision": "timing_precision"})
    rows["s_per_atom_step"] = 1.0 / rows["atom_steps_per_s"]
    _costs(rows, price_per_hour)
    rows["metric"] = mt.axis_label
    rows["datasets"] = pool_label
    _fronts(rows, priced=bool(price_per_hour))
    rows["note"] = [_note(r, task) for _, r in rows.iterrows()]
    out = rows.sort_values(["protocol", "cost", "error"], na_position="last", ignore_index=True)
    for col in ("n_structures", "n_predicted", "n_failed", "n_missing", "timing_id", "timing_n_atoms"):
        out[col] = out[col].astype("Int64")
    out = out[COLUMNS]
    n_prot = out["protocol"].dropna().nunique()
    if n_prot > 1:
        notes.append(f"costs come from {n_prot} timing protocols (task, system, atom count within"
                     " 10 %, precision, hardware): each has its own front, never mixed")
    if note := selection.coverage_note(errs.assign(dataset=pool_label), what="on any front"):
        notes.append(note)
    out.attrs.update(
        error_source=(f"{mt.axis_label} from the leaderboard on {pool_label}"
                      + (", per-element energy shifts" if energy_offset == "per-element" else "")
                      + (", common structures" if common else "")),
        cost_source=(f"timings task={task}: fastest successful record per model and protocol"
                     + (" (hardware priced per device-hour)" if price_per_hour else "")),
        hardware=", ".join(classes),
        notes=notes,
    )
    return out


def _costs(rows: pd.DataFrame, price_per_hour: Mapping[str, float] | None) -> None:
    if price_per_hour:
        count = rows["device_count"].astype("Float64").fillna(1.0).astype(float)
        rows["price_per_hour"] = rows["hardware"].map(dict(price_per_hour)).astype(float)
        rows["cost"] = rows["price_per_hour"] * count / 3600 * rows["s_per_atom_step"] * 1e6
        rows["cost_unit"] = "money per 1e6 atom-steps"
    else:
        rows["price_per_hour"] = np.nan
        rows["cost"] = rows["s_per_atom_step"]
        rows["cost_unit"] = "s/atom-step"


def _fronts(rows: pd.DataFrame, *, priced: bool) -> None:
    """on_front and dominated_by within each protocol, over the complete models only."""
    rows["on_front"] = False
    rows["dominated_by"] = None
    eligible = rows["complete"].astype(bool) & rows["protocol"].notna()
    for _, idx in rows[eligible].groupby("protocol").groups.items():
        part = rows.loc[idx]
        labels = [f"{mo} @ {hw}" if priced else mo
                  for mo, hw in zip(part["model"], part["hardware"], strict=True)]
        e, c = part["error"].to_numpy(float), part["cost"].to_numpy(float)
        rows.loc[idx, "on_front"] = pareto_front(e, c)
        rows.loc[idx, "dominated_by"] = pd.Series(_dominators(e, c, labels), index=idx, dtype=object)


def _note(r: pd.Series, task: str) -> str:
    parts = []
    if not r["complete"]:
        parts.append(f"{selection.coverage_text(r)}: not on a front (--common compares on the"
                     " shared structures)")
    if pd.isna(r["atom_steps_per_s"]):
        parts.append(f"no {task} timing on this hardware")
    elif pd.isna(r["error"]):
        parts.append("no error for this metric")
    if isinstance(r["protocol"], str) and "not stated" in r["protocol"]:
        parts.append("timing protocol incomplete")
    return "; ".join(parts)


def _choose_classes(tim: pd.DataFrame, hardware: Sequence[str],
                    price_per_hour: Mapping[str, float] | None) -> list[str]:
    have = sorted(set(tim["hardware"].dropna()))
    if not have:
        raise NoMatch("no successful timing records for these models"
                      + (f" on {', '.join(hardware)}" if hardware else "")
                      + "; run `warehouse evaluate` or `warehouse ingest timings` first")
    if price_per_hour:
        if missing := [h for h in price_per_hour if h not in have]:
            raise NoMatch(f"no timings on priced hardware {', '.join(map(repr, missing))};"
                          f" classes with timings: {'; '.join(have)}")
        return [h for h in have if h in price_per_hour]
    if len(have) > 1:
        raise NoMatch(
            f"timings span several hardware classes ({'; '.join(have)}): choose one with"
            " --hardware, or compare them by money with --price-per-hour CLASS=PRICE")
    return have


def parse_prices(values: Sequence[str], hardware: Sequence[str] = ()) -> dict[str, float]:
    """``CLASS=PRICE`` items (or one bare PRICE with exactly one hardware class) -> mapping."""
    out: dict[str, float] = {}
    for item in values:
        label, eq, raw = item.rpartition("=")
        if not eq:
            if len(hardware) != 1:
                raise NoMatch(f"--price-per-hour {item!r}: say which class, CLASS=PRICE (or give"
                              " exactly one --hardware)")
            label, raw = hardware[0], item
        try:
            price = float(raw)
        except ValueError:
            raise NoMatch(f"--price-per-hour {item!r}: {raw!r} is not a number") from None
        if not price > 0:
            raise NoMatch(f"--price-per-hour {item!r}: the price must be positive")
        out[label.strip()] = price
    return out

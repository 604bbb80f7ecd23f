"""Accuracy-cost Pareto fronts: models not dominated in (error, cost).

Error comes from the leaderboard (:func:`queries.leaderboard.leaderboard`) over a dataset pool;
cost from the ``timings`` table on one hardware class: seconds per atom-step
(1 / atom-steps per second) of the model's fastest successful record of the task (``md`` by
default). With prices per hour of each hardware class, cost becomes money per million
atom-steps, and models on different hardware (CPU nodes and GPUs) share one front, as in the
reference study's "192 CPU cores vs one H100 at equal charge".

A point is dominated when another is no worse on both axes and better on one; ties stay on
the front. Columns (:class:`Col`): model, hardware, datasets, metric, error, atom_steps_per_s,
s_per_atom_step, price_per_hour, cost, cost_unit, timing_id, timing_n_atoms, n_structures,
n_failed, n_missing, on_front, dominated_by, note. ``df.attrs`` says where each axis came from.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import StrEnum

import numpy as np
import pandas as pd

from queries import leaderboard as lb
from queries.timings import timings
from warehouse.core import Warehouse
from warehouse.errors import NoMatch

METRICS = {
    "energy-mae": lb.Col.ENERGY_MAE, "energy-rmse": lb.Col.ENERGY_RMSE,
    "force-mae": lb.Col.FORCE_MAE, "force-rmse": lb.Col.FORCE_RMSE,
    "stress-mae": lb.Col.STRESS_MAE, "stress-rmse": lb.Col.STRESS_RMSE,
}


class Col(StrEnum):
    MODEL = "model"
    HARDWARE = "hardware"
    DATASETS = "datasets"
    METRIC = "metric"
    ERROR = "error"
    ATOM_STEPS_PER_S = "atom_steps_per_s"
    S_PER_ATOM_STEP = "s_per_atom_step"
    PRICE_PER_HOUR = "price_per_hour"
    COST = "cost"
    COST_UNIT = "cost_unit"
    TIMING_ID = "timing_id"
    TIMING_N_ATOMS = "timing_n_atoms"
    N_STRUCTURES = "n_structures"
    N_FAILED = "n_failed"
    N_MISSING = "n_missing"
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


def pooled_errors(wh: Warehouse, *, metric: str, datasets: Sequence[str],
                  models: Sequence[str]) -> pd.DataFrame:
    """One error per model over the dataset pool: (model, error, n_structures, n_failed, n_missing).

    The leaderboard pools the datasets exactly (atom-weighted forces, per-structure energies and
    stresses over the union of members), so a model's error is one figure whatever the pool.
    """
    col = METRICS[metric]
    table = lb.leaderboard(wh, datasets=datasets, models=models, pool=True)
    counts = table.groupby("model")[["n_structures", "n_failed", "n_missing"]].sum()
    errors = table.set_index("model")[col.value]
    return counts.join(errors.rename("error")).reset_index()


def pareto(
    wh: Warehouse,
    *,
    metric: str = "force-rmse",
    datasets: Sequence[str] = (),
    hardware: Sequence[str] = (),
    models: Sequence[str] = (),
    task: str = "md",
    price_per_hour: Mapping[str, float] | None = None,
) -> pd.DataFrame:
    """Error (from the leaderboard over ``datasets``) against cost (from timings) per model."""
    if metric not in METRICS:
        raise NoMatch(f"metric {metric!r} is not one of {', '.join(METRICS)}")
    errs = pooled_errors(wh, metric=metric, datasets=datasets, models=models)
    tim = timings(wh, models=list(errs["model"]), task=task, hardware=hardware)
    tim = tim[(tim["status"] == "ok") & (tim["atom_steps_per_s"] > 0)]
    classes = _choose_classes(tim, hardware, price_per_hour)
    tim = tim[tim["hardware"].isin(classes)]
    best = tim.loc[tim.groupby(["model", "hardware"])["atom_steps_per_s"].idxmax()] if len(tim) else tim
    rows = errs.merge(best[["model", "hardware", "atom_steps_per_s", "timing_id", "n_atoms",
                            "device_count"]], on="model", how="left")
    rows = rows.rename(columns={"n_atoms": "timing_n_atoms"})
    rows["s_per_atom_step"] = 1.0 / rows["atom_steps_per_s"]
    if price_per_hour:
        count = rows["device_count"].astype("Float64").fillna(1.0).astype(float)
        rows["price_per_hour"] = rows["hardware"].map(dict(price_per_hour)).astype(float)
        rows["cost"] = rows["price_per_hour"] * count / 3600 * rows["s_per_atom_step"] * 1e6
        rows["cost_unit"] = "money per 1e6 atom-steps"
    else:
        rows["price_per_hour"] = np.nan
        rows["cost"] = rows["s_per_atom_step"]
        rows["cost_unit"] = "s/atom-step"
    rows["metric"] = f"{metric} ({lb.UNITS[METRICS[metric]]})"
    rows["datasets"] = ",".join(datasets) if datasets else "all"
    labels = [f"{mo} @ {hw}" if price_per_hour else mo
              for mo, hw in zip(rows["model"], rows["hardware"], strict=True)]
    e, c = rows["error"].to_numpy(float), rows["cost"].to_numpy(float)
    rows["on_front"] = pareto_front(e, c)
    rows["dominated_by"] = _dominators(e, c, labels)
    rows["note"] = np.where(rows["atom_steps_per_s"].isna(), f"no {task} timing on this hardware",
                            np.where(rows["error"].isna(), "no error for this metric", ""))
    out = rows.sort_values(["cost", "error"], na_position="last", ignore_index=True)
    for col in ("n_structures", "n_failed", "n_missing", "timing_id", "timing_n_atoms"):
        out[col] = out[col].astype("Int64")
    out = out[COLUMNS]
    out.attrs.update(
        error_source=f"leaderboard {metric} over datasets {', '.join(datasets) or 'all'}",
        cost_source=f"timings task={task}, fastest successful record per model and hardware class",
        hardware=", ".join(classes),
    )
    return out


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

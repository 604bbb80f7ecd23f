"""Figures for the MD and property questions (PNG, SVG or PDF by the file's suffix).

- :func:`plot_drift`: energy drift vs temperature, one line per (model, system), a log y axis
  when the drifts span more than 30x (a run that failed is marked with an x at the top).
- :func:`plot_overlay`: one series or profile overlaid across ensemble members.
- :func:`plot_parity`: model vs reference per property kind, with the y = x line and MAE.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never a window

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from queries.figio import figure_path, log_if_wide, save_figure  # noqa: E402
from warehouse.errors import NoMatch  # noqa: E402



def plot_drift(df: pd.DataFrame, out: str | Path, *, column: str = "drift_max_mev_per_atom",
               title: str | None = None) -> Path:
    """|drift| vs temperature from :func:`queries.md.drift_table`'s table."""
    out = figure_path(out)
    if df.empty:
        raise NoMatch("no drift rows to plot")
    unit = "meV/atom/ps" if "slope" in column else "meV/atom"
    keys = ["model", "system", "part"] if "part" in df else ["model", "system"]
    no_t = df["temperature_k"].isna().all()
    fig, ax = plt.subplots(figsize=(6.4, 1.2 + 0.45 * len(df) if no_t else 4.6),
                           layout="constrained")
    if no_t:  # no temperatures stated: one bar per run instead
        _drift_bars(ax, df, column, keys, unit)
        ax.set_title(title or "NVE energy drift per run (no temperatures recorded)", fontsize=9)
        return save_figure(fig, out)
    ok = df[df[column].notna() & df["temperature_k"].notna()]
    for key, rows in ok.groupby(keys, dropna=False):
        rows = rows.sort_values("temperature_k")
        label = " / ".join(str(k) for k in key if isinstance(k, str))
        ax.plot(rows["temperature_k"], np.abs(rows[column]), marker="o", label=label)
    failed = df[(df["status"] != "ok") & df["temperature_k"].notna()]
    if not failed.empty:
        top = np.nanmax(np.abs(ok[column])) * 3 if not ok.empty else 1.0
        ax.scatter(failed["temperature_k"], np.full(len(failed), top), marker="x", color="k",
                   zorder=4, label="failed run")
    log_if_wide(np.abs(ok[column].to_numpy(float)), ax.set_yscale)
    ax.set_xlabel("temperature (K)")
    ax.set_ylabel(f"|energy drift| ({unit})")
    if n_without := int(df["temperature_k"].isna().sum()):
        ax.text(0.01, 0.01, f"{n_without} run(s) without a temperature not drawn",
                transform=ax.transAxes, fontsize=7, color="0.4")
    ax.set_title(title or "NVE energy drift vs temperature", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    return save_figure(fig, out)


def _drift_bars(ax, df: pd.DataFrame, column: str, keys: list[str], unit: str) -> None:
    """Horizontal bars of |drift| per run; a failed run is named with no bar."""
    labels = [" / ".join(str(r[k]) for k in keys if isinstance(r[k], str)) for _, r in df.iterrows()]
    values = np.abs(df[column].to_numpy(float))
    y = np.arange(len(df))
    ax.barh(y, np.nan_to_num(values), color="tab:blue")
    ax.set_yticks(y, [lb + ("" if df["status"].iloc[i] == "ok" else " (failed)")
                      for i, lb in enumerate(labels)], fontsize=8)
    ax.invert_yaxis()
    log_if_wide(values, ax.set_xscale)
    ax.set_xlabel(f"|energy drift| ({unit})")
    ax.grid(True, axis="x", alpha=0.3)


def plot_overlay(df: pd.DataFrame, out: str | Path, *, title: str | None = None) -> Path:
    """Value vs time (series) or position (profile), one line per member run."""
    out = figure_path(out)
    if df.empty:
        raise NoMatch("nothing to plot")
    fig, ax = plt.subplots(figsize=(6.4, 4.6), layout="constrained")
    for (model, run_id), part in df.groupby(["model", "md_run_id"], sort=False):
        ax.plot(part["x"], part["value"], lw=1.2, label=str(model))
    first = df.iloc[0]
    ax.set_xlabel(f"{first['x_name']} ({first['x_unit'] or '-'})")
    ax.set_ylabel(f"{first['column']} ({first['unit'] or '-'})")
    ax.set_title(title or f"{first['column']} across {df['md_run_id'].nunique()} runs", fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    return save_figure(fig, out)


def plot_parity(table: pd.DataFrame, summary: pd.DataFrame, out: str | Path, *,
                title: str | None = None) -> Path:
    """One panel per property kind: model value vs reference value, y = x, MAE per model."""
    out = figure_path(out)
    if table.empty:
        raise NoMatch("no parity pairs to plot")
    kinds = sorted(table["property"].unique())
    ncol = min(3, len(kinds))
    nrow = math.ceil(len(kinds) / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.2 * ncol, 4.0 * nrow), layout="constrained",
                             squeeze=False)
    for ax, kind in zip(axes.ravel(), kinds, strict=False):
        part = table[table["property"] == kind]
        for model, g in part.groupby("model"):
            mae = summary[(summary["property"] == kind) & (summary["model"] == model)]["mae"]
            ax.scatter(g["reference_value"], g["model_value"], s=10,
                       label=f"{model} (MAE {mae.iloc[0]:.3g})")
        lo = float(min(part["reference_value"].min(), part["model_value"].min()))
        hi = float(max(part["reference_value"].max(), part["model_value"].max()))
        ax.plot([lo, hi], [lo, hi], color="0.4", lw=0.8)
        unit = part["unit"].iloc[0] or "-"
        ax.set_xlabel(f"{part['reference'].iloc[0]} ({unit})")
        ax.set_ylabel(f"model ({unit})")
        ax.set_title(kind, fontsize=9)
        ax.legend(fontsize=7)
        ax.grid(True, alpha=0.3)
    for ax in axes.ravel()[len(kinds):]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title, fontsize=10)
    return save_figure(fig, out)

"""Figures for the cost questions: accuracy-cost Pareto fronts and throughput scaling.

Both take the DataFrames of :mod:`queries.pareto` and :mod:`queries.timings` and write a PNG or
SVG (by the file's suffix). Cost axes are logarithmic: models differ in cost by decades.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never a window

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from queries.figio import figure_path, save_figure  # noqa: E402
from warehouse.errors import NoMatch  # noqa: E402



def plot_pareto(df: pd.DataFrame, out: str | Path, *, title: str | None = None) -> Path:
    """Error vs cost (log axis), every point labelled, the front drawn as a step line."""
    out = figure_path(out)
    pts = df[df["error"].notna() & df["cost"].notna()]
    if pts.empty:
        raise NoMatch("no model has both an error and a cost to plot")
    priced = pts["price_per_hour"].notna().any()
    fig, ax = plt.subplots(figsize=(6.4, 4.6), layout="constrained")
    for on, marker, colour in ((False, "o", "0.55"), (True, "D", "tab:red")):
        part = pts[pts["on_front"] == on]
        ax.scatter(part["cost"], part["error"], marker=marker, color=colour, zorder=3,
                   label="Pareto front" if on else "dominated")
    front = pts[pts["on_front"]].sort_values("cost")
    if len(front) > 1:
        ax.step(front["cost"], front["error"], where="post", color="tab:red", lw=1.2, zorder=2)
    for _, r in pts.iterrows():
        label = f"{r['model']} ({r['hardware']})" if priced else str(r["model"])
        ax.annotate(label, (r["cost"], r["error"]), textcoords="offset points", xytext=(5, 4),
                    fontsize=7)
    ax.set_xscale("log")
    if pts["error"].min() > 0 and pts["error"].max() / pts["error"].min() > 30:
        ax.set_yscale("log")  # classical baselines can be 100x worse than the MLIPs
    ax.set_xlabel(f"cost ({pts['cost_unit'].iloc[0]})")
    ax.set_ylabel(str(pts["metric"].iloc[0]))
    hw = df.attrs.get("hardware") or ", ".join(sorted(set(pts["hardware"].dropna())))
    ax.set_title(title or f"{pts['datasets'].iloc[0]} on {hw}", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    return save_figure(fig, out)


def plot_scaling(df: pd.DataFrame, out: str | Path, *, title: str | None = None) -> Path:
    """Atom-steps per second vs number of atoms, one line per (model, hardware), log-log."""
    out = figure_path(out)
    if df.empty:
        raise NoMatch("no scaling records to plot")
    fig, ax = plt.subplots(figsize=(6.4, 4.6), layout="constrained")
    for (model, hw), part in df.groupby(["model", "hardware"], dropna=False):
        part = part.sort_values("n_atoms")
        ax.plot(part["n_atoms"], part["atom_steps_per_s"], marker="o", label=f"{model} ({hw})")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("atoms")
    ax.set_ylabel("atom-steps per second")
    ax.set_title(title or "MD throughput vs system size", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    return save_figure(fig, out)

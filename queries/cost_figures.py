"""Figures for the cost questions: accuracy-cost Pareto fronts and throughput scaling.

Both take the DataFrames of :mod:`queries.pareto` and :mod:`queries.timings` and write a PNG,
SVG or PDF (by the file's suffix). Pareto axes are logarithmic only where the values span more
than a factor 30; throughput-vs-size plots are log-log (sizes and rates span decades).
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never a window

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from queries.figio import figure_path, log_if_wide, save_figure  # noqa: E402
from warehouse.errors import NoMatch  # noqa: E402



# Candidate label positions around a point (offset in points, horizontal alignment), tried in
# order at growing distances; the first whose box overlaps no other label or point wins.
_OFFSETS = [(5, 3, "left"), (5, -11, "left"), (-5, 3, "right"), (-5, -11, "right"),
            (0, 7, "center"), (0, -16, "center")]
_RINGS = (1.0, 2.2, 3.6, 5.0)


def place_labels(ax, xs, ys, texts: list[str], *, fontsize: float = 7.0) -> list:
    """Annotate each point without overprinting: labels go where they overlap nothing, with a
    leader line when pushed away from their point. Returns the text artists (for tests)."""
    fig = ax.figure
    fig.canvas.draw()  # the layout is settled, so display boxes are final
    renderer = fig.canvas.get_renderer()
    inside = ax.get_window_extent(renderer)
    pts = ax.transData.transform(list(zip(xs, ys, strict=True)))
    taken = [_box(x, y, 4) for x, y in pts]  # the markers themselves
    if ax.get_legend() is not None:
        taken.append(ax.get_legend().get_window_extent(renderer))
    artists = []
    for x, y, text in sorted(zip(xs, ys, texts, strict=True), key=lambda t: (t[0], t[1])):
        best = None
        for ring in _RINGS:
            for dx, dy, ha in _OFFSETS:
                t = ax.annotate(text, (x, y), xytext=(dx * ring, dy * ring),
                                textcoords="offset points", ha=ha, fontsize=fontsize,
                                arrowprops=None if ring == 1.0 else
                                dict(arrowstyle="-", lw=0.5, color="0.5", shrinkA=0, shrinkB=2))
                bb = t.get_window_extent(renderer).padded(1.5)
                fits = (bb.x0 >= inside.x0 and bb.x1 <= inside.x1 and bb.y0 >= inside.y0
                        and bb.y1 <= inside.y1)
                if fits and not any(bb.overlaps(o) for o in taken):
                    best = (t, bb)
                    break
                t.remove()
            if best:
                break
        if best is None:  # crowded beyond all rings: the first place, still with its text
            t = ax.annotate(text, (x, y), xytext=(5, 3), textcoords="offset points", fontsize=fontsize)
            best = (t, t.get_window_extent(renderer))
        taken.append(best[1])
        artists.append(best[0])
    return artists


def _box(x: float, y: float, r: float):
    from matplotlib.transforms import Bbox

    return Bbox([[x - r, y - r], [x + r, y + r]])


def plot_pareto(df: pd.DataFrame, out: str | Path, *, title: str | None = None) -> Path:
    """Write :func:`pareto_figure` to ``out`` (PNG, SVG or PDF by the suffix)."""
    out = figure_path(out)
    fig, _ = pareto_figure(df, title=title)
    return save_figure(fig, out)


def pareto_figure(df: pd.DataFrame, *, title: str | None = None):
    """Error vs cost, one panel per timing protocol (costs are compared within one only), the
    front as a step line, every point labelled without overprinting, both axes' sources below.
    Returns (figure, label texts)."""
    from queries.selection import complete

    # incomplete models are not comparable (DESIGN.md): named in the caption, not drawn
    whole = complete(df)
    pts = df[whole & df["error"].notna() & df["cost"].notna() & df["protocol"].notna()]
    if pts.empty:
        raise NoMatch("no model with every structure predicted ok has both an error and a cost"
                      " to plot (--common compares models on the structures they share)")
    left = sorted(set(df.loc[~whole, "model"]))
    groups = list(pts.groupby("protocol", sort=True))
    ncol = min(2, len(groups))
    nrow = -(-len(groups) // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(6.4 * ncol, 4.6 * nrow + 0.5),
                             layout="constrained", squeeze=False)
    for ax, (protocol, part) in zip(axes.ravel(), groups, strict=False):
        _pareto_panel(ax, part, protocol=str(protocol))
    for ax in axes.ravel()[len(groups):]:
        ax.set_visible(False)
    first = pts.iloc[0]
    fig.suptitle(title or f"{first['metric']} on {first['datasets']} against cost", fontsize=10)
    if "error_source" in df.attrs:
        src = f"error: {df.attrs['error_source']}\ncost: {df.attrs['cost_source']}"
        if left:
            src += "\nnot drawn (failed or missing predictions): " + ", ".join(left)
        fig.supxlabel(src, fontsize=6.5, color="0.35")
    texts = []
    for ax, (_, part) in zip(axes.ravel(), groups, strict=False):
        priced = part["price_per_hour"].notna().any()
        labels = [f"{r.model} ({r.hardware})" if priced else str(r.model)
                  for r in part.itertuples()]
        texts += place_labels(ax, part["cost"].to_numpy(float), part["error"].to_numpy(float), labels)
    return fig, texts


def _pareto_panel(ax, part: pd.DataFrame, *, protocol: str) -> None:
    for on, marker, colour in ((False, "o", "0.55"), (True, "D", "tab:red")):
        sub = part[part["on_front"] == on]
        if len(sub):
            ax.scatter(sub["cost"], sub["error"], marker=marker, color=colour, zorder=3, s=22,
                       label="Pareto front" if on else "dominated")
    front = part[part["on_front"]].sort_values("cost")
    if len(front) > 1:
        ax.step(front["cost"], front["error"], where="post", color="tab:red", lw=1.2, zorder=2)
    log_if_wide(part["cost"].to_numpy(float), ax.set_xscale)
    log_if_wide(part["error"].to_numpy(float), ax.set_yscale)
    ax.margins(0.18)  # room for labels inside the axes
    ax.set_xlabel(f"cost ({part['cost_unit'].iloc[0]})")
    ax.set_ylabel(str(part["metric"].iloc[0]))
    ax.set_title(textwrap.fill(f"timing protocol: {protocol}", 85), fontsize=8)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=7, loc="best")


def plot_scaling(df: pd.DataFrame, out: str | Path, *, title: str | None = None) -> Path:
    """Atom-steps per second vs number of atoms, one line per (model, hardware); an axis is
    logarithmic where its values span more than 30x."""
    out = figure_path(out)
    if df.empty:
        raise NoMatch("no scaling records to plot")
    one_class = df["hardware"].nunique(dropna=False) == 1
    fig, ax = plt.subplots(figsize=(6.4, 4.6), layout="constrained")
    for (model, hw), part in df.groupby(["model", "hardware"], dropna=False):
        part = part.sort_values("n_atoms")
        ax.plot(part["n_atoms"], part["atom_steps_per_s"], marker="o",
                label=str(model) if one_class else f"{model} ({hw})")
    log_if_wide(df["n_atoms"].to_numpy(float), ax.set_xscale)
    log_if_wide(df["atom_steps_per_s"].to_numpy(float), ax.set_yscale)
    ax.set_xlabel("atoms")
    ax.set_ylabel("atom-steps per second")
    where = f" on {df['hardware'].iloc[0]}" if one_class else ""
    ax.set_title(title or f"MD throughput vs system size{where}", fontsize=9)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=7)
    return save_figure(fig, out)

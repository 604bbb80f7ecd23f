"""Figures of uncertainty against true error (PNG, SVG or PDF by the file's suffix).

:func:`plot_uq` draws, for each (quantity, level) asked for, a log-log scatter of U against e with
Spearman rho and its CI in the panel title, beside the calibration curve (mean e per equal-count
bin of U, with the bin counts, and the y = x line). Per-atom scatters of millions of points are
drawn from a seeded random subsample (the title says how many); rho is always from all pairs.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never a window

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import NullFormatter  # noqa: E402

from queries.uq import (  # noqa: E402
    DEFAULT_N_BOOT, PAIRS, REPORT_UNIT, Level, Quantity, calibration_bins, spearman_ci,
)
from queries.figio import figure_path, save_figure  # noqa: E402
from queries.uq_data import UQData  # noqa: E402
from warehouse.errors import NoMatch  # noqa: E402



def _values(data: UQData, quantity: Quantity, level: Level):
    if level is Level.ATOM:
        return data.atom_u * data.u_scale, data.atom_e * 1000.0
    st = data.structures[data.structures[f"{quantity}_status"] == "used"]
    return st[f"u_{quantity}"].to_numpy() * data.u_scale, st[f"e_{quantity}"].to_numpy() * 1000.0


def plot_uq(
    data: UQData,
    out: str | Path,
    *,
    quantity: Quantity | None = None,
    level: Level | None = None,
    n_bins: int = 10,
    max_points: int = 50_000,
    n_boot: int = DEFAULT_N_BOOT,
    seed: int = 0,
) -> Path:
    """Write the U-vs-e scatter and calibration panels of ``data`` to ``out``."""
    out = figure_path(out)
    pairs = [(q, lv) for q, lv in PAIRS if (quantity is None or q == quantity)
             and (level is None or lv == level)]
    if not pairs:
        raise NoMatch("energy has no atom level; ask for --quantity force or --level structure")
    panels = [(q, lv, *_values(data, q, lv)) for q, lv in pairs]
    for q, lv, u, e in panels:  # refuse before drawing anything
        if not ((u > 0) & (e > 0)).any():
            raise NoMatch(f"{q}/{lv}: no pair with U > 0 and e > 0 to draw on log axes"
                          + (f" ({data.note})" if data.note else " (zero uncertainty?)"))
    fig, axes = plt.subplots(len(pairs), 2, figsize=(10, 4.2 * len(pairs)), layout="constrained",
                             squeeze=False)
    for (q, lv, u, e), (ax_s, ax_c) in zip(panels, axes, strict=True):
        _scatter_panel(ax_s, data, q, lv, u, e, max_points=max_points, n_boot=n_boot, seed=seed)
        _calibration_panel(ax_c, data, q, u, e, n_bins=n_bins)
        for ax in (ax_s, ax_c):  # minor-tick labels of short log ranges overlap
            ax.xaxis.set_minor_formatter(NullFormatter())
            ax.yaxis.set_minor_formatter(NullFormatter())
    fig.suptitle(f"{data.source} on {', '.join(data.datasets)}", fontsize=10)
    return save_figure(fig, out)


def _u_label(data: UQData, unit: str) -> str:
    return "grade" if data.kind == "grades" else f"U ({unit})"


def _scatter_panel(ax, data: UQData, q: Quantity, lv: Level, u, e, *, max_points: int,
                   n_boot: int, seed: int) -> None:
    """Log-log U vs e (a seeded subsample when large), rho and its CI from all pairs."""
    rc = spearman_ci(u, e, n_boot=n_boot, seed=seed)
    idx = np.flatnonzero((u > 0) & (e > 0))
    if len(idx) > max_points:
        idx = np.sort(np.random.default_rng(seed).choice(idx, max_points, replace=False))
    ax.scatter(u[idx], e[idx], s=4, alpha=0.35, lw=0)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(_u_label(data, REPORT_UNIT[q]))
    ax.set_ylabel(f"e ({REPORT_UNIT[q]})")
    rho = "undefined" if math.isnan(rc.rho) else f"{rc.rho:.3f} [{rc.ci_low:.3f}, {rc.ci_high:.3f}]"
    shown = f"; {len(idx):,} of {len(u):,} shown" if len(idx) < len(u) else ""
    ax.set_title(f"{q}, {lv} level: Spearman rho = {rho}\nn = {rc.n:,}{shown}", fontsize=9)


def _calibration_panel(ax, data: UQData, q: Quantity, u, e, *, n_bins: int) -> None:
    """Mean and RMS e per equal-count bin of U (counts annotated), with e = U or grade = 1."""
    unit = REPORT_UNIT[q]
    cal = calibration_bins(u, e, n_bins=n_bins)
    ok = (cal["mean_u"] > 0) & (cal["mean_e"] > 0)
    ax.plot(cal["mean_u"][ok], cal["mean_e"][ok], marker="o", label="mean e per bin")
    ax.plot(cal["mean_u"][ok], cal["rms_e"][ok], marker=".", ls=":", label="RMS e per bin")
    for _, r in cal[ok].iterrows():
        ax.annotate(f"{int(r['n'])}", (r["mean_u"], r["mean_e"]), fontsize=6,
                    textcoords="offset points", xytext=(3, -8))
    if data.kind == "grades":
        ax.axvline(1.0, color="k", ls="--", lw=0.8, label="grade = 1")
    elif ok.any():
        lo = min(cal["mean_u"][ok].min(), cal["mean_e"][ok].min())
        hi = max(cal["mean_u"][ok].max(), cal["rms_e"][ok].max())
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.8, label="e = U")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("mean " + _u_label(data, unit) + " in bin")
    ax.set_ylabel(f"e ({unit})")
    ax.set_title(f"calibration: {len(cal)} equal-count bins (counts shown)", fontsize=9)
    ax.legend(fontsize=7)

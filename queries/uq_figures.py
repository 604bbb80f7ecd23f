"""Figures of uncertainty against true error (PNG, SVG or PDF by the file's suffix).

:func:`plot_uq` draws, for each (quantity, level) asked for, a scatter of U against e with
Spearman rho and its CI in the panel title, beside the calibration curve (mean and RMS e per
equal-count bin of U, and the y = x line); axes are logarithmic where the values span more than
30x, and values below :data:`FLOOR` (numerical zeros) are drawn at the floor, marked. Per-atom scatters of millions of points are
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

# Values below this (report units: 1 µeV/atom, 1 µeV/Å) are numerical noise, e.g. the forces of
# a cell that are zero by symmetry; they are drawn at the floor, so that 1e-13 does not stretch
# the axes over 16 decades. Rho and the calibration use the values themselves.
FLOOR = 1e-3
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
        if not ((u > 0) & (e > 0)).any() and len(u):
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
    """U vs e (a seeded subsample when large; values under :data:`FLOOR` drawn at it), rho and
    its CI from all pairs. Axes are logarithmic only where the values span more than 30x."""
    rc = spearman_ci(u, e, n_boot=n_boot, seed=seed)
    idx = np.arange(len(u))
    if len(idx) > max_points:
        idx = np.sort(np.random.default_rng(seed).choice(idx, max_points, replace=False))
    floor = FLOOR if data.kind != "grades" else 0.0
    low = (u[idx] < floor) | (e[idx] < FLOOR)
    up, ep = np.maximum(u[idx], floor), np.maximum(e[idx], FLOOR)
    ax.scatter(up[~low], ep[~low], s=4, alpha=0.35, lw=0, rasterized=len(idx) > 5000)
    if low.any():
        ax.scatter(up[low], ep[low], s=8, marker="x", lw=0.6, color="0.5",
                   label=f"{int(low.sum()):,} below {FLOOR:g} {REPORT_UNIT[q]}, drawn at it")
        ax.legend(fontsize=7, loc="lower right")
    _log_if_wide(ax, up, ep, diagonal=False)
    ax.set_xlabel(_u_label(data, REPORT_UNIT[q]))
    ax.set_ylabel(f"e ({REPORT_UNIT[q]})")
    rho = "undefined" if math.isnan(rc.rho) else f"{rc.rho:.3f} [{rc.ci_low:.3f}, {rc.ci_high:.3f}]"
    shown = f"; {len(idx):,} of {len(u):,} shown" if len(idx) < len(u) else ""
    ax.set_title(f"{q}, {lv} level: Spearman rho = {rho}\nn = {rc.n:,}{shown}", fontsize=9)


def _log_if_wide(ax, x, y, *, diagonal: bool) -> None:
    """Log x and y where each spans more than 30x (both together when a y = x line is drawn)."""
    def wide(v):
        v = v[np.isfinite(v) & (v > 0)]
        return len(v) > 0 and v.max() / v.min() > 30

    if diagonal:
        if wide(np.concatenate([x, y])):
            ax.set_xscale("log")
            ax.set_yscale("log")
        return
    if wide(x):
        ax.set_xscale("log")
    if wide(y):
        ax.set_yscale("log")


def _calibration_panel(ax, data: UQData, q: Quantity, u, e, *, n_bins: int) -> None:
    """Mean and RMS e per equal-count bin of U, with e = U or grade = 1."""
    unit = REPORT_UNIT[q]
    cal = calibration_bins(u, e, n_bins=n_bins)
    floor = FLOOR if data.kind != "grades" else 0.0
    mu = np.maximum(cal["mean_u"].to_numpy(float), floor)
    me, re = np.maximum(cal["mean_e"].to_numpy(float), FLOOR), np.maximum(cal["rms_e"].to_numpy(float), FLOOR)
    ax.plot(mu, me, marker="o", label="mean e per bin")
    ax.plot(mu, re, marker=".", ls=":", label="RMS e per bin")
    if data.kind == "grades":
        ax.axvline(1.0, color="k", ls="--", lw=0.8, label="grade = 1")
        _log_if_wide(ax, mu, np.concatenate([me, re]), diagonal=False)
    elif len(cal):
        lo, hi = min(mu.min(), me.min()), max(mu.max(), re.max())
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.8, label="e = U")
        _log_if_wide(ax, mu, np.concatenate([me, re]), diagonal=True)
    ax.set_xlabel("mean " + _u_label(data, unit) + " in bin")
    ax.set_ylabel(f"e ({unit})")
    n = cal["n"] if len(cal) else [0]
    counts = f"{min(n):,}" if min(n) == max(n) else f"{min(n):,}-{max(n):,}"
    ax.set_title(f"calibration: {len(cal)} equal-count bins of {counts} pairs", fontsize=9)
    ax.legend(fontsize=7, loc="upper left")

"""Figures for papers (matplotlib, Agg): parity plots, a periodic-table heatmap of per-element
errors, and errors against the number of components.

:func:`parity_data` reads values (catalog for energies and stresses, the lake for forces); the
``plot_*`` functions are pure: a DataFrame in, a PNG/SVG/PDF file out (the suffix picks it).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import and_, select

from queries.breakdowns import resolve_selection
from queries.figio import figure_path, save_figure
from warehouse import models as m
from warehouse.core import Warehouse
from warehouse.errors import NoMatch

QUANTITIES = ("energy", "forces", "stress")
PARITY_UNITS = {"energy": "eV/atom", "forces": "eV/Å", "stress": "GPa"}
STRESS = ("xx", "yy", "zz", "yz", "xz", "xy")
MAX_POINTS = 200_000  # forces of big sets are subsampled (seeded) so a figure stays light


def _pairs(wh: Warehouse, model: str, dataset: str) -> pd.DataFrame:
    """One row per ok prediction of ``model`` on a member of ``dataset`` with a reference."""
    resolve_selection(wh, datasets=[dataset], models=[model])
    p, r, d, dm, s, mo = m.Prediction, m.Reference, m.Dataset, m.DatasetMember, m.Structure, m.Model
    cols = [p.id.label("prediction_id"), r.id.label("reference_id"), s.id.label("structure_id"),
            s.n_atoms, p.energy.label("e_pred"), r.energy.label("e_ref"),
            p.lake_file_id.label("p_file"), r.lake_file_id.label("r_file")]
    cols += [getattr(p, f"stress_{c}").label(f"p_{c}") for c in STRESS]
    cols += [getattr(r, f"stress_{c}").label(f"r_{c}") for c in STRESS]
    stmt = (select(*cols).select_from(dm).join(d, d.id == dm.dataset_id)
            .join(s, s.id == dm.structure_id)
            .join(r, and_(r.structure_id == dm.structure_id, r.level_of_theory_id == d.level_of_theory_id))
            .join(p, p.structure_id == dm.structure_id).join(mo, mo.id == p.model_id)
            .where(d.name == dataset, mo.name == model, p.status == "ok"))
    with wh.engine.connect() as conn:
        df = pd.read_sql(stmt, conn)
    if df.empty:
        raise NoMatch(f"model {model!r} has no ok prediction on dataset {dataset!r}")
    return df


def _lake_forces(wh: Warehouse, files: pd.Series, ids: pd.Series, id_name: str) -> pd.DataFrame:
    parts = []
    with wh.session() as s:
        for lf_id, group in ids.groupby(files):
            path = s.get(m.LakeFile, int(lf_id)).path
            t = wh.lake.read(path, columns=[id_name, "structure_id", "atom_index", "fx", "fy", "fz"],
                             filters=[(id_name, "in", [int(i) for i in group])])
            parts.append(t.to_pandas())
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def parity_data(wh: Warehouse, *, model: str, dataset: str, quantity: str, seed: int = 0) -> pd.DataFrame:
    """Columns ``ref``, ``pred`` (units :data:`PARITY_UNITS`) and ``component``."""
    out = _parity_data(wh, model=model, dataset=dataset, quantity=quantity, seed=seed)
    if out.empty:
        raise NoMatch(f"no {quantity} with both a reference label and a prediction for model"
                      f" {model!r} on dataset {dataset!r}")
    return out


def _parity_data(wh: Warehouse, *, model: str, dataset: str, quantity: str, seed: int) -> pd.DataFrame:
    if quantity not in QUANTITIES:
        raise NoMatch(f"unknown quantity {quantity!r}; use one of {', '.join(QUANTITIES)}")
    df = _pairs(wh, model, dataset)
    if quantity == "energy":
        df = df.dropna(subset=["e_pred", "e_ref"])
        return pd.DataFrame({"ref": df["e_ref"] / df["n_atoms"], "pred": df["e_pred"] / df["n_atoms"],
                             "component": "E"})
    if quantity == "stress":
        out = [pd.DataFrame({"ref": df[f"r_{c}"], "pred": df[f"p_{c}"], "component": c}) for c in STRESS]
        return pd.concat(out, ignore_index=True).dropna()
    df = df.dropna(subset=["p_file", "r_file"])
    pred = _lake_forces(wh, df["p_file"], df["prediction_id"], "prediction_id")
    ref = _lake_forces(wh, df["r_file"], df["reference_id"], "reference_id")
    if pred.empty or ref.empty:
        raise NoMatch(f"no forces stored for model {model!r} and dataset {dataset!r}")
    j = pred.merge(ref, on=["structure_id", "atom_index"], suffixes=("_p", "_r"))
    out = pd.concat([pd.DataFrame({"ref": j[f"f{a}_r"], "pred": j[f"f{a}_p"], "component": a})
                     for a in "xyz"], ignore_index=True)
    if len(out) > MAX_POINTS:
        out = out.sample(MAX_POINTS, random_state=seed)
    return out


def _figure(width: float = 4.2, height: float = 4.0):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt, *plt.subplots(figsize=(width, height), constrained_layout=True)


def _save(plt, fig, out: Path) -> Path:
    out = figure_path(out)
    return save_figure(fig, out)


def plot_parity(df: pd.DataFrame, out: Path, *, quantity: str, title: str = "") -> Path:
    """Predicted against reference, with the diagonal and RMSE / MAE in the corner."""
    plt, fig, ax = _figure()
    for comp, g in df.groupby("component", sort=False):
        ax.scatter(g["ref"], g["pred"], s=4, alpha=0.5, label=str(comp), rasterized=len(g) > 5000)
    lo, hi = float(np.nanmin(df[["ref", "pred"]].to_numpy())), float(np.nanmax(df[["ref", "pred"]].to_numpy()))
    ax.plot([lo, hi], [lo, hi], color="k", lw=0.8)
    d = (df["pred"] - df["ref"]).to_numpy()
    unit = PARITY_UNITS[quantity]
    ax.text(0.04, 0.96, f"RMSE {np.sqrt(np.mean(d**2)):.4g} {unit}\nMAE {np.mean(np.abs(d)):.4g} {unit}",
            transform=ax.transAxes, va="top", fontsize=8)
    ax.set_xlabel(f"reference {quantity} ({unit})")
    ax.set_ylabel(f"predicted {quantity} ({unit})")
    if df["component"].nunique() > 1:
        ax.legend(fontsize=7, markerscale=3, loc="lower right")
    ax.set_title(title, fontsize=9)
    return _save(plt, fig, out)


def periodic_position(z: int) -> tuple[int, int]:
    """(row, column) of element ``z`` in the usual 18-column layout; lanthanides and actinides
    in rows 8 and 9 (0-based rows 0..6 for periods 1..7)."""
    if z == 1:
        return 0, 0
    if z == 2:
        return 0, 17
    for period, (start, end) in enumerate([(3, 10), (11, 18)], start=1):
        if start <= z <= end:
            k = z - start
            return period, k if k < 2 else k + 10
    for period, start in ((3, 19), (4, 37)):
        if start <= z < start + 18:
            return period, z - start
    for period, start, f_start in ((5, 55, 57), (6, 87, 89)):
        if z in (start, start + 1):
            return period, z - start
        if f_start <= z < f_start + 15:
            return period + 3, 2 + (z - f_start)
        if f_start + 15 <= z <= start + 31:
            return period, z - (f_start + 15) + 3
    raise ValueError(f"no periodic-table position for Z={z}")


def plot_element_heatmap(table: pd.DataFrame, out: Path, *, metric: str, unit: str = "",
                         title: str = "") -> Path:
    """``table``: columns element and ``metric``; elements absent are drawn empty."""
    from ase.data import chemical_symbols
    from matplotlib import colors

    plt, fig, ax = _figure(9.0, 5.0)
    values = dict(zip(table["element"], table[metric], strict=True))
    finite = [v for v in values.values() if v is not None and np.isfinite(v)]
    if not finite:
        raise NoMatch(f"no {metric} values to draw")
    norm = colors.Normalize(vmin=min(finite), vmax=max(finite))
    cmap = plt.get_cmap("viridis")
    for z in range(1, 119):
        row, col = periodic_position(z)
        sym = chemical_symbols[z]
        v = values.get(sym)
        has = v is not None and np.isfinite(v)
        ax.add_patch(plt.Rectangle((col, -row), 0.95, 0.95, facecolor=cmap(norm(v)) if has else "white",
                                   edgecolor="0.6", lw=0.5))
        colour = "white" if has and norm(v) < 0.6 else "black"
        ax.text(col + 0.47, -row + 0.6, sym, ha="center", va="center", fontsize=7, color=colour)
        if has:
            ax.text(col + 0.47, -row + 0.25, f"{v:.3g}", ha="center", va="center", fontsize=5,
                    color=colour)
    ax.set_xlim(-0.2, 18.2)
    ax.set_ylim(-9.2, 1.2)
    ax.set_aspect("equal")
    ax.axis("off")
    sm = plt.cm.ScalarMappable(norm=norm, cmap=cmap)
    fig.colorbar(sm, ax=ax, shrink=0.6, label=f"{metric} ({unit})" if unit else metric)
    ax.set_title(title, fontsize=10)
    return _save(plt, fig, out)


def plot_components(table: pd.DataFrame, out: Path, *, metric: str, unit: str = "",
                    title: str = "") -> Path:
    """``table``: columns model, n_elements and ``metric``: one line per model."""
    plt, fig, ax = _figure(5.0, 3.6)
    for model, g in table.dropna(subset=[metric]).groupby("model", sort=True):
        g = g.sort_values("n_elements")
        ax.plot(g["n_elements"], g[metric], marker="o", label=str(model))
    ax.set_xlabel("number of components")
    ax.set_ylabel(f"{metric} ({unit})" if unit else metric)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.legend(fontsize=7)
    ax.set_title(title, fontsize=9)
    return _save(plt, fig, out)

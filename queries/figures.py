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
# axes in stored units (the values themselves); errors in the insets in the tables' units
PARITY_UNITS = {"energy": "eV/atom", "forces": "eV/Å", "stress": "GPa"}
_REGISTRY_QUANTITY = {"energy": "energy", "forces": "force", "stress": "stress"}
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


def parity_data(wh: Warehouse, *, model: str, dataset: str, quantity: str, seed: int = 0,
                energy_offset: str = "none") -> pd.DataFrame:
    """Columns ``ref``, ``pred`` (units :data:`PARITY_UNITS`) and ``component``.

    ``energy_offset="per-element"`` shifts the predicted energies per atom by the model's fitted
    per-element offsets (the leaderboard's fit, :func:`queries.selection.shift_energies`);
    ``attrs`` then holds ``shifts`` (element -> eV/atom), and always ``n_ok``/``n_expected``.
    """
    from queries.selection import check_offset

    check_offset(energy_offset)
    out = _parity_data(wh, model=model, dataset=dataset, quantity=quantity, seed=seed,
                       energy_offset=energy_offset)
    if out.empty:
        raise NoMatch(f"no {quantity} with both a reference label and a prediction for model"
                      f" {model!r} on dataset {dataset!r}")
    return out


def _coverage(wh: Warehouse, model: str, dataset: str) -> tuple[int, int]:
    from queries.breakdowns import structure_errors
    from queries.selection import labelled_members

    sel = resolve_selection(wh, datasets=[dataset], models=[model])
    per = structure_errors(wh, sel)
    return int((per["status"] == "ok").sum()), len(labelled_members(wh, sel))


def _shifted_energies(wh: Warehouse, model: str, dataset: str, df: pd.DataFrame) -> tuple[pd.Series, dict]:
    """Per-atom predicted energies minus the fitted per-element shift, and the shifts."""
    from queries.breakdowns import structure_errors
    from queries.selection import shift_energies

    sel = resolve_selection(wh, datasets=[dataset], models=[model])
    per = structure_errors(wh, sel)
    per = per[per["status"] == "ok"]
    shifted, offsets = shift_energies(wh, sel, per)
    shift = (per.set_index("structure_id")["e"] - shifted.set_index("structure_id")["e"])
    pred = df["e_pred"] / df["n_atoms"] - df["structure_id"].map(shift).fillna(0.0).to_numpy()
    return pred, dict(zip(offsets["element"], offsets["shift_ev_per_atom"], strict=True))


def _parity_data(wh: Warehouse, *, model: str, dataset: str, quantity: str, seed: int,
                 energy_offset: str) -> pd.DataFrame:
    if quantity not in QUANTITIES:
        raise NoMatch(f"unknown quantity {quantity!r}; use one of {', '.join(QUANTITIES)}")
    df = _pairs(wh, model, dataset)
    n_ok, n_expected = _coverage(wh, model, dataset)
    attrs = {"n_ok": n_ok, "n_expected": n_expected, "shifts": None}
    if quantity == "energy":
        df = df.dropna(subset=["e_pred", "e_ref"])
        pred = df["e_pred"] / df["n_atoms"]
        if energy_offset == "per-element":
            pred, attrs["shifts"] = _shifted_energies(wh, model, dataset, df)
        out = pd.DataFrame({"ref": df["e_ref"] / df["n_atoms"], "pred": pred, "component": "E"})
        out.attrs.update(attrs)
        return out
    if quantity == "stress":
        out = [pd.DataFrame({"ref": df[f"r_{c}"], "pred": df[f"p_{c}"], "component": c}) for c in STRESS]
        out = pd.concat(out, ignore_index=True).dropna()
        out.attrs.update(attrs)
        return out
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
    out.attrs.update(attrs, n_points=len(j) * 3)
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
    """Write :func:`parity_figure` to ``out`` (PNG, SVG or PDF by the suffix)."""
    out = figure_path(out)
    return save_figure(parity_figure(df, quantity=quantity, title=title), out)


def parity_figure(df: pd.DataFrame, *, quantity: str, title: str = ""):
    """Predicted against reference with the diagonal; RMSE and MAE in the corner in the tables'
    units (meV/atom, meV/Å, GPa), with the coverage and any per-element shift stated."""
    from queries.metrics import QUANTITY_SCALE, QUANTITY_UNITS

    plt, fig, ax = _figure()
    many = df["component"].nunique() > 1
    for comp, g in df.groupby("component", sort=False):
        ax.scatter(g["ref"], g["pred"], s=4 if len(g) > 2000 else 9, alpha=0.5 if len(g) > 2000 else 0.8,
                   lw=0, label=str(comp), rasterized=len(g) > 5000)
    both = df[["ref", "pred"]].to_numpy()
    lo, hi = float(np.nanmin(both)), float(np.nanmax(both))
    pad = 0.04 * (hi - lo or 1.0)
    ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="k", lw=0.8, zorder=0)
    ax.set_xlim(lo - pad, hi + pad)
    ax.set_ylim(lo - pad, hi + pad)
    ax.set_aspect("equal")
    q = _REGISTRY_QUANTITY[quantity]
    d = (df["pred"] - df["ref"]).to_numpy() * QUANTITY_SCALE[q]
    unit = QUANTITY_UNITS[q]
    lines = [f"RMSE {np.sqrt(np.mean(d**2)):.3g} {unit}", f"MAE {np.mean(np.abs(d)):.3g} {unit}"]
    if df.attrs.get("n_expected"):
        lines.append(f"{df.attrs['n_ok']} of {df.attrs['n_expected']} structures")
    if df.attrs.get("shifts"):
        lines.append("per-element shift removed:")
        lines += [f"  {el} {v:+.3f} eV/atom" for el, v in list(df.attrs["shifts"].items())[:6]]
        if len(df.attrs["shifts"]) > 6:
            lines.append(f"  ... {len(df.attrs['shifts']) - 6} more")
    ax.text(0.04, 0.96, "\n".join(lines), transform=ax.transAxes, va="top", fontsize=7,
            bbox=dict(boxstyle="round,pad=0.3", fc="white", ec="0.8", alpha=0.9))
    shifted = " (shifted)" if df.attrs.get("shifts") else ""
    ax.set_xlabel(f"reference {quantity} ({PARITY_UNITS[quantity]})")
    ax.set_ylabel(f"predicted {quantity}{shifted} ({PARITY_UNITS[quantity]})")
    if many:
        ax.legend(fontsize=7, markerscale=2, loc="lower right")
    ax.set_title(title, fontsize=9)
    return fig


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
                         title: str = "", label: str = "") -> Path:
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
            ax.text(col + 0.47, -row + 0.25, f"{v:.3g}", ha="center", va="center", fontsize=6,
                    color=colour)
    ax.set_xlim(-0.2, 18.2)
    ax.set_ylim(-9.2, 1.2)
    ax.set_aspect("equal")
    ax.axis("off")
    sm = plt.cm.ScalarMappable(norm=norm, cmap=cmap)
    name = label or metric
    fig.colorbar(sm, ax=ax, shrink=0.6, label=f"{name} ({unit})" if unit else name)
    ax.set_title(title, fontsize=10)
    return _save(plt, fig, out)


def plot_components(table: pd.DataFrame, out: Path, *, metric: str, unit: str = "",
                    title: str = "", label: str = "") -> Path:
    """``table``: columns model, n_elements and ``metric``: one line per model."""
    plt, fig, ax = _figure(5.0, 3.6)
    data = table.dropna(subset=[metric])
    if data.empty:
        raise NoMatch(f"no {metric} values to draw")
    for model, g in data.groupby("model", sort=True):
        g = g.sort_values("n_elements")
        ax.plot(g["n_elements"], g[metric], marker="o", label=str(model))
    v = data[metric].to_numpy(float)
    if (v > 0).all() and v.max() / v.min() > 30:  # log only where the range needs it
        ax.set_yscale("log")
    ax.set_xlabel("number of components")
    name = label or metric
    ax.set_ylabel(f"{name} ({unit})" if unit else name)
    ks = sorted(int(k) for k in data["n_elements"].unique())
    ax.set_xticks(ks)  # component counts are whole numbers: one tick each
    ax.set_xlim(ks[0] - 0.5, ks[-1] + 0.5)
    ax.legend(fontsize=7)
    ax.set_title(title, fontsize=9)
    return _save(plt, fig, out)

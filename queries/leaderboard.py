"""Error tables per model and dataset, aggregated in SQL from the stored per-structure error sums.

Definitions (DESIGN.md, Metrics), for the structures j of a dataset with N_j atoms:
energy MAE = mean_j |dE_j| and RMSE = sqrt(mean_j dE_j^2) with dE_j = (E_pred - E_ref) / N_j;
force MAE = sum |dF_ia| / (3 sum N_j) and RMSE = sqrt(sum dF_ia^2 / (3 sum N_j)) over the structures
with force labels (per Cartesian component, atom-weighted); stress per Voigt component likewise.
Reported in meV/atom, meV/Å and GPa. The reference of a dataset is its own level of theory.

Columns (:class:`Col`): model, dataset, n_structures (members with reference labels), n_atoms,
n_failed (predictions that failed), n_missing (no prediction), and the six metrics.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

import numpy as np
import pandas as pd
from sqlalchemy import Select, and_, case, func, select, true

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


COLUMNS = [c.value for c in Col]
UNITS = {
    Col.ENERGY_MAE: "meV/atom", Col.ENERGY_RMSE: "meV/atom",
    Col.FORCE_MAE: "meV/Å", Col.FORCE_RMSE: "meV/Å",
    Col.STRESS_MAE: "GPa", Col.STRESS_RMSE: "GPa",
}


def leaderboard_statement(
    *, datasets: Sequence[str] = (), models: Sequence[str] = ()
) -> Select:
    """SQL sums per (model, dataset); the caller divides and takes square roots."""
    dm, d, r, p, pe, s = (
        m.DatasetMember, m.Dataset, m.Reference, m.Prediction, m.PredictionError, m.Structure
    )
    mo = m.Model
    ok = and_(p.status == "ok")
    stmt = (
        select(
            mo.name.label("model"),
            d.name.label("dataset"),
            func.count(r.id).label("n_structures"),
            func.sum(s.n_atoms).label("n_atoms"),
            func.count(case((p.status == "failed", 1))).label("n_failed"),
            func.count(case((p.id.is_(None), 1))).label("n_missing"),
            func.count(case((ok, p.id))).label("n_predicted"),
            func.count(pe.energy_diff_per_atom).label("n_energy"),
            func.sum(func.abs(pe.energy_diff_per_atom)).label("e_abs"),
            func.sum(pe.energy_diff_per_atom * pe.energy_diff_per_atom).label("e_sq"),
            func.sum(pe.force_abs_sum).label("f_abs"),
            func.sum(pe.force_sq_sum).label("f_sq"),
            func.sum(pe.force_n).label("f_n"),
            func.sum(pe.stress_abs_sum).label("s_abs"),
            func.sum(pe.stress_sq_sum).label("s_sq"),
            func.sum(pe.stress_n).label("s_n"),
        )
        .select_from(dm)
        .join(d, d.id == dm.dataset_id)
        .join(s, s.id == dm.structure_id)
        .join(r, and_(r.structure_id == dm.structure_id, r.level_of_theory_id == d.level_of_theory_id))
        .join(mo, true())
        .outerjoin(p, and_(p.model_id == mo.id, p.structure_id == dm.structure_id))
        .outerjoin(pe, and_(pe.prediction_id == p.id, pe.reference_id == r.id))
        .group_by(mo.name, d.name)
        .order_by(d.name, mo.name)
    )
    if datasets:
        stmt = stmt.where(d.name.in_(list(datasets)))
    if models:
        stmt = stmt.where(mo.name.in_(list(models)))
    else:  # a model appears for the datasets it has predictions on
        stmt = stmt.having(func.count(p.id) > 0)
    return stmt


def _ratio(num: pd.Series, den: pd.Series) -> pd.Series:
    num = pd.to_numeric(num, errors="coerce").astype(float)
    den = pd.to_numeric(den, errors="coerce").astype(float)
    return num.where(den > 0) / den.where(den > 0)


def finish_metrics(sums: pd.DataFrame) -> pd.DataFrame:
    """Turn the SQL sums into MAE/RMSE in report units."""
    out = sums[["model", "dataset", "n_structures", "n_atoms", "n_failed", "n_missing"]].copy()
    out[Col.ENERGY_MAE] = 1000 * _ratio(sums["e_abs"], sums["n_energy"])
    out[Col.ENERGY_RMSE] = 1000 * np.sqrt(_ratio(sums["e_sq"], sums["n_energy"]))
    out[Col.FORCE_MAE] = 1000 * _ratio(sums["f_abs"], sums["f_n"])
    out[Col.FORCE_RMSE] = 1000 * np.sqrt(_ratio(sums["f_sq"], sums["f_n"]))
    out[Col.STRESS_MAE] = _ratio(sums["s_abs"], sums["s_n"])
    out[Col.STRESS_RMSE] = np.sqrt(_ratio(sums["s_sq"], sums["s_n"]))
    for c in ("n_structures", "n_atoms", "n_failed", "n_missing"):
        out[c] = out[c].fillna(0).astype(int)
    return out[COLUMNS]


def leaderboard(
    wh: Warehouse, *, datasets: Sequence[str] = (), models: Sequence[str] = ()
) -> pd.DataFrame:
    """Energy, force and stress MAE/RMSE per model and dataset (columns: :class:`Col`)."""
    _require_known(wh, datasets=datasets, models=models)
    with wh.engine.connect() as conn:
        sums = pd.read_sql(leaderboard_statement(datasets=datasets, models=models), conn)
    if sums.empty:
        raise NoMatch(
            "no predictions match these filters"
            + (f" (datasets: {', '.join(datasets)})" if datasets else "")
            + (f" (models: {', '.join(models)})" if models else "")
            + "; `warehouse info` lists what is stored"
        )
    return finish_metrics(sums)


def _require_known(wh: Warehouse, *, datasets: Sequence[str], models: Sequence[str]) -> None:
    with wh.session() as s:
        for kind, table, names in (("dataset", m.Dataset, datasets), ("model", m.Model, models)):
            if not names:
                continue
            have = set(s.scalars(select(table.name).where(table.name.in_(list(names)))))
            if missing := [n for n in names if n not in have]:
                raise NoMatch(f"no {kind} named {', '.join(map(repr, missing))}")

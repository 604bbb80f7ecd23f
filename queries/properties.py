"""Property parity: each model's value against a reference (a level of theory) for the same
material, property kind and key; and MAE/RMSE per property kind and model.

error = model - reference, in the property's stored unit (the two must agree; a pair in different
units is refused, never converted here). MAE = mean |error|, RMSE = sqrt(mean error^2) over the
matched (material, key) pairs of one property kind; ``n`` says how many.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sqlalchemy import select

from warehouse import models as m
from warehouse.core import Warehouse
from warehouse.errors import NoMatch

PARITY_COLUMNS = ["property", "material", "key", "model", "reference", "reference_value",
                  "model_value", "error", "unit"]
SUMMARY_COLUMNS = ["property", "model", "reference", "n", "mae", "rmse", "max_abs_error", "unit"]


@dataclass
class ParityReport:
    table: pd.DataFrame  # one row per (property, material, key, model)
    summary: pd.DataFrame  # one row per (property, model)
    notes: list[str] = field(default_factory=list)


def _properties(wh: Warehouse, properties: Sequence[str], materials: Sequence[str]) -> pd.DataFrame:
    p, mo, lot = m.Property, m.Model, m.LevelOfTheory
    stmt = (select(p.material, p.property, p.key, p.value, p.unit, mo.name.label("model"),
                   lot.name.label("level"))
            .outerjoin(mo, mo.id == p.model_id).outerjoin(lot, lot.id == p.level_of_theory_id))
    if properties:
        stmt = stmt.where(p.property.in_(list(properties)))
    if materials:
        stmt = stmt.where(p.material.in_(list(materials)))
    with wh.engine.connect() as conn:
        df = pd.read_sql(stmt, conn)
    df["key"] = df["key"].fillna("")
    return df


def parity(
    wh: Warehouse,
    *,
    properties: Sequence[str] = (),
    materials: Sequence[str] = (),
    models: Sequence[str] = (),
    reference: str | None = None,
) -> ParityReport:
    """Model vs reference values per property kind, with MAE/RMSE per kind and model."""
    df = _properties(wh, properties, materials)
    if df.empty:
        raise NoMatch("no stored properties match these filters; `warehouse ingest properties`")
    refs = df[df["level"].notna()]
    if reference is not None:
        refs = refs[refs["level"] == reference]
    if refs.empty:
        raise NoMatch("no reference values (a level of theory) for these properties"
                      + (f" at {reference!r}" if reference else ""))
    levels = refs.groupby("property")["level"].nunique()
    if (levels > 1).any():
        raise NoMatch(f"property {levels.idxmax()!r} has values at several levels of theory"
                      f" ({', '.join(sorted(refs['level'].unique()))}); pass --reference")
    mods = df[df["model"].notna()]
    if models:
        mods = mods[mods["model"].isin(list(models))]
    if mods.empty:
        raise NoMatch("no model values for these properties")
    on = ["material", "property", "key"]
    pairs = mods.merge(refs, on=on, suffixes=("_model", "_ref"))
    if pairs.empty:
        raise NoMatch("no model value has a reference value with the same material, property"
                      " and key")
    bad = pairs[pairs["unit_model"].fillna("") != pairs["unit_ref"].fillna("")]
    if not bad.empty:
        r = bad.iloc[0]
        raise NoMatch(f"{r['property']} of {r['material']}: model in {r['unit_model']!r},"
                      f" reference in {r['unit_ref']!r}; store both in one unit")
    table = pd.DataFrame({
        "property": pairs["property"], "material": pairs["material"], "key": pairs["key"],
        "model": pairs["model_model"], "reference": pairs["level_ref"],
        "reference_value": pairs["value_ref"], "model_value": pairs["value_model"],
        "error": pairs["value_model"] - pairs["value_ref"], "unit": pairs["unit_model"],
    }).sort_values(["property", "model", "material", "key"], kind="stable").reset_index(drop=True)
    n_unmatched = len(mods) - len(mods.merge(refs[on], on=on))
    notes = ["error = model - reference; MAE/RMSE over the matched (material, key) pairs"]
    if n_unmatched:
        notes.append(f"{n_unmatched} model values have no reference value and are left out")
    return ParityReport(table, summarise(table), notes)


def summarise(table: pd.DataFrame) -> pd.DataFrame:
    """MAE, RMSE and max |error| per property kind and model."""
    rows = []
    for (prop, model), g in table.groupby(["property", "model"], sort=True):
        e = g["error"].to_numpy(dtype=np.float64)
        rows.append({"property": prop, "model": model, "reference": g["reference"].iloc[0],
                     "n": len(e), "mae": float(np.mean(np.abs(e))),
                     "rmse": float(np.sqrt(np.mean(e * e))), "max_abs_error": float(np.max(np.abs(e))),
                     "unit": g["unit"].iloc[0]})
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)

"""Per-element energy offsets: the ``--energy-offset per-element`` policy of DESIGN.md.

When a model and the reference use different zeros of energy (another DFT code or setting, or an
empirical potential's cohesive-energy zero), energy errors are dominated by a constant per element.
For each (model, dataset) group we fit one shift per element, mu_el in eV per atom of that element,
by least squares on the per-atom energy errors:

    minimise  sum_j ( dE_j - sum_el x_j,el mu_el )^2,   dE_j = (E_pred - E_ref)/N_j,  x = count/N_j

and report the errors of dE_j - x_j . mu. The fit uses every structure of the group that has an
energy error (breakdown keys do not split it). When compositions do not determine the shifts
(e.g. every structure has the same stoichiometry) numpy's minimum-norm solution is used and the
rank is reported. Pure numpy apart from :func:`compositions`, which reads ``structure_elements``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sqlalchemy import select

from queries.breakdowns import Selection, members
from warehouse import models as m
from warehouse.core import Warehouse

OFFSET_COLUMNS = ["model", "dataset", "element", "shift_ev_per_atom", "n_structures", "rank"]


def compositions(wh: Warehouse, sel: Selection) -> pd.DataFrame:
    """structure_id, element, count for every member of the selection."""
    se = m.StructureElement
    mem = members(sel.with_by(()))
    stmt = (select(se.structure_id, se.element, se.count)
            .where(se.structure_id.in_(select(mem.c.structure_id))))
    with wh.engine.connect() as conn:
        return pd.read_sql(stmt, conn)


def calc_element_offsets(errors: pd.DataFrame, comp: pd.DataFrame) -> pd.DataFrame:
    """Fit the shifts of each (model, dataset) group (columns :data:`OFFSET_COLUMNS`).

    ``errors``: one row per structure with model, dataset, structure_id, e (eV/atom).
    ``comp``: structure_id, element, count.
    """
    if missing := {"model", "dataset", "structure_id", "e"} - set(errors.columns):
        raise ValueError(f"errors lack columns {sorted(missing)}")
    frac = comp.pivot_table(index="structure_id", columns="element", values="count", fill_value=0)
    frac = frac.div(frac.sum(axis=1), axis=0)
    out = []
    for (model, dataset), g in errors.dropna(subset=["e"]).groupby(["model", "dataset"], sort=True):
        g = g.drop_duplicates("structure_id")
        x = frac.loc[g["structure_id"].to_numpy()]
        x = x.loc[:, (x > 0).any(axis=0)]
        mu, _, rank, _ = np.linalg.lstsq(x.to_numpy(), g["e"].to_numpy(), rcond=None)
        out += [(model, dataset, el, float(v), len(g), int(rank)) for el, v in zip(x.columns, mu)]
    return pd.DataFrame(out, columns=OFFSET_COLUMNS)


def shifts_per_structure(offsets: pd.DataFrame, comp: pd.DataFrame) -> pd.DataFrame:
    """model, dataset, structure_id, shift (eV/atom) = sum_el x_el mu_el."""
    c = comp.assign(x=comp["count"] / comp.groupby("structure_id")["count"].transform("sum"))
    j = c.merge(offsets[["model", "dataset", "element", "shift_ev_per_atom"]], on="element")
    j["shift"] = j["x"] * j["shift_ev_per_atom"]
    return j.groupby(["model", "dataset", "structure_id"], as_index=False)["shift"].sum()


def apply_offsets(per: pd.DataFrame, offsets: pd.DataFrame, wh: Warehouse, sel: Selection, *,
                  comp: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per-structure rows with ``e`` replaced by e - x . mu (rows without a fit keep NaN shift).

    The fit itself is :func:`calc_element_offsets`, called by
    :func:`queries.selection.shift_energies` for every command that uses energy errors.
    """
    shifts = shifts_per_structure(offsets, compositions(wh, sel) if comp is None else comp)
    out = per.merge(shifts, on=["model", "dataset", "structure_id"], how="left")
    out["e"] = out["e"] - out["shift"].fillna(0.0)
    return out.drop(columns="shift")

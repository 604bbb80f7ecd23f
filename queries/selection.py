"""The one comparison rule (DESIGN.md, "Comparability and identity"), shared by the leaderboard,
Pareto fronts, uncertainty reports and figures.

Models are compared on the same structures:

* **complete coverage** (the default): a model enters a ranking, a front or an ensemble
  comparison only with an ok prediction for every member of the pool (``n_predicted ==
  n_structures``); the others are listed apart with their coverage, unranked (:func:`complete`,
  :func:`coverage_note`);
* **common structures** (``--common``): the selected models are compared on the intersection of
  their ok structures, and the report says how many and which were left out
  (:func:`restrict_to_common`).

The energy offset policy is one option with one fit (:func:`shift_energies`, fitted by
:func:`queries.offsets.calc_element_offsets`) wherever energy errors are used.
:class:`~queries.breakdowns.Selection` (which datasets, models, keys and pooling) is resolved
by :func:`queries.breakdowns.resolve_selection`; it is re-exported here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd
from sqlalchemy import and_, select

from queries.breakdowns import Selection, members, resolve_selection
from warehouse import models as m
from warehouse.core import Warehouse
from warehouse.errors import NoMatch

__all__ = ["OFFSET_POLICIES", "CommonSet", "Selection", "check_offset", "complete",
           "coverage_note", "labelled_members", "resolve_selection", "restrict_to_common",
           "shift_energies"]

OFFSET_POLICIES = ("none", "per-element")
SHOWN = 8  # left-out structures named in a note; the rest are in the report's table


def check_offset(policy: str) -> str:
    if policy not in OFFSET_POLICIES:
        raise NoMatch(f"unknown energy offset {policy!r}; use none or per-element")
    return policy


def complete(table: pd.DataFrame) -> pd.Series:
    """Rows whose model has an ok prediction for every expected structure of the group."""
    n = pd.to_numeric(table["n_structures"]).fillna(0)
    return (n > 0) & (pd.to_numeric(table["n_predicted"]).fillna(0) == n)


def coverage_text(row: pd.Series) -> str:
    parts = [f"{int(row['n_predicted'])} of {int(row['n_structures'])} ok"]
    for col, word in (("n_failed", "failed"), ("n_missing", "missing")):
        if int(row.get(col, 0) or 0):
            parts.append(f"{int(row[col])} {word}")
    return ", ".join(parts)


def coverage_note(table: pd.DataFrame, keys: Sequence[str] = (), *, what: str = "ranked") -> str | None:
    """One line naming the incomplete rows and their coverage, or None when all are complete."""
    bad = table[~complete(table)]
    if bad.empty:
        return None
    items = []
    for _, r in bad.iterrows():
        where = "/".join(str(r[k]) for k in ("dataset", *keys) if k in r and pd.notna(r[k]))
        items.append(f"{r['model']} on {where} ({coverage_text(r)})")
    return (f"not {what} (not every structure predicted ok; compare them on the structures all"
            f" models share with --common): " + "; ".join(items))


def labelled_members(wh: Warehouse, sel: Selection) -> pd.DataFrame:
    """dataset (or the pool label), structure_id, formula of every member with a reference
    at its dataset's level of theory: the structures a comparison expects."""
    mem = members(sel.with_by(()))
    r, s = m.Reference, m.Structure
    stmt = (select(mem.c.dataset, mem.c.structure_id, s.formula)
            .join(r, and_(r.structure_id == mem.c.structure_id,
                          r.level_of_theory_id == mem.c.level_id))
            .join(s, s.id == mem.c.structure_id).distinct())
    with wh.engine.connect() as conn:
        df = pd.read_sql(stmt, conn)
    return df.sort_values(["dataset", "structure_id"], ignore_index=True)


@dataclass
class CommonSet:
    """The structures every selected model predicted ok, per dataset (or pool)."""

    kept: pd.DataFrame  # dataset, structure_id
    left_out: pd.DataFrame  # dataset, structure_id, formula, missing_for (models lacking it)
    n_expected: dict[str, int]

    def note(self) -> str:
        parts = []
        for ds, n in self.n_expected.items():
            out = self.left_out[self.left_out["dataset"] == ds]
            kept = n - len(out)
            text = f"{ds}: compared on the {kept} of {n} structures every selected model predicted ok"
            if len(out):
                named = ", ".join(f"{f} (#{i})" for f, i in
                                  zip(out["formula"][:SHOWN], out["structure_id"][:SHOWN], strict=True))
                more = f" and {len(out) - SHOWN} more" if len(out) > SHOWN else ""
                text += f"; {len(out)} left out: {named}{more}"
            parts.append(text)
        return "--common: " + "; ".join(parts)


def restrict_to_common(per: pd.DataFrame, expected: pd.DataFrame,
                       models: Sequence[str]) -> tuple[pd.DataFrame, CommonSet]:
    """Keep the per-structure rows of the structures every model of ``models`` predicted ok.

    ``per``: rows with model, dataset, structure_id, status; ``expected``: from
    :func:`labelled_members`. The intersection is taken per dataset (or pool).
    """
    ok = per[per["status"] == "ok"][["model", "dataset", "structure_id"]].drop_duplicates()
    want = list(dict.fromkeys(models))
    counts = ok[ok["model"].isin(want)].groupby(["dataset", "structure_id"])["model"].nunique()
    kept = counts[counts == len(want)].reset_index()[["dataset", "structure_id"]]
    exp = expected.merge(kept.assign(_kept=True), on=["dataset", "structure_id"], how="left")
    out = exp[exp["_kept"].isna()].drop(columns="_kept")
    have = ok.groupby(["dataset", "structure_id"])["model"].agg(set)
    out = out.assign(missing_for=[
        ", ".join(mo for mo in want if mo not in have.get((d, s), set()))
        for d, s in zip(out["dataset"], out["structure_id"], strict=True)])
    n_expected = expected.groupby("dataset")["structure_id"].size().to_dict()
    rows = per.merge(kept, on=["dataset", "structure_id"])
    return rows, CommonSet(kept, out.reset_index(drop=True), n_expected)


def shift_energies(wh: Warehouse, sel: Selection, per: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The per-element energy offset policy: (rows with ``e`` shifted, the fitted offsets).

    One least-squares shift per element, fitted per model and dataset on the rows given (so on
    the common structures under ``--common``); see :mod:`queries.offsets`.
    """
    from queries.offsets import apply_offsets, calc_element_offsets, compositions

    comp = compositions(wh, sel)
    base = per.drop_duplicates(["model", "dataset", "structure_id"])
    offsets = calc_element_offsets(base, comp)
    return apply_offsets(per, offsets, wh, sel, comp=comp), offsets

"""Leaderboards and breakdowns from the kept sums (``warehouse.keptsums``: tables
``leaderboard_sums`` and ``leaderboard_expected``), so that at DESIGN.md scale (1.8M predictions)
they aggregate a few thousand rows instead of joining millions.

The writers keep those sums exact in the transaction of every ingest, so a query only reads:
no rebuild, no lock, no write, the same for a read-only role, and the first leaderboard after an
ingest is as fast as any other. :func:`rollup_frames` answers a
:class:`~queries.breakdowns.Selection` in the same shape as the live statements of
``queries.breakdowns``. A pool whose datasets share structures at the same level of theory needs
per-structure de-duplication and is answered live (:func:`pool_has_shared_structures`).
"""

from __future__ import annotations

import pandas as pd
from sqlalchemy import String, case, func, literal, select

from queries.breakdowns import Selection, members
from warehouse import models as m
from warehouse.core import Warehouse

S, E = m.LeaderboardSums, m.LeaderboardExpected
SUMS = ("n_predicted", "n_failed", "n_energy", "e_abs", "e_sq", "f_abs", "f_sq", "f_n", "s_abs",
        "s_sq", "s_n", "id_sum", "fn_abs", "fn_sq", "fn_n")


def pool_has_shared_structures(wh: Warehouse, sel: Selection) -> bool:
    if not sel.pool or len(sel.datasets) < 2:
        return False
    mem = members(Selection(datasets=sel.datasets))
    q = (select(mem.c.structure_id).group_by(mem.c.structure_id, mem.c.level_id)
         .having(func.count() > 1).limit(1))
    with wh.engine.connect() as conn:
        return conn.execute(q).first() is not None


def _key(table, name: str):
    """A group key as the live statements give it (a member without a subset tag: NULL)."""
    if name == "subset":
        return case((table.tagged, table.subset)).label("subset")
    return getattr(table, name).label(name)


def _group(table, by: tuple[str, ...]) -> list:
    out = []
    for k in by:
        out += [table.subset, table.tagged] if k == "subset" else [getattr(table, k)]
    return out


def rollup_frames(wh: Warehouse, sel: Selection) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(sums, expected) for ``sel`` from the kept sums, shaped like the live statements' results."""
    mo, d = m.Model, m.Dataset
    ds = literal(sel.pool_label, String).label("dataset") if sel.pool else d.name.label("dataset")
    per_element = "element" in sel.by

    def where(table) -> list:
        return [d.name.in_(list(sel.datasets)),
                table.element != "" if per_element else table.element == ""]

    def group(table) -> list:
        return ([] if sel.pool else [d.name]) + _group(table, sel.by)

    sums = (select(mo.name.label("model"), ds, *(_key(S, k) for k in sel.by),
                   *(func.sum(getattr(S, c)).label(c) for c in SUMS),
                   func.max(S.max_run).label("max_run"))
            .join(mo, mo.id == S.model_id).join(d, d.id == S.dataset_id)
            .where(*where(S)).group_by(mo.name, *group(S)))
    if sel.models:
        sums = sums.where(mo.name.in_(list(sel.models)))
    expected = (select(ds, *(_key(E, k) for k in sel.by),
                       func.sum(E.n_structures).label("n_structures"),
                       func.sum(E.n_atoms).label("n_atoms"))
                .join(d, d.id == E.dataset_id).where(*where(E)))
    if group(E):
        expected = expected.group_by(*group(E))
    with wh.engine.connect() as conn:
        s, e = pd.read_sql(sums, conn), pd.read_sql(expected, conn)
    s = s[s["n_predicted"].astype("int64") + s["n_failed"].astype("int64") > 0]
    return s.reset_index(drop=True), e

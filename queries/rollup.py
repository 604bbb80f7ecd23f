"""The leaderboard rollup: error sums pre-grouped by model, dataset, subset, number of elements
and element (table ``leaderboard_rollup``), so that leaderboards and breakdowns at DESIGN.md scale
(1.8M predictions) aggregate thousands of rows instead of joining millions.

It is a cache of exact SQL sums, never a source of truth:

* :func:`catalog_state` summarises what the sums depend on (the latest successful ingest run
  and the row counts of predictions, members, references, models and datasets). Every ingest
  adds an ingest run; deletions change a count.
* :func:`ensure_fresh` rebuilds the whole rollup in one transaction when its stored state is
  not the current one (the first leaderboard after an ingest pays for it), under a table lock on
  PostgreSQL so concurrent callers do not build it twice. When the rollup cannot be written (a
  read-only role, a SQLite file opened read-only, a writer holding the lock too long) the
  leaderboard falls back to the live query, which gives the same numbers.
* :func:`rollup_frames` answers a :class:`~queries.breakdowns.Selection` from the rollup in the
  same shape as the live statements. A pool whose datasets share structures at the same level of
  theory needs per-structure de-duplication and is always answered live.
"""

from __future__ import annotations

import pandas as pd
from sqlalchemy import Connection, String, and_, case, delete, func, insert, literal, null, select, text
from sqlalchemy.exc import DBAPIError

from queries.breakdowns import Selection, _prediction_rows, members
from warehouse import models as m
from warehouse.core import Warehouse

R = m.LeaderboardRollup
SUMS = ("n_predicted", "n_failed", "n_energy", "e_abs", "e_sq", "f_abs", "f_sq", "f_n", "s_abs",
        "s_sq", "s_n", "id_sum")


def catalog_state(conn: Connection) -> str:
    """A short text that changes whenever anything the leaderboard sums depend on changes."""
    q = select(
        select(func.max(m.IngestRun.id)).where(m.IngestRun.status == "ok").scalar_subquery(),
        *(select(func.count()).select_from(t).scalar_subquery()
          for t in (m.Prediction, m.DatasetMember, m.Reference, m.Model, m.Dataset)),
    )
    run, *counts = conn.execute(q).one()
    return f"run{run or 0}:" + ":".join(map(str, counts))


def _all_datasets(conn: Connection) -> tuple[str, ...]:
    return tuple(conn.scalars(select(m.Dataset.name).order_by(m.Dataset.name)))


def _build_statements(datasets: tuple[str, ...], state: str) -> list:
    """INSERT ... SELECT of the four row kinds: sums and expected, whole and per element."""
    out = []
    for by in (("subset", "n_elements"), ("subset", "n_elements", "element")):
        sel = Selection(datasets=datasets, by=by, ids=True)
        base, c = _prediction_rows(sel)
        group = [c["model"], c["dataset"], c["subset"], c["n_elements"]]
        element = c["element"] if "element" in by else null()
        z = lambda x: func.coalesce(x, 0)  # noqa: E731
        sums = base.with_only_columns(
            literal(state), *group, element, literal(0), literal(0),
            func.count(_case(c["status"], "ok")), func.count(_case(c["status"], "failed")),
            func.count(c["e"]), func.sum(func.abs(c["e"])), func.sum(c["e"] * c["e"]),
            func.sum(c["f_abs"]), func.sum(c["f_sq"]), z(func.sum(c["f_n"])),
            func.sum(c["s_abs"]), func.sum(c["s_sq"]), z(func.sum(c["s_n"])),
            z(func.sum(c["prediction_id"])), func.max(c["run_id"]),
            maintain_column_froms=True,
        ).group_by(*group, *([element] if "element" in by else []))
        out.append(insert(R).from_select(_columns(), sums))
        out.append(insert(R).from_select(_columns(), _expected(sel, state)))
    return out


def _case(col, value):
    return case((col == value, 1))


def _columns() -> list[str]:
    return [
        "state", "model_id", "dataset_id", "subset", "n_elements", "element", "n_structures",
        "n_atoms", "n_predicted", "n_failed", "n_energy", "e_abs", "e_sq", "f_abs", "f_sq", "f_n",
        "s_abs", "s_sq", "s_n", "id_sum", "max_run"]


def _expected(sel: Selection, state: str):
    r, s, se, d = m.Reference, m.Structure, m.StructureElement, m.Dataset
    mem = members(sel)
    stmt = (select(mem.c.structure_id).select_from(mem)
            .join(r, and_(r.structure_id == mem.c.structure_id, r.level_of_theory_id == mem.c.level_id))
            .join(s, s.id == mem.c.structure_id))
    element = null()
    atoms = s.n_atoms
    if "element" in sel.by:
        stmt = stmt.join(se, se.structure_id == mem.c.structure_id)
        element, atoms = se.element, se.count
    group = [mem.c.dataset, mem.c.subset, s.n_elements]
    return stmt.with_only_columns(
        literal(state), null(), *group, element, func.count(), func.sum(atoms),
        *(literal(0) for _ in range(3)), null(), null(), null(), null(), literal(0), null(), null(),
        literal(0), literal(0), null(),
        maintain_column_froms=True,
    ).group_by(*group, *([element] if "element" in sel.by else []))


def ensure_fresh(wh: Warehouse) -> bool:
    """True when the rollup matches the catalog (rebuilding it if needed and possible)."""
    with wh.engine.connect() as conn:
        state = catalog_state(conn)
        if conn.scalar(select(R.state).limit(1)) == state:
            return True
    try:
        with wh.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("LOCK TABLE leaderboard_rollup IN EXCLUSIVE MODE"))
            state = catalog_state(conn)
            if conn.scalar(select(R.state).limit(1)) == state:
                return True
            conn.execute(delete(R))
            for stmt in _build_statements(_all_datasets(conn), state):
                conn.execute(stmt)
        return True
    except DBAPIError:  # read-only role or file, or the lock not granted in time: go live
        return False


def pool_has_shared_structures(wh: Warehouse, sel: Selection) -> bool:
    if not sel.pool or len(sel.datasets) < 2:
        return False
    mem = members(Selection(datasets=sel.datasets))
    q = (select(mem.c.structure_id).group_by(mem.c.structure_id, mem.c.level_id)
         .having(func.count() > 1).limit(1))
    with wh.engine.connect() as conn:
        return conn.execute(q).first() is not None


def rollup_frames(wh: Warehouse, sel: Selection) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(sums, expected) for ``sel`` from the rollup, shaped like the live statements' results."""
    mo, d = m.Model, m.Dataset
    ds = literal(sel.pool_label, String).label("dataset") if sel.pool else d.name.label("dataset")
    keys = [getattr(R, k).label(k) for k in sel.by]
    where = [d.name.in_(list(sel.datasets)),
             R.element.isnot(None) if "element" in sel.by else R.element.is_(None)]
    group = [d.name if not sel.pool else None, *(getattr(R, k) for k in sel.by)]
    group = [g for g in group if g is not None]
    sums = (select(mo.name.label("model"), ds, *keys,
                   *(func.sum(getattr(R, c)).label(c) for c in SUMS),
                   func.max(R.max_run).label("max_run"))
            .join(mo, mo.id == R.model_id).join(d, d.id == R.dataset_id)
            .where(*where).group_by(mo.name, *group))
    if sel.models:
        sums = sums.where(mo.name.in_(list(sel.models)))
    expected = (select(ds, *keys, func.sum(R.n_structures).label("n_structures"),
                       func.sum(R.n_atoms).label("n_atoms"))
                .join(d, d.id == R.dataset_id).where(R.model_id.is_(None), *where)
                .group_by(*group) if group else
                select(ds, func.sum(R.n_structures).label("n_structures"),
                       func.sum(R.n_atoms).label("n_atoms"))
                .join(d, d.id == R.dataset_id).where(R.model_id.is_(None), *where))
    with wh.engine.connect() as conn:
        s, e = pd.read_sql(sums, conn), pd.read_sql(expected, conn)
    s = s[s["n_predicted"].astype("int64") + s["n_failed"].astype("int64") > 0]
    return s.reset_index(drop=True), e

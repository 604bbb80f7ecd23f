"""The leaderboard rollup: error sums pre-grouped by model, dataset, subset, number of elements
and element (table ``leaderboard_rollup``), so that leaderboards and breakdowns at DESIGN.md scale
(1.8M predictions) aggregate thousands of rows instead of joining millions.

It is a cache of exact SQL sums, never a source of truth:

* :func:`catalog_state` summarises what the sums depend on (the latest successful ingest run
  and the row counts of predictions, members, references, models and datasets). Every ingest
  adds an ingest run; deletions change a count.
* :func:`ensure_fresh` rebuilds the whole rollup when its stored state is not the current one
  (the first leaderboard after an ingest pays for it): rows computed from one read snapshot,
  written in a short transaction (under a table lock on PostgreSQL) only if the state is still
  the same. When the rollup cannot be written (a
  read-only role, a SQLite file opened read-only, a writer holding the lock too long) the
  leaderboard falls back to the live query, which gives the same numbers.
* :func:`rollup_frames` answers a :class:`~queries.breakdowns.Selection` from the rollup in the
  same shape as the live statements. A pool whose datasets share structures at the same level of
  theory needs per-structure de-duplication and is always answered live.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sqlalchemy import Connection, String, delete, func, insert, literal, select, text, update
from sqlalchemy.exc import DBAPIError

from queries.breakdowns import Selection, members
from warehouse import models as m
from warehouse.core import Warehouse

R = m.LeaderboardRollup
SUMS = ("n_predicted", "n_failed", "n_energy", "e_abs", "e_sq", "f_abs", "f_sq", "f_n", "s_abs",
        "s_sq", "s_n", "id_sum")


STATE_FIELDS = ("run", "predictions", "members", "references", "models", "datasets")


def state_counts(conn: Connection) -> tuple[int, ...]:
    """(latest ok ingest run, then row counts of predictions, members, references, models,
    datasets): what the leaderboard sums depend on."""
    q = select(
        select(func.max(m.IngestRun.id)).where(m.IngestRun.status == "ok").scalar_subquery(),
        *(select(func.count()).select_from(t).scalar_subquery()
          for t in (m.Prediction, m.DatasetMember, m.Reference, m.Model, m.Dataset)),
    )
    return tuple(int(v or 0) for v in conn.execute(q).one())


def catalog_state(conn: Connection) -> str:
    """A short text that changes whenever anything the leaderboard sums depend on changes."""
    run, *counts = state_counts(conn)
    return f"run{run}:" + ":".join(map(str, counts))


def _parse_state(text_: str | None) -> tuple[int, ...] | None:
    try:
        run, *counts = text_.split(":")
        return (int(run.removeprefix("run")), *map(int, counts))
    except (AttributeError, ValueError):
        return None


def changed_models(conn: Connection, built: str | None) -> list[int] | None:
    """The models whose rows alone need rebuilding, or None when everything does.

    Only predictions added since the build (the usual "evaluate one more model" ingest) allow
    a partial rebuild: members, references and datasets unchanged, and the prediction count
    grown by exactly the predictions of later ingest runs (so none was deleted).
    """
    old, now = _parse_state(built), state_counts(conn)
    if old is None or len(old) != len(now) or old[2:4] != now[2:4] or old[5] != now[5]:
        return None
    if now[4] < old[4]:  # a model was deleted
        return None
    q = select(func.count(), func.count(func.distinct(m.Prediction.model_id))).where(
        m.Prediction.ingest_run_id > old[0])
    n_new, _ = conn.execute(q).one()
    if old[1] + n_new != now[1]:
        return None
    return list(conn.scalars(select(m.Prediction.model_id).where(
        m.Prediction.ingest_run_id > old[0]).distinct()))


def _columns() -> list[str]:
    return [
        "state", "model_id", "dataset_id", "subset", "n_elements", "element", "n_structures",
        "n_atoms", "n_predicted", "n_failed", "n_energy", "e_abs", "e_sq", "f_abs", "f_sq", "f_n",
        "s_abs", "s_sq", "s_n", "id_sum", "max_run"]


def _frame(conn: Connection, sql: str, columns: list[str]) -> pd.DataFrame:
    """Rows through the DBAPI cursor: millions of rows without SQLAlchemy's per-row processing."""
    cur = conn.connection.driver_connection.cursor()
    try:
        cur.execute(sql)
        return pd.DataFrame(cur.fetchall(), columns=columns)
    finally:
        cur.close()


def _aggregate(df: pd.DataFrame, keys: list[str], *, counts: bool, forces: bool, energy: bool) -> pd.DataFrame:
    """Sums of one row kind; SQL semantics: a sum over no non-NULL value is NULL (NaN here)."""
    g = df.groupby(keys, dropna=False, sort=False)
    out = pd.DataFrame(index=g.size().index)
    zero = pd.Series(0, index=out.index)
    out["n_predicted"] = g["ok"].sum() if counts else zero
    out["n_failed"] = g["failed"].sum() if counts else zero
    out["id_sum"] = g["prediction_id"].sum() if counts else zero
    out["max_run"] = g["ingest_run_id"].max() if counts else None
    for col in ("e_abs", "e_sq", "s_abs", "s_sq"):
        out[col] = g[col].sum(min_count=1) if energy else np.nan
    out["n_energy"] = g["e"].count() if energy else zero
    out["s_n"] = g["s_n"].sum() if energy else zero
    for col in ("f_abs", "f_sq"):
        out[col] = g[col].sum(min_count=1) if forces else np.nan
    out["f_n"] = g["f_n"].sum() if forces else zero
    return out.reset_index()


def rollup_rows(conn: Connection, models: list[int] | None = None) -> pd.DataFrame:
    """Every rollup row (or, with ``models``, those models' rows only), computed with hash joins
    in pandas from plain table scans.

    A join of millions of prediction rows costs SQLite one B-tree lookup per row and table
    (minutes at DESIGN.md scale); scanning each table once and joining in memory takes seconds.
    Whole-structure rows carry everything; per-element rows come in two additive kinds, counts
    with energy and stress (structures containing the element) and forces (that species' atoms).
    """
    d = _frame(conn, "SELECT id, level_of_theory_id FROM datasets", ["dataset_id", "level"])
    dm = _frame(conn, "SELECT dataset_id, structure_id, subset FROM dataset_members",
                ["dataset_id", "structure_id", "subset"])
    r = _frame(conn, 'SELECT id, structure_id, level_of_theory_id FROM "references"',
               ["reference_id", "structure_id", "level"])
    st = _frame(conn, "SELECT id, n_atoms, n_elements FROM structures",
                ["structure_id", "n_atoms", "n_elements"])
    se = _frame(conn, "SELECT structure_id, element, count FROM structure_elements",
                ["structure_id", "element", "count"])
    mem = dm.merge(d, on="dataset_id").merge(r, on=["structure_id", "level"]).merge(st, on="structure_id")
    whole_keys = ["dataset_id", "subset", "n_elements"]
    expected = [
        mem.groupby(whole_keys, dropna=False).agg(n_structures=("structure_id", "size"),
                                                  n_atoms=("n_atoms", "sum")).reset_index(),
        mem.merge(se, on="structure_id").groupby([*whole_keys, "element"], dropna=False)
        .agg(n_structures=("structure_id", "size"), n_atoms=("count", "sum")).reset_index(),
    ]
    only = p_only = ""
    if models is not None:  # ids come from the catalog, not from a user
        ids = ", ".join(str(int(i)) for i in models) or "NULL"
        p_only = f" WHERE model_id IN ({ids})"
        only = f" WHERE prediction_id IN (SELECT id FROM predictions{p_only})"
        expected = []
    p = _frame(conn, "SELECT id, model_id, structure_id, status, ingest_run_id FROM predictions"
               + p_only,
               ["prediction_id", "model_id", "structure_id", "status", "ingest_run_id"])
    pe = _frame(conn, "SELECT prediction_id, reference_id, energy_diff_per_atom, force_abs_sum,"
                " force_sq_sum, force_n, stress_abs_sum, stress_sq_sum, stress_n FROM prediction_errors"
                + only,
                ["prediction_id", "reference_id", "e", "f_abs", "f_sq", "f_n", "s_abs", "s_sq", "s_n"])
    pe = pe.astype({c: float for c in ("e", "f_abs", "f_sq", "s_abs", "s_sq")})
    pe["e_abs"], pe["e_sq"] = pe["e"].abs(), pe["e"] ** 2
    rows = p.merge(mem[["structure_id", "reference_id", *whole_keys]], on="structure_id")
    rows = rows.merge(pe, on=["prediction_id", "reference_id"], how="left")
    rows["ok"], rows["failed"] = rows["status"] == "ok", rows["status"] == "failed"
    keys = ["model_id", *whole_keys]
    parts = [_aggregate(rows, keys, counts=True, forces=True, energy=True)]
    by_el = rows.drop(columns=["f_abs", "f_sq", "f_n"]).merge(se[["structure_id", "element"]],
                                                              on="structure_id")
    parts.append(_aggregate(by_el, [*keys, "element"], counts=True, forces=False, energy=True))
    del by_el
    pee = _frame(conn, "SELECT prediction_id, reference_id, element, force_abs_sum, force_sq_sum,"
                 " force_n FROM prediction_element_errors" + only,
                 ["prediction_id", "reference_id", "element", "f_abs", "f_sq", "f_n"])
    pee = pee.merge(rows[["prediction_id", "reference_id", *keys]], on=["prediction_id", "reference_id"])
    parts.append(_aggregate(pee.astype({"f_abs": float, "f_sq": float}), [*keys, "element"],
                            counts=False, forces=True, energy=False))
    out = pd.concat([*parts, *expected], ignore_index=True)
    for c in ("n_structures", "n_atoms", "n_predicted", "n_failed", "n_energy", "f_n", "s_n", "id_sum"):
        out[c] = out[c].fillna(0).astype("int64") if c in out else 0
    return out.astype({"model_id": "Int64", "max_run": "Int64", "dataset_id": "int64",
                       "n_elements": "int64"})


def _records(df: pd.DataFrame, state: str) -> list[dict]:
    df = df.astype(object).where(df.notna(), None)
    cols = [c for c in _columns() if c != "state"]
    for c in cols:
        if c not in df.columns:
            df[c] = None
    return [{"state": state, **row} for row in df[cols].to_dict("records")]


def ensure_fresh(wh: Warehouse) -> bool:
    """True when the rollup matches the catalog (rebuilding it if needed and possible).

    The rows are computed from one read snapshot, outside any write transaction, so a rebuild
    (tens of seconds at DESIGN.md scale) never holds the SQLite write lock an ingest waits for;
    they are written in a short transaction only if the catalog has not changed meanwhile.
    """
    read = wh.engine.connect()
    if wh.dialect == "postgresql":  # state and rows from one snapshot
        read = read.execution_options(isolation_level="REPEATABLE READ")
    with read as conn:
        state = catalog_state(conn)
        built = conn.scalar(select(R.state).limit(1))
        if built == state:
            return True
        models = changed_models(conn, built)
        rows = rollup_rows(conn, models)
    records = _records(rows, state)
    try:
        with wh.engine.begin() as conn:
            if conn.dialect.name == "postgresql":  # one writer at a time
                conn.execute(text("LOCK TABLE leaderboard_rollup IN EXCLUSIVE MODE"))
            if catalog_state(conn) != state:
                return False  # an ingest landed while we computed: answer live this time
            now_built = conn.scalar(select(R.state).limit(1))
            if now_built == state:
                return True  # another caller wrote the same rows first
            if now_built != built:
                return False  # another caller rebuilt from another base: ours may not fit
            if models is None:
                conn.execute(delete(R))
            else:  # only these models' rows changed; the others are re-tagged as current
                conn.execute(delete(R).where(R.model_id.in_(models)))
                conn.execute(update(R).values(state=state))
            for i in range(0, len(records), 5000):
                conn.execute(insert(R), records[i:i + 5000])
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

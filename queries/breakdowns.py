"""Which rows a leaderboard reads, and the SQL that groups them: by dataset (or a pool of
datasets), by subset tag, by element, by number of components, or any combination.

A :class:`Selection` is resolved once from names (unknown names are refused, not ignored).
Statements here are built, not run, except by :func:`structure_errors` and
:func:`resolve_selection`; :mod:`queries.leaderboard` runs the aggregates.

Per-structure rows (:func:`structure_errors`, columns :data:`STRUCTURE_COLUMNS`): one per
prediction (ok or failed) of a selected model on a selected member that has reference labels;
with ``element`` in ``by``, one per prediction and element present, the force sums being those
of that species' atoms only. ``e`` is (E_pred - E_ref)/N in eV/atom; ``f_abs``/``f_sq`` sums of
|dF| and dF^2 over Cartesian components in eV/Å, ``f_n`` their count; ``s_*`` likewise for the
Voigt stress components in GPa. A failed prediction has status ``failed`` and NULL errors.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import pandas as pd
from sqlalchemy import (ColumnElement, Float, Integer, Select, String, and_, case, cast, func, literal,
                        null, select)

from warehouse import models as m
from warehouse.core import Warehouse
from warehouse.errors import EMPTY_WAREHOUSE, NoMatch

BY_KEYS = ("subset", "element", "n_elements")
STRUCTURE_COLUMNS = [
    "model", "dataset", "structure_id", "prediction_id", "n_atoms", "status",
    "e", "f_abs", "f_sq", "f_n", "fn_abs", "fn_sq", "fn_n", "s_abs", "s_sq", "s_n",
]


@dataclass(frozen=True)
class Selection:
    """Resolved names: the datasets read, the models (empty = any), keys and pooling."""

    datasets: tuple[str, ...]
    models: tuple[str, ...] = ()
    by: tuple[str, ...] = ()
    pool: bool = False
    notes: tuple[str, ...] = field(default=())
    ids: bool = False  # group by model and dataset ids instead of names (queries.rollup)

    @property
    def pool_label(self) -> str:
        return "pooled(" + "+".join(self.datasets) + ")"

    def with_by(self, by: Sequence[str]) -> Selection:
        return replace(self, by=tuple(by))

    def describe(self) -> str:
        text = f" (datasets: {', '.join(self.datasets)})"
        return text + (f" (models: {', '.join(self.models)})" if self.models else "")


def resolve_selection(
    wh: Warehouse,
    *,
    datasets: Sequence[str] = (),
    models: Sequence[str] = (),
    exclude: Sequence[str] = (),
    by: Sequence[str] = (),
    pool: bool = False,
) -> Selection:
    """Check names against the catalog and work out the datasets that are read."""
    by = tuple(dict.fromkeys(by))
    if bad := [k for k in by if k not in BY_KEYS]:
        raise NoMatch(f"unknown breakdown {', '.join(bad)}; use one of {', '.join(BY_KEYS)}")
    with wh.session() as s:
        levels = dict(s.execute(select(m.Dataset.name, m.Dataset.level_of_theory_id)).all())
        have_models = set(s.scalars(select(m.Model.name)))
    for kind, names, have in (("dataset", [*datasets, *exclude], levels), ("model", models, have_models)):
        if missing := [n for n in names if n not in have]:
            raise NoMatch(f"no {kind} named {', '.join(map(repr, missing))};"
                          " `warehouse info` and the leaderboard without filters list what is stored")
    if not levels:
        raise NoMatch(EMPTY_WAREHOUSE)
    chosen = [d for d in (datasets or sorted(levels)) if d not in set(exclude)]
    if not chosen:
        raise NoMatch("every dataset is excluded; drop an --exclude-dataset")
    notes = []
    if pool and len({levels[d] for d in chosen}) > 1:
        notes.append("pooled datasets use different levels of theory: each structure is compared"
                     " with its own dataset's reference")
    if exclude:
        notes.append("excluded datasets: " + ", ".join(exclude))
    return Selection(tuple(sorted(dict.fromkeys(chosen))), tuple(dict.fromkeys(models)), by, pool,
                     tuple(notes))


def members(sel: Selection):
    """Subquery: (dataset, structure_id, level_id[, subset]) of the selected datasets."""
    d, dm = m.Dataset, m.DatasetMember
    ds = literal(sel.pool_label, String).label("dataset") if sel.pool else (
        d.id if sel.ids else d.name).label("dataset")
    cols = [ds, dm.structure_id.label("structure_id"), d.level_of_theory_id.label("level_id")]
    if "subset" in sel.by:
        cols.append(dm.subset.label("subset"))
    stmt = select(*cols).join(d, d.id == dm.dataset_id).where(d.name.in_(list(sel.datasets)))
    if sel.pool:  # a structure in two pooled datasets (same level) counts once
        stmt = stmt.distinct()
    return stmt.subquery("mem")


def _keyed(sel: Selection, stmt: Select, mem) -> tuple[Select, dict[str, ColumnElement]]:
    """Join what the group keys need; return the key expressions by name."""
    s, se = m.Structure, m.StructureElement
    keys: dict[str, ColumnElement] = {"dataset": mem.c.dataset}
    stmt = stmt.join(s, s.id == mem.c.structure_id)
    for k in sel.by:
        if k == "subset":
            keys[k] = mem.c.subset
        elif k == "n_elements":
            keys[k] = s.n_elements
        elif k == "element":
            stmt = stmt.join(se, se.structure_id == mem.c.structure_id)
            keys[k] = se.element
    return stmt, keys


def _prediction_rows(sel: Selection) -> tuple[Select, dict[str, ColumnElement]]:
    """FROM clause and named column expressions of the per-structure(-element) rows."""
    r, p, pe, mo = m.Reference, m.Prediction, m.PredictionError, m.Model
    pee, se = m.PredictionElementError, m.StructureElement
    mem = members(sel)
    stmt = select(mem.c.structure_id).select_from(mem).join(
        r, and_(r.structure_id == mem.c.structure_id, r.level_of_theory_id == mem.c.level_id))
    stmt, keys = _keyed(sel, stmt, mem)
    stmt = (stmt.join(p, p.structure_id == mem.c.structure_id).join(mo, mo.id == p.model_id)
            .outerjoin(pe, and_(pe.prediction_id == p.id, pe.reference_id == r.id)))
    forces = pe
    if "element" in sel.by:
        stmt = stmt.outerjoin(pee, and_(pee.prediction_id == p.id, pee.reference_id == r.id,
                                        pee.element == se.element))
        forces = pee
    if sel.models:
        stmt = stmt.where(mo.name.in_(list(sel.models)))
    cols = {
        "model": mo.id if sel.ids else mo.name, **keys, "structure_id": mem.c.structure_id, "prediction_id": p.id,
        "run_id": p.ingest_run_id, "status": p.status, "e": pe.energy_diff_per_atom,
        "f_abs": forces.force_abs_sum, "f_sq": forces.force_sq_sum, "f_n": forces.force_n,
        **_norm_columns(sel),
        "s_abs": pe.stress_abs_sum, "s_sq": pe.stress_sq_sum, "s_n": pe.stress_n,
    }
    return stmt, cols


def _norm_columns(sel: Selection) -> dict[str, ColumnElement]:
    """The per-atom vector-norm force sums (not stored per element: NULL in element rows)."""
    pe = m.PredictionError
    if "element" in sel.by:
        none = cast(null(), Float)  # typed: PostgreSQL has no sum(unknown)
        return {"fn_abs": none, "fn_sq": none, "fn_n": cast(null(), Integer)}
    return {"fn_abs": pe.force_norm_sum, "fn_sq": pe.force_norm_sq_sum,
            "fn_n": case((pe.force_norm_sum.isnot(None), pe.n_atoms))}


def sums_statement(sel: Selection) -> Select:
    """Counts and error sums per (model, dataset, keys) over the predicted members."""
    base, c = _prediction_rows(sel)
    group = [c["model"], c["dataset"], *(c[k] for k in sel.by)]
    return base.with_only_columns(
        *(g.label(n) for g, n in zip(group, ["model", "dataset", *sel.by], strict=True)),
        func.count(case((c["status"] == "ok", 1))).label("n_predicted"),
        func.count(case((c["status"] == "failed", 1))).label("n_failed"),
        func.count(c["e"]).label("n_energy"),
        func.sum(func.abs(c["e"])).label("e_abs"),
        func.sum(c["e"] * c["e"]).label("e_sq"),
        func.sum(c["f_abs"]).label("f_abs"),
        func.sum(c["f_sq"]).label("f_sq"),
        func.sum(c["f_n"]).label("f_n"),
        func.sum(c["fn_abs"]).label("fn_abs"),
        func.sum(c["fn_sq"]).label("fn_sq"),
        func.sum(c["fn_n"]).label("fn_n"),
        func.sum(c["s_abs"]).label("s_abs"),
        func.sum(c["s_sq"]).label("s_sq"),
        func.sum(c["s_n"]).label("s_n"),
        # identify the prediction rows used, cheaply, for the provenance stamp
        func.sum(c["prediction_id"]).label("id_sum"),
        func.max(c["run_id"]).label("max_run"),
        maintain_column_froms=True,
    ).group_by(*group)


def expected_statement(sel: Selection) -> Select:
    """Members with reference labels (and their atoms) per (dataset, keys): what is expected."""
    r, s, se = m.Reference, m.Structure, m.StructureElement
    mem = members(sel)
    stmt = select(mem.c.structure_id).select_from(mem).join(
        r, and_(r.structure_id == mem.c.structure_id, r.level_of_theory_id == mem.c.level_id))
    stmt, keys = _keyed(sel, stmt, mem)
    atoms = se.count if "element" in sel.by else s.n_atoms
    return stmt.with_only_columns(
        *(keys[k].label(k) for k in ["dataset", *sel.by]),
        func.count().label("n_structures"),
        func.sum(atoms).label("n_atoms"),
        maintain_column_froms=True,
    ).group_by(*(keys[k] for k in ["dataset", *sel.by]))


def structure_errors(wh: Warehouse, sel: Selection) -> pd.DataFrame:
    """Per-structure (per-structure-element with ``element``) error rows; see the module doc."""
    base, c = _prediction_rows(sel)
    s = m.Structure
    cols = {k: v for k, v in c.items() if k != "run_id"}
    cols["n_atoms"] = s.n_atoms
    stmt = base.with_only_columns(*(v.label(k) for k, v in cols.items()), maintain_column_froms=True)
    with wh.engine.connect() as conn:
        df = pd.read_sql(stmt, conn)
    for col in ("e", "f_abs", "f_sq", "fn_abs", "fn_sq", "s_abs", "s_sq"):
        df[col] = pd.to_numeric(df[col]).astype(float)
    for col in ("f_n", "fn_n", "s_n"):
        df[col] = pd.to_numeric(df[col]).fillna(0).astype("int64")
    order = ["model", "dataset", *sel.by, *[c for c in STRUCTURE_COLUMNS if c not in ("model", "dataset")]]
    return df[order].sort_values(["model", "dataset", *sel.by, "structure_id"], kind="stable",
                                 ignore_index=True)


def prediction_errors(
    wh: Warehouse,
    *,
    datasets: Sequence[str] = (),
    models: Sequence[str] = (),
    exclude_datasets: Sequence[str] = (),
    by: Sequence[str] = (),
    pool: bool = False,
) -> pd.DataFrame:
    """Python API: the per-structure error rows (columns: model, dataset, the ``by`` keys, then
    :data:`STRUCTURE_COLUMNS`), for notebooks and custom aggregates."""
    sel = resolve_selection(wh, datasets=datasets, models=models, exclude=exclude_datasets,
                            by=by, pool=pool)
    return structure_errors(wh, sel)

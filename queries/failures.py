"""``warehouse failures``: the predictions that failed or are missing, with their reasons.

A failed prediction is stored with the calculator's message. A missing one is a member of a
dataset that the model has predictions on, without a prediction of its own (a model with no
prediction on a dataset is not listed as missing every structure of it, unless both the model
and the dataset are named).
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
from sqlalchemy import and_, select

from warehouse import models as m
from warehouse.core import Warehouse
from warehouse.errors import NotFound

COLUMNS = ["model", "dataset", "structure_id", "frame", "formula", "n_atoms", "status", "message"]
MISSING_MESSAGE = "no prediction stored"


def _check_names(wh: Warehouse, table: type, names: Sequence[str], what: str) -> None:
    with wh.session() as s:
        have = set(s.scalars(select(table.name).where(table.name.in_(list(names)))))
    if unknown := [n for n in names if n not in have]:
        raise NotFound(f"no {what} named {unknown[0]!r}; `warehouse info` lists them")


def failures(wh: Warehouse, *, models: Sequence[str] = (), datasets: Sequence[str] = (),
             missing: bool = True) -> pd.DataFrame:
    """Failed (and, with ``missing``, missing) predictions, one row per (model, dataset,
    structure); columns :data:`COLUMNS`, sorted by model, dataset and frame."""
    _check_names(wh, m.Model, models, "model")
    _check_names(wh, m.Dataset, datasets, "dataset")
    failed = (select(m.Model.name.label("model"), m.Dataset.name.label("dataset"),
                     m.Structure.id.label("structure_id"),
                     m.DatasetMember.source_index.label("frame"), m.Structure.formula,
                     m.Structure.n_atoms, m.Prediction.status, m.Prediction.message)
              .select_from(m.Prediction)
              .join(m.Model, m.Model.id == m.Prediction.model_id)
              .join(m.Structure, m.Structure.id == m.Prediction.structure_id)
              .join(m.DatasetMember, m.DatasetMember.structure_id == m.Structure.id)
              .join(m.Dataset, m.Dataset.id == m.DatasetMember.dataset_id)
              .where(m.Prediction.status != "ok"))
    if models:
        failed = failed.where(m.Model.name.in_(list(models)))
    if datasets:
        failed = failed.where(m.Dataset.name.in_(list(datasets)))
    with wh.engine.connect() as conn:
        frames = [pd.read_sql(failed, conn)]
        if missing:
            frames.append(_missing(conn, models, datasets))
    df = pd.concat([f for f in frames if not f.empty], ignore_index=True) if any(
        not f.empty for f in frames) else pd.DataFrame(columns=COLUMNS)
    return df[COLUMNS].sort_values(["model", "dataset", "frame", "structure_id"],
                                   ignore_index=True)


def _missing(conn, models: Sequence[str], datasets: Sequence[str]) -> pd.DataFrame:
    """Members without a prediction, for the (model, dataset) pairs the model has predictions
    on (or every named pair when both are named)."""
    if models and datasets:
        pairs = (select(m.Model.id.label("model_id"), m.Dataset.id.label("dataset_id"))
                 .join(m.Dataset, m.Dataset.name.in_(list(datasets)))  # every named pair
                 .where(m.Model.name.in_(list(models))))
    else:
        pairs = (select(m.Prediction.model_id, m.DatasetMember.dataset_id)
                 .join(m.DatasetMember, m.DatasetMember.structure_id == m.Prediction.structure_id)
                 .distinct())
    pairs = pairs.subquery()
    stmt = (select(m.Model.name.label("model"), m.Dataset.name.label("dataset"),
                   m.Structure.id.label("structure_id"), m.DatasetMember.source_index.label("frame"),
                   m.Structure.formula, m.Structure.n_atoms)
            .select_from(pairs)
            .join(m.Model, m.Model.id == pairs.c.model_id)
            .join(m.Dataset, m.Dataset.id == pairs.c.dataset_id)
            .join(m.DatasetMember, m.DatasetMember.dataset_id == m.Dataset.id)
            .join(m.Structure, m.Structure.id == m.DatasetMember.structure_id)
            .outerjoin(m.Prediction, and_(m.Prediction.model_id == m.Model.id,
                                          m.Prediction.structure_id == m.Structure.id))
            .where(m.Prediction.id.is_(None)))
    if models:
        stmt = stmt.where(m.Model.name.in_(list(models)))
    if datasets:
        stmt = stmt.where(m.Dataset.name.in_(list(datasets)))
    df = pd.read_sql(stmt, conn)
    df["status"] = "missing"
    df["message"] = MISSING_MESSAGE
    return df


def summary_lines(df: pd.DataFrame) -> list[str]:
    """One line per (model, dataset): counts of failed and missing, and the commonest reason."""
    out = []
    for (model, dataset), g in df.groupby(["model", "dataset"], sort=True):
        failed = g[g["status"] != "missing"]
        line = f"{model} on {dataset}: {len(failed)} failed, {len(g) - len(failed)} missing"
        if not failed.empty:
            reason = failed["message"].fillna("(no message)").value_counts()
            line += f"; commonest reason ({reason.iloc[0]}x): {reason.index[0]}"
        out.append(line)
    return out

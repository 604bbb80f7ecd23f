"""What is stored: datasets and models with their sizes (for `warehouse info`)."""

from __future__ import annotations

import pandas as pd
from sqlalchemy import func, select

from warehouse import models as m
from warehouse.core import Warehouse


def list_datasets(wh: Warehouse) -> pd.DataFrame:
    """Columns: dataset, level_of_theory, n_structures, n_atoms, n_references."""
    stmt = (
        select(
            m.Dataset.name.label("dataset"),
            m.LevelOfTheory.name.label("level_of_theory"),
            func.count(m.DatasetMember.structure_id).label("n_structures"),
            func.coalesce(func.sum(m.Structure.n_atoms), 0).label("n_atoms"),
            func.count(m.Reference.id).label("n_references"),
        )
        .join(m.LevelOfTheory, m.LevelOfTheory.id == m.Dataset.level_of_theory_id)
        .outerjoin(m.DatasetMember, m.DatasetMember.dataset_id == m.Dataset.id)
        .outerjoin(m.Structure, m.Structure.id == m.DatasetMember.structure_id)
        .outerjoin(m.Reference, (m.Reference.structure_id == m.DatasetMember.structure_id)
                   & (m.Reference.level_of_theory_id == m.Dataset.level_of_theory_id))
        .group_by(m.Dataset.name, m.LevelOfTheory.name)
        .order_by(m.Dataset.name)
    )
    with wh.engine.connect() as conn:
        return pd.read_sql(stmt, conn)


def list_models(wh: Warehouse) -> pd.DataFrame:
    """Columns: model, family, n_predictions, n_failed."""
    stmt = (
        select(
            m.Model.name.label("model"),
            m.Model.family.label("family"),
            func.count(m.Prediction.id).label("n_predictions"),
            func.count(m.Prediction.id).filter(m.Prediction.status == "failed").label("n_failed"),
        )
        .outerjoin(m.Prediction, m.Prediction.model_id == m.Model.id)
        .group_by(m.Model.name, m.Model.family)
        .order_by(m.Model.name)
    )
    with wh.engine.connect() as conn:
        return pd.read_sql(stmt, conn)

"""Models as named things with metadata (``warehouse model add|list``).

A model is registered on first use by any ingest of its predictions, with what that ingest knows;
``register_model`` records (or completes) its metadata beforehand or afterwards: family, version,
parameter count, training data, level of theory, licence, URL, DOI and the sha256 of its file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import select

from ingest.loader import IngestSummary, ingest_run
from warehouse import models as m
from warehouse.core import Warehouse
from warehouse.errors import IngestError, missing_file
from warehouse.hashing import sha256_file

MODEL_FIELDS = ("family", "version", "framework", "n_parameters", "training_data", "conservative",
                "licence", "url", "doi", "file_sha256")


def register_model(
    wh: Warehouse,
    name: str,
    *,
    level_of_theory: str | None = None,
    file: str | Path | None = None,
    argv: list[str] | None = None,
    **attrs: Any,
) -> IngestSummary:
    """Create model ``name`` or fill in / change the given fields of an existing one."""
    if unknown := set(attrs) - set(MODEL_FIELDS):
        raise IngestError(f"unknown model fields: {', '.join(sorted(unknown))}")
    if file is not None:
        if not Path(file).is_file():
            raise missing_file(str(file))
        attrs["file_sha256"] = sha256_file(file)
    given = {k: v for k, v in attrs.items() if v is not None}
    with ingest_run(wh, kind="model", source=str(file) if file else None,
                    source_sha256=attrs.get("file_sha256"), argv=argv) as ld:
        if level_of_theory:
            given["level_of_theory_id"] = ld.level_of_theory(level_of_theory)
        model = ld.s.scalar(select(m.Model).where(m.Model.name == name))
        if model is None:
            ld.model(name, **given)
        else:
            changed = [k for k, v in given.items() if getattr(model, k) != v]
            for k in changed:
                setattr(model, k, given[k])
            if changed:
                ld.summary.add("model fields", len(changed))
                ld.summary.notes.append(f"model {name!r}: set {', '.join(changed)}")
            else:
                ld.summary.seen("models")
    return ld.summary


def list_models(wh: Warehouse) -> pd.DataFrame:
    """Every model with its metadata and number of stored predictions."""
    from sqlalchemy import func

    with wh.session() as s:
        n_pred = dict(s.execute(
            select(m.Prediction.model_id, func.count()).group_by(m.Prediction.model_id)
        ).all())
        levels = dict(s.execute(select(m.LevelOfTheory.id, m.LevelOfTheory.name)).all())
        models = s.scalars(select(m.Model).order_by(m.Model.name)).all()
    rows = [{
        "name": x.name, "family": x.family, "version": x.version, "framework": x.framework,
        "n_parameters": x.n_parameters, "training_data": x.training_data,
        "level_of_theory": levels.get(x.level_of_theory_id), "licence": x.licence,
        "url": x.url, "doi": x.doi, "file_sha256": x.file_sha256,
        "predictions": n_pred.get(x.id, 0),
    } for x in models]
    return pd.DataFrame(rows, columns=["name", "family", "version", "framework", "n_parameters",
                                       "training_data", "level_of_theory", "licence", "url", "doi",
                                       "file_sha256", "predictions"])

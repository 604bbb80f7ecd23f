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

from ingest.binding import Binding, bind
from ingest.loader import IngestSummary, ingest_run
from warehouse import models as m
from warehouse.core import Warehouse
from warehouse.errors import IngestError
from warehouse.names import check_name

MODEL_FIELDS = ("family", "version", "framework", "n_parameters", "training_data", "conservative",
                "licence", "url", "doi", "file_sha256")


def register_model(
    wh: Warehouse,
    name: str,
    *,
    level_of_theory: str | None = None,
    file: str | Path | None = None,
    calculator: str | None = None,
    argv: list[str] | None = None,
    **attrs: Any,
) -> IngestSummary:
    """Create model ``name`` or fill in / change the given fields of an existing one.

    ``file`` (its parameter file) and ``calculator`` (a ``--calculator`` spec) bind the name
    (ingest.binding): accepted for an unbound model, even one holding results (this is how a
    user states where they came from); refused when the name is bound to something else.
    """
    if unknown := set(attrs) - set(MODEL_FIELDS):
        raise IngestError(f"unknown model fields: {', '.join(sorted(unknown))}")
    check_name(name, what="model")
    binding = _declared_binding(file, calculator)
    given = {k: v for k, v in attrs.items() if v is not None and k != "file_sha256"}
    with ingest_run(wh, kind="model", source=str(file) if file else calculator,
                    source_sha256=binding.sha256, argv=argv) as ld:
        if level_of_theory:
            given["level_of_theory_id"] = ld.level_of_theory(level_of_theory)
        model = ld.s.scalar(select(m.Model).where(m.Model.name == name))
        if not binding.empty:
            model = ld.s.get(m.Model, ld.model(name), with_for_update=True)
            notes = bind(ld.s, model, binding, what="this declaration", declared=True)
            ld.summary.notes.extend(notes)
            if notes:
                ld.summary.add("model fields", 1)
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


def _declared_binding(file: str | Path | None, calculator: str | None) -> Binding:
    """What ``model add --file F --calculator SPEC`` binds the name to: the spec's identity and
    its parameter files, or the given file."""
    if calculator is None:
        return Binding.of_files([file] if file is not None else [])
    from ingest.calculators import parse_calculator_spec

    spec = parse_calculator_spec(calculator)
    files = [file] if file is not None else spec.files
    return Binding.of_files(files, spec.identity)


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
        "url": x.url, "doi": x.doi, "file_sha256": x.file_sha256, "calculator": x.calculator,
        "parameters_sha256": x.parameters_sha256, "predictions": n_pred.get(x.id, 0),
    } for x in models]
    return pd.DataFrame(rows, columns=["name", "family", "version", "framework", "n_parameters",
                                       "training_data", "level_of_theory", "licence", "url", "doi",
                                       "file_sha256", "calculator", "parameters_sha256",
                                       "predictions"])


def show_model(wh: Warehouse, name: str) -> pd.DataFrame:
    """Model ``name`` as (field, value) rows: metadata, binding and what is stored of it."""
    from sqlalchemy import func

    from ingest.binding import Binding
    from warehouse.errors import NotFound

    with wh.session() as s:
        x = s.scalar(select(m.Model).where(m.Model.name == name))
        if x is None:
            raise NotFound(f"no model named {name!r}; `warehouse model list` lists them")
        level = s.get(m.LevelOfTheory, x.level_of_theory_id) if x.level_of_theory_id else None
        status = dict(s.execute(select(m.Prediction.status, func.count())
                                .where(m.Prediction.model_id == x.id)
                                .group_by(m.Prediction.status)).all())
        n_timings = s.scalar(select(func.count()).select_from(m.Timing).where(m.Timing.model_id == x.id))
        base = name.split("@")[0]  # NAME@VERSION: the versions of one model (ingest.binding)
        versions = [n for n in s.scalars(select(m.Model.name).where(
            (m.Model.name == base) | m.Model.name.startswith(base + "@", autoescape=True)).order_by(m.Model.name))
            if n != name]
    b = Binding.of_model(x)
    rows = [("name", x.name), *((f, getattr(x, f)) for f in MODEL_FIELDS if f != "file_sha256"),
            ("level_of_theory", level.name if level else None),
            ("bound to", b.describe()), ("calculator", x.calculator),
            ("parameters_sha256", b.sha256)]
    rows += [(f"parameter file {n or '?'}", sha) for n, sha in b.parameters]
    rows += [("predictions ok", status.get("ok", 0)), ("predictions failed", status.get("failed", 0)),
             ("timings", n_timings), ("other versions", ", ".join(versions) or None)]
    return pd.DataFrame([(k, "" if v is None else str(v)) for k, v in rows], columns=["field", "value"])

"""The UNEP-v1 fixture loader that other tests reuse (tests/unep_fixtures.py)."""

from __future__ import annotations

import numpy as np
from sqlalchemy import func, select

from unep_fixtures import fixture_rows, ingest_unep, load_fixture, reference_labels
from warehouse import models as m


def test_ingest_unep_loads_refs_and_predictions(wh, shared_data):
    rows = fixture_rows(["eos"])
    info = ingest_unep(wh, shared_data, models=("unep-v1", "eam-zhou"), sets=("eos",),
                       omit={"eam-zhou": rows[:2]}, fail={"eam-zhou": rows[2:3]})
    assert info.n_structures == len(rows) == 176
    with wh.session() as s:
        n = dict(s.execute(
            select(m.Model.name, func.count(m.Prediction.id))
            .join(m.Prediction, m.Prediction.model_id == m.Model.id).group_by(m.Model.name)
        ).all())
        assert n == {"unep-v1": 176, "eam-zhou": 174}
        assert s.scalar(select(func.count()).where(m.Prediction.status == "failed")) == 1
        assert s.scalar(select(func.count()).select_from(m.PredictionError)) == 176 + 173


def test_reference_labels_read_independently(shared_data):
    e, f, s = reference_labels(shared_data, "eos", 0)
    assert np.isclose(e, -7.85178492) and f.shape == (4, 3) and s.shape == (6,)
    assert load_fixture("unep-v1")["offsets"][-1] == len(load_fixture("unep-v1")["forces"])

"""Named ensembles of models (``warehouse ensemble add|remove|list``).

An ensemble is a set of stored models whose disagreement serves as an uncertainty
(``queries.uq``). Edits are one transaction each; naming a model that is not stored changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
from sqlalchemy import delete, select

from warehouse import models as m
from warehouse.core import Warehouse
from warehouse.errors import NoMatch, NotFound
from warehouse.names import check_name


def _model_ids(s, names: Sequence[str]) -> dict[str, int]:
    found = dict(s.execute(select(m.Model.name, m.Model.id).where(m.Model.name.in_(list(names)))).all())
    if missing := [n for n in names if n not in found]:
        raise NotFound(f"no model named {', '.join(map(repr, missing))}; ingest its predictions"
                       " first (`warehouse ingest ...`) or check the spelling (`warehouse info`)")
    return found


def add_to_ensemble(
    wh: Warehouse, name: str, members: Sequence[str], *, description: str | None = None
) -> tuple[int, int]:
    """Create ensemble ``name`` if needed and add ``members``; returns (added, already there)."""
    if not members:
        raise NoMatch("name at least one member: --member MODEL")
    check_name(name, what="ensemble")
    with wh.session() as s, s.begin():
        ids = _model_ids(s, members)
        ens = s.scalar(select(m.Ensemble).where(m.Ensemble.name == name))
        if ens is None:
            ens = m.Ensemble(name=name, description=description)
            s.add(ens)
            s.flush()
        elif description is not None:
            ens.description = description
        have = set(s.scalars(select(m.EnsembleMember.model_id).where(m.EnsembleMember.ensemble_id == ens.id)))
        new = sorted(set(ids.values()) - have)
        s.add_all(m.EnsembleMember(ensemble_id=ens.id, model_id=i) for i in new)
    return len(new), len(set(ids.values())) - len(new)


def remove_from_ensemble(wh: Warehouse, name: str, members: Sequence[str] = ()) -> int:
    """Remove ``members`` from ensemble ``name``, or the whole ensemble when none are named.

    Returns the number of memberships removed. Models themselves are never deleted.
    """
    with wh.session() as s, s.begin():
        ens = s.scalar(select(m.Ensemble).where(m.Ensemble.name == name))
        if ens is None:
            raise NotFound(f"no ensemble named {name!r}; `warehouse ensemble list` shows them")
        stmt = delete(m.EnsembleMember).where(m.EnsembleMember.ensemble_id == ens.id)
        if members:
            ids = _model_ids(s, members)
            stmt = stmt.where(m.EnsembleMember.model_id.in_(list(ids.values())))
        n = s.execute(stmt).rowcount
        if not members:
            s.delete(ens)
    return n


def list_ensembles(wh: Warehouse) -> pd.DataFrame:
    """One row per ensemble: name, n_members, members (comma separated), description."""
    em, mo, e = m.EnsembleMember, m.Model, m.Ensemble
    with wh.session() as s:
        rows = s.execute(
            select(e.name, e.description, mo.name)
            .outerjoin(em, em.ensemble_id == e.id).outerjoin(mo, mo.id == em.model_id)
            .order_by(e.name, mo.name)
        ).all()
    out: dict[str, dict] = {}
    for ens, desc, model in rows:
        d = out.setdefault(ens, {"ensemble": ens, "n_members": 0, "members": [], "description": desc})
        if model is not None:
            d["n_members"] += 1
            d["members"].append(model)
    for d in out.values():
        d["members"] = ",".join(d["members"])
    return pd.DataFrame(list(out.values()), columns=["ensemble", "n_members", "members", "description"])

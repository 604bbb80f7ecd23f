"""Named things, got or created race-free: levels of theory, datasets, models, ensembles.

Many ingests may name the same new dataset at once. Each name is looked up, and if absent
inserted with ``INSERT ... ON CONFLICT DO NOTHING`` (``warehouse.db.insert_if_absent``, the one
place that statement is written per engine) and read back: a row that a concurrent ingest made
meanwhile is "already present", never an error. On PostgreSQL the insert waits while the other
ingest's transaction holds that name uncommitted, and then finds it (READ COMMITTED: the read
back sees what committed while it waited); on SQLite an ingest holds the write lock for its whole
transaction, so no other writer can come between the look-up and the insert.

Side writers (md, timings, properties, grades) find names here too, and take a *content lock*
(:meth:`Names.lock`) around a check-then-insert that has no unique key to lean on (the same
timings file stored twice for a model), so two concurrent ingests of it cannot both find it new.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from warehouse import models as m
from warehouse.db import insert_if_absent
from warehouse.errors import IngestError, NotFound
from warehouse.locks import advisory_key

UNKNOWN_LEVEL = "unspecified"


class Names:
    """Get-or-create of named rows in one ingest's session; counts what it adds in ``added``
    (a callable ``added(what)``, the ingest summary's)."""

    def __init__(self, session: Session, run_id: int, added) -> None:
        self.s = session
        self.run_id = run_id
        self._added = added

    def _get_or_create(self, cls: type, name: str, values: dict[str, Any]) -> tuple[int, bool]:
        """(id, created) of ``cls``'s row named ``name``; ``values`` fill a new row."""
        table = cls.__table__
        find = select(table.c.id).where(table.c.name == name)
        found = self.s.scalar(find)
        if found is not None:
            return found, False
        values = {k: v for k, v in values.items() if v is not None}
        # RETURNING says whether this statement made the row (a rowcount is -1 on PostgreSQL,
        # where SQLAlchemy returns the new key itself)
        made = self.s.execute(insert_if_absent(self.s, table).values(name=name, **values)
                              .returning(table.c.id)).scalar()
        return (made, True) if made is not None else (self.s.scalar(find), False)

    def level_of_theory(self, name: str | None, **attrs: Any) -> int:
        lot_id, created = self._get_or_create(m.LevelOfTheory, name or UNKNOWN_LEVEL, attrs)
        if created:
            self._added("levels of theory")
        return lot_id

    def dataset(self, name: str, level_id: int, *, description: str | None = None) -> int:
        ds_id, created = self._get_or_create(m.Dataset, name, {
            "level_of_theory_id": level_id, "description": description, "created_run_id": self.run_id})
        if created:
            self._added("datasets")
            return ds_id
        have = self.s.scalar(select(m.Dataset.level_of_theory_id).where(m.Dataset.id == ds_id))
        if have != level_id:
            names = dict(self.s.execute(select(m.LevelOfTheory.id, m.LevelOfTheory.name).where(
                m.LevelOfTheory.id.in_([have, level_id]))).all())
            raise IngestError(
                f"dataset {name!r} holds labels at level of theory {names[have]!r}, not"
                f" {names[level_id]!r}; use another dataset name or the same --level-of-theory"
            )
        return ds_id

    def existing_dataset(self, name: str) -> m.Dataset:
        ds = self.s.scalar(select(m.Dataset).where(m.Dataset.name == name))
        if ds is None:
            raise NotFound(f"no dataset named {name!r}; `warehouse info` lists them")
        return ds

    def model(self, name: str, **attrs: Any) -> int:
        model_id, created = self._get_or_create(m.Model, name, {**attrs, "created_run_id": self.run_id})
        if created:
            self._added("models")
        return model_id

    def ensemble(self, name: str, *, description: str | None = None) -> int:
        ens_id, created = self._get_or_create(m.Ensemble, name, {"description": description})
        if created:
            self._added("ensembles")
        return ens_id

    # -- look-ups for side writers ---------------------------------------------------------------

    def model_id(self, name: str) -> int | None:
        return self.s.scalar(select(m.Model.id).where(m.Model.name == name))

    def model_name(self, model_id: int | None) -> str | None:
        return None if model_id is None else self.s.scalar(
            select(m.Model.name).where(m.Model.id == model_id))

    def level_id(self, name: str) -> int | None:
        return self.s.scalar(select(m.LevelOfTheory.id).where(m.LevelOfTheory.name == name))

    def structure_id(self, structure_hash: str) -> int | None:
        return self.s.scalar(select(m.Structure.id).where(m.Structure.hash == structure_hash))

    def lock(self, *parts: object) -> None:
        """Hold a lock on ``parts`` (e.g. ``"timings", sha256, model_id``) until this ingest
        commits or rolls back: a concurrent ingest taking the same lock waits, then sees what
        this one stored. On SQLite the ingest's write lock already serialises writers."""
        if self.s.get_bind().dialect.name == "postgresql":
            key = advisory_key(":".join(map(str, parts)))
            self.s.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})

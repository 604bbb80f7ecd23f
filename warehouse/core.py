"""The warehouse handle: one catalog engine plus one lake, opened together."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from warehouse import models as m
from warehouse.db import check_revision, current_revision, has_any_table, make_engine
from warehouse.lake import Lake
from warehouse.identity import check_lake_binding
from warehouse.locks import migration_lock
from warehouse.migrate import head_revision, upgrade
from warehouse.settings import Settings

COUNTED_TABLES = (
    m.IngestRun,
    m.LevelOfTheory,
    m.Dataset,
    m.DatasetMember,
    m.Structure,
    m.Reference,
    m.Model,
    m.Prediction,
    m.Ensemble,
    m.AtomGrades,
    m.TrainingRecord,
    m.Timing,
    m.MDRun,
    m.MDSeries,
    m.MDObservable,
    m.Property,
    m.LakeFile,
)


@dataclass
class Warehouse:
    """A catalog (SQLAlchemy engine) and its array lake.

    Sessions are created by callers and passed to data functions ("separate and external" to
    them, as the SQLAlchemy docs advise); :meth:`session` is a convenience for that.
    """

    settings: Settings
    engine: Engine
    lake: Lake

    def __post_init__(self) -> None:
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self._sessions() as session:
            yield session

    def revision(self) -> str | None:
        return current_revision(self.engine)

    def counts(self) -> dict[str, int]:
        with self.session() as s:
            return {
                t.__tablename__: s.scalar(select(func.count()).select_from(t)) or 0
                for t in COUNTED_TABLES
            }

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Warehouse:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_warehouse(
    url: str | None = None,
    lake: str | None = None,
    *,
    check_schema: bool = True,
) -> Warehouse:
    """Open the warehouse at ``url``/``lake`` (or the environment, or the embedded default).

    A brand-new, empty catalog is initialised to the current schema. A catalog at another
    revision is refused with a message that says to run ``warehouse db upgrade``.

    Example::

        from warehouse import open_warehouse
        from queries.leaderboard import leaderboard
        wh = open_warehouse()
        df = leaderboard(wh, datasets=["pbte"])
    """
    settings = Settings.resolve(url=url, lake=lake)
    engine = make_engine(settings.url)
    wh = Warehouse(settings=settings, engine=engine, lake=Lake(settings.lake))
    if check_schema:
        if current_revision(engine) != head_revision():
            _first_use(engine)
            check_revision(engine, head_revision())
        check_lake_binding(wh)
    return wh


def _first_use(engine: Engine) -> None:
    """Create the schema of an empty catalog. Under the migration lock, and looked at again once
    it is held: of several processes starting on one new catalog, one creates it and the others
    wait for it, then find it made (they never see a half-made schema as theirs to finish)."""
    with migration_lock(engine):
        if not has_any_table(engine):
            upgrade(engine)

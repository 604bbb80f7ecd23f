"""``warehouse db downgrade base``: drop the catalog, and the lake files only it pointed to.

Dropping every table leaves each lake file without a row, for good: no catalog will ever name
them again. Without confirmation nothing is done and what would go is listed; with it the schema
is dropped first (a failure there leaves both as they were), then the files the catalog named,
the leftovers of killed ingests (files whose run was this catalog's) and the lake's identity
marker are removed. A lake that another catalog wrote is not touched.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import inspect, select
from sqlalchemy.engine import Engine

from warehouse import models as m
from warehouse.errors import LakeError
from warehouse.lake import MARKER, Lake


@dataclass
class DowngradeResult:
    url: str
    lake: str
    confirmed: bool
    files: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    foreign_lake: bool = False

    def lines(self) -> list[str]:
        if self.foreign_lake:
            head = f"the lake at {self.lake} belongs to another catalog: its files are left alone"
        else:
            head = f"{len(self.files)} lake files under {self.lake} belong to this catalog"
        if not self.confirmed:
            return [head, f"this drops every table of {self.url} and leaves those files without a"
                    " row for good; run again with --yes to drop it and remove them"]
        out = [head, f"removed {len(self.removed)} lake files"]
        out += [f"NOT REMOVED  {p}" for p in self.failed]
        return out


def downgrade_to_base(engine: Engine, lake_root: str, *, confirmed: bool) -> DowngradeResult:
    from warehouse import migrate
    from warehouse.identity import catalog_uuid

    lake = Lake(lake_root)
    result = DowngradeResult(engine.url.render_as_string(hide_password=True), lake.root_uri,
                             confirmed)
    tables = set(inspect(engine).get_table_names())
    mine = catalog_uuid(engine) if "catalog_identity" in tables else None
    marker = lake.read_marker()
    result.foreign_lake = marker is not None and marker.get("catalog_uuid") != mine
    if not result.foreign_lake:
        # every file of a lake bound to this catalog is its own; of an unbound (older) lake,
        # only the files it names
        result.files = sorted(set(_named(engine, tables))
                              | (set(lake.walk()) if marker is not None else set()))
    if not confirmed:
        return result
    migrate.downgrade(engine, "base")
    if result.foreign_lake:
        return result
    for path in result.files:
        try:
            lake.delete(path)
            result.removed.append(path)
        except (OSError, LakeError):
            result.failed.append(path)
    if marker is not None:
        lake.delete(MARKER)
    return result


def downgrade_to(engine: Engine, lake_root: str, revision: str) -> bool:
    """Downgrade to ``revision`` (not base); below 0004 the catalog loses its identity, so the
    lake's marker naming it is removed (the lake is bound again at the next write). True if so."""
    from warehouse import migrate
    from warehouse.identity import catalog_uuid

    had = catalog_uuid(engine) if inspect(engine).has_table("catalog_identity") else None
    migrate.downgrade(engine, revision)
    if had is None or inspect(engine).has_table("catalog_identity"):
        return False
    lake = Lake(lake_root)
    marker = lake.read_marker()
    if marker is None or marker.get("catalog_uuid") != had:
        return False
    lake.delete(MARKER)
    return True


def _named(engine: Engine, tables: set[str]) -> list[str]:
    if "lake_files" not in tables:
        return []
    with engine.connect() as conn:
        return list(conn.scalars(select(m.LakeFile.path)))

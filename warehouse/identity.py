"""A lake belongs to one catalog.

The catalog keeps a uuid (``catalog_identity``, made at its first write); the lake keeps, at its
root, ``_warehouse.json`` naming that uuid (written at the lake's first write, by
:func:`bind_lake`). A catalog opened with a lake that names another catalog is refused: the
default lake (``./warehouse-data/lake``) does not depend on ``--url``, and without this, two
catalogs sharing it would each call the other's files orphans, and ``check --repair`` would delete
them.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.engine import Connection, Engine

from warehouse import models as m
from warehouse.db import insert_if_absent
from warehouse.errors import LakeError
from warehouse.lake import MARKER
from warehouse.provenance import now

if TYPE_CHECKING:
    from warehouse.core import Warehouse


def catalog_uuid(engine: Engine) -> str | None:
    """The catalog's uuid; None before its first write."""
    with engine.connect() as conn:
        return conn.scalar(select(m.CatalogIdentity.uuid).where(m.CatalogIdentity.id == 1))


def ensure_catalog_uuid(conn: Connection) -> str:
    """The catalog's uuid, made now if it has none (race-free: the row is id 1, inserted only
    if absent, then read back)."""
    table = m.CatalogIdentity.__table__
    have = conn.scalar(select(table.c.uuid).where(table.c.id == 1))
    if have is None:
        conn.execute(insert_if_absent(conn, table).values(id=1, uuid=str(uuid.uuid4()), created_at=now()))
        have = conn.scalar(select(table.c.uuid).where(table.c.id == 1))
    return have


def _describe(wh: Warehouse) -> str:
    return wh.engine.url.render_as_string(hide_password=True)


def check_lake_binding(wh: Warehouse) -> bool:
    """Refuse a lake that another catalog wrote (see the module notes).

    True when the lake is this catalog's or bound to none. False when the lake names a catalog
    while this one has no uuid yet: either this catalog's first ingest is binding it at this
    moment (the marker is written before that ingest's uuid row commits) or it is another
    catalog's lake that this one never wrote to. The first write (:func:`bind_lake`, under the
    write lock) tells the two apart; until then nothing may be deleted from the lake.
    """
    marker = wh.lake.read_marker()
    if marker is None:
        return True
    mine = catalog_uuid(wh.engine)
    if mine is None:
        return False
    if marker.get("catalog_uuid") != mine:
        _refuse(wh, marker)
    return True


def _refuse(wh: Warehouse, marker: dict) -> None:
    raise LakeError(
            f"the lake at {wh.lake.root_uri} belongs to another catalog"
            f" ({marker.get('catalog', 'unknown')}, uuid {marker.get('catalog_uuid')}), not to"
            f" {_describe(wh)}; give this catalog its own lake with --lake or WAREHOUSE_LAKE")


def bind_lake(wh: Warehouse, conn: Connection) -> None:
    """Before a first write into the lake: write its marker naming this catalog, if it has none."""
    mine = ensure_catalog_uuid(conn)
    marker = wh.lake.read_marker()
    if marker is None:
        wh.lake.write_marker({"catalog_uuid": mine, "catalog": _describe(wh),
                              "bound_at": now().isoformat(timespec="seconds")})
        marker = wh.lake.read_marker()  # two catalogs binding one new lake at once: one wins
    if marker is None or marker.get("catalog_uuid") != mine:
        _refuse(wh, marker or {})


def unbind_lake(wh: Warehouse, old_uuid: str | None) -> bool:
    """After the catalog lost its identity (``db downgrade`` below 0004): remove the lake's
    marker if it named this catalog, so that the lake can be bound again. True if removed."""
    marker = wh.lake.read_marker()
    if marker is None or old_uuid is None or marker.get("catalog_uuid") != old_uuid:
        return False
    wh.lake.delete(MARKER)
    return True

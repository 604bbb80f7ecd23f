"""Where the catalog and the lake live.

With nothing set, the warehouse is embedded: a SQLite file and a lake folder under
``./warehouse-data/``. ``WAREHOUSE_URL`` (any SQLAlchemy URL; PostgreSQL through psycopg 3) and
``WAREHOUSE_LAKE`` (a folder or a pyarrow filesystem URI) override either part.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_ROOT = Path("warehouse-data")
URL_ENV = "WAREHOUSE_URL"
LAKE_ENV = "WAREHOUSE_LAKE"


@dataclass(frozen=True, slots=True)
class Settings:
    """Resolved locations of the catalog (``url``) and the array lake (``lake``)."""

    url: str
    lake: str

    @classmethod
    def resolve(cls, *, url: str | None = None, lake: str | None = None) -> Settings:
        """Explicit arguments win, then the environment, then the embedded default."""
        url = url or os.environ.get(URL_ENV) or None
        lake = lake or os.environ.get(LAKE_ENV) or None
        if url is None:
            url = f"sqlite:///{DEFAULT_ROOT / 'catalog.sqlite'}"
        if lake is None:
            lake = str(DEFAULT_ROOT / "lake")
        return cls(url=normalise_url(url), lake=lake)


def normalise_url(url: str) -> str:
    """Route plain ``postgresql://`` URLs to psycopg 3, the driver we ship."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url

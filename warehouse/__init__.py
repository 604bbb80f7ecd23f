"""mlip-warehouse core: catalog models, engines, the Parquet lake, hashing, units and errors.

This package imports nothing from ``ingest``, ``queries`` or ``cli`` (dependencies run one way).
Its light modules (records, hashing, units, errors, geometry) import without SQLAlchemy, so a
reader process can start before the catalog machinery (~0.8 s of imports) is loaded:
``Warehouse`` and ``open_warehouse`` are imported from :mod:`warehouse.core` on first use, and
``__version__`` (read from the installed package's metadata: ~20-40 ms of importlib.metadata,
before the reader process can start) likewise.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from warehouse.errors import WarehouseError

if TYPE_CHECKING:
    from warehouse._version import __version__
    from warehouse.core import Warehouse, open_warehouse

__all__ = ["Warehouse", "WarehouseError", "__version__", "open_warehouse"]


def __getattr__(name: str):
    if name in ("Warehouse", "open_warehouse"):
        from warehouse import core

        return getattr(core, name)
    if name == "__version__":
        from warehouse._version import __version__

        return __version__
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

"""mlip-warehouse core: catalog models, engines, the Parquet lake, hashing, units and errors.

This package imports nothing from ``ingest``, ``queries`` or ``cli`` (dependencies run one way).
"""

from warehouse._version import __version__
from warehouse.core import Warehouse, open_warehouse
from warehouse.errors import WarehouseError

__all__ = ["Warehouse", "WarehouseError", "__version__", "open_warehouse"]

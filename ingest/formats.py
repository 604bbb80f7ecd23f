"""Which reader a structure file needs, from its name alone (no heavy imports: the CLI asks
before it loads the catalog machinery)."""

from __future__ import annotations

from pathlib import Path

from ingest.pickles import is_pickle
from ingest.vasp import is_vasp
from warehouse.errors import IngestError

# The readers of `warehouse ingest structures`, in the order the help lists them.
FORMATS = ("extxyz", "mlearn-json", "vasp", "ase-db", "pickle")


def detect_format(path: str | Path) -> str:
    """Name of the reader for ``path`` from its name (compression suffixes ignored)."""
    if is_vasp(path):
        return "vasp"
    if is_pickle(path):
        return "pickle"
    name = Path(path).name.lower()
    if name.endswith(".db"):
        return "ase-db"
    for suffix in (".gz", ".bz2", ".xz"):
        name = name.removesuffix(suffix)
    if name.endswith((".xyz", ".extxyz")):
        return "extxyz"
    if name.endswith(".json"):
        return "mlearn-json"
    raise IngestError(
        f"cannot tell the format from the file name; pass --format ({', '.join(FORMATS)})",
        path=str(path),
    )

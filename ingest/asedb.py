"""ASE database files (``ase.db``, SQLite ``.db``), the incumbent's format: migrate in one command.

Each row becomes a frame: ``row.toatoms()`` with its calculator results (energy, forces, stress
in ASE units) and its key-value pairs (``config_type``, ``weight``, ...) as info. Rows are read
in id order, streaming.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from ingest.atoms import frame_from_atoms, validate_frame
from ingest.textio import reader_guard
from warehouse.errors import IngestError, missing_file
from warehouse.records import Frame


@reader_guard
def parse_ase_db(path: str | Path, *, selection: str | None = None) -> Iterator[Frame]:
    """Yield a validated frame per row (``selection`` in ase.db's query language)."""
    import ase.db

    path = str(path)
    if not Path(path).is_file():
        raise missing_file(path)
    try:
        db = ase.db.connect(path, type="db", create_indices=False)
        rows = db.select(selection, sort="id") if selection else db.select(sort="id")
        index = 0
        for row in rows:
            atoms = row.toatoms(add_additional_information=True)
            atoms.info.update(atoms.info.pop("key_value_pairs", {}) or {})
            frame = frame_from_atoms(atoms, index)
            frame.info["ase_db_id"] = row.id
            yield validate_frame(frame, path)
            index += 1
    except IngestError:
        raise
    except Exception as exc:  # sqlite3.DatabaseError, KeyError from a foreign schema, ...
        raise IngestError(f"cannot read ASE database ({type(exc).__name__}: {exc})", path=path) from exc
    if index == 0:
        raise IngestError("the database has no rows" + (f" matching {selection!r}" if selection else ""),
                          path=path)

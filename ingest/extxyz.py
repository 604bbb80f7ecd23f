"""Extended XYZ, read through ASE, in its real variants (ASE's own, GPUMD's, gzip-compressed)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import ase.io

from ingest.atoms import frame_from_atoms, validate_frame
from warehouse.records import Frame
from warehouse.errors import IngestError


def parse_extxyz(path: str | Path) -> Iterator[Frame]:
    """Yield validated frames of an extended XYZ file, one at a time.

    Raises :class:`IngestError` naming the file and the frame for anything unreadable or
    inconsistent (a truncated frame, forces of the wrong length, NaN, a periodic frame with no
    cell).
    """
    path = str(path)
    if not Path(path).is_file():
        raise IngestError("no such file", path=path)
    if Path(path).stat().st_size == 0:
        raise IngestError("file is empty", path=path)
    index = 0
    reader = ase.io.iread(path, index=":", format="extxyz")
    while True:
        try:
            atoms = next(reader)
        except StopIteration:
            break
        except IngestError:
            raise
        except Exception as exc:  # ASE raises many types for malformed input
            raise IngestError(_describe(exc), path=path, where=f"frame {index}") from exc
        yield validate_frame(frame_from_atoms(atoms, index), path)
        index += 1
    if index == 0:
        raise IngestError("no frames found", path=path)


def _describe(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return f"cannot read extended XYZ ({type(exc).__name__}: {text[:300]})"

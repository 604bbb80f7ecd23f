"""A model's predictions written by any program as extended XYZ.

The structures are matched to stored ones by content hash (atoms in another order by the
order-free hash, their forces permuted back, or within a tolerance; see
``ingest.writers.matching``). The predicted
values are read from, in order of preference: named keys (``--energy-key`` etc.), the usual
prediction names (``energy_pred``/``forces_pred``/``stress_pred``/``virial_pred`` and their
``pred_*`` spellings), then the calculator's results (``energy``, ``forces``, ``stress``).
Units as for structures: energy eV (total), forces eV/Å, stress ASE's (eV/Å^3, positive =
tensile), virial the total virial in eV.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

from ingest.labels import PREDICTION_KEYS, LabelKeys
from ingest.extxyz import parse_extxyz
from warehouse.errors import IngestError
from warehouse.records import FrameBatch, PredictionFrame


def parse_predictions(path: str | Path, *, keys: LabelKeys = PREDICTION_KEYS) -> Iterator[PredictionFrame]:
    """Yield one prediction per frame; a frame with no predicted value at all is refused."""
    path = str(path)
    for frame in parse_extxyz(path, keys=keys):
        if frame.labels.is_empty():
            raise _no_prediction(path, keys, frame.index)
        yield PredictionFrame(frame=frame)


def checked_prediction_batches(batches: Iterable[FrameBatch], path: str | Path, *,
                               keys: LabelKeys = PREDICTION_KEYS) -> Iterator[FrameBatch]:
    """:func:`parse_predictions` for batches (a columnar reader's, e.g.
    :class:`ingest.extxyz.ExtxyzReader` with prediction keys): each frame must hold a
    predicted value."""
    for b in batches:
        for i in range(len(b)):
            if b.energy[i] is None and b.stress[i] is None and not b.has_forces[i]:
                raise _no_prediction(str(path), keys, b.index[i])
        yield b


def _no_prediction(path: str, keys: LabelKeys, index: int) -> IngestError:
    return IngestError(
        "no predicted energy, forces or stress (looked for "
        f"{', '.join(keys.energy[:3] + keys.forces[:3])}, ...; name them with --energy-key,"
        " --forces-key, --stress-key or --virial-key)",
        path=path, where=f"frame {index}")

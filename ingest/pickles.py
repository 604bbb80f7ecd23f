"""gracemaker-style pandas pickles: a DataFrame with ``ase_atoms``, ``energy``, ``forces`` and
optionally ``stress`` columns (gracemaker's training-data format).

Loading a pickle can run arbitrary code, so it is refused unless the caller says it trusts the
file (``--trust-pickle``). Conventions: energy eV (total; ``energy_corrected`` is not used: it is
gracemaker's reference-shifted energy), forces eV/Å (N x 3), stress ASE's (eV/Å^3, positive =
tensile, 6 Voigt or 3x3).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ingest.atoms import frame_from_atoms, validate_frame
from warehouse.errors import IngestError, missing_file
from warehouse.records import Frame, Labels
from warehouse.units import ase_stress_to_gpa

REQUIRED = {"ase_atoms"}
PICKLE_SUFFIXES = (".pkl", ".pckl", ".pickle", ".pkl.gz", ".pckl.gz", ".pickle.gz", ".pkl.gzip",
                   ".pckl.gzip")


def is_pickle(path: str | Path) -> bool:
    return Path(path).name.lower().endswith(PICKLE_SUFFIXES)


def _missing(value: object) -> bool:
    return value is None or (np.isscalar(value) and not isinstance(value, str) and np.isnan(value))


def check_trust(path: str | Path, trust: bool) -> None:
    if not trust:
        raise IngestError(
            "refusing to load a pickle: unpickling can run arbitrary code. If you trust this file,"
            " pass --trust-pickle", path=str(path))


def parse_pickle(path: str | Path, *, trust: bool = False) -> Iterator[Frame]:
    """Yield validated frames of a gracemaker-style DataFrame pickle (only with ``trust``)."""
    import pandas as pd

    path = str(path)
    check_trust(path, trust)
    if not Path(path).is_file():
        raise missing_file(path)
    try:
        df = pd.read_pickle(path, compression="infer")
    except Exception as exc:  # unpickling raises anything
        raise IngestError(f"cannot unpickle ({type(exc).__name__}: {exc})", path=path) from exc
    if not isinstance(df, pd.DataFrame):
        raise IngestError(f"expected a pandas DataFrame, got {type(df).__name__}", path=path)
    if missing := REQUIRED - set(df.columns):
        raise IngestError(f"missing columns {sorted(missing)} (have {list(df.columns)})", path=path)
    for index, row in enumerate(df.itertuples(index=False)):
        rec = row._asdict()
        atoms = rec["ase_atoms"]
        where = f"row {index}"
        if not hasattr(atoms, "get_positions"):
            raise IngestError(f"ase_atoms is a {type(atoms).__name__}, not ase.Atoms", path=path, where=where)
        energy, forces, stress = rec.get("energy"), rec.get("forces"), rec.get("stress")
        labels = Labels(
            energy=None if _missing(energy) else float(energy),
            forces=None if _missing(forces) else np.asarray(forces, dtype=np.float64),
            stress=None if _missing(stress) else ase_stress_to_gpa(np.asarray(stress, dtype=np.float64)),
        )
        info = dict(atoms.info)
        for key in ("config_type", "weight", "name"):
            if key in rec and not _missing(rec[key]):
                info.setdefault(key, rec[key])
        atoms = atoms.copy()
        atoms.info = info
        frame = frame_from_atoms(atoms, index, labels=labels)
        yield validate_frame(frame, path)

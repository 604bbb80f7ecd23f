"""mlearn-style JSON (materialsvirtuallab/mlearn): a list of records, each with a pymatgen
``Structure`` dict and ``outputs`` {energy, forces, virial_stress}. Read without pymatgen.

Conventions: energy in eV (total), forces in eV/Å, ``virial_stress`` in kbar, positive =
compressive (VASP's sign), ordered **xx yy zz xy xz yz** (LAMMPS's pressure-tensor order, not
VASP's xx yy zz xy yz zx). Converted here to GPa, ASE sign, Voigt order: sigma = -0.1 x value,
reordered. The order is not documented upstream; ``tests/test_ingest_units.py`` establishes it
against two physical models (ASE's EMT on the Cu/Ni sets, UNEP-v1 through calorine on Ni/Mo):
each shear component correlates at r > 0.97 with exactly one column, and only this order makes
all three match (VASP's order swaps yz and xz and leaves them uncorrelated, |r| < 0.3).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from ase.data import atomic_numbers

from ingest.atoms import validate_frame
from ingest.labels import label_number
from ingest.textio import DuplicateKey, no_duplicate_keys, reader_guard
from warehouse.records import Frame, Labels
from warehouse.errors import IngestError, missing_file
from warehouse.units import vasp_kbar_to_gpa

# mlearn's xx yy zz xy xz yz -> the warehouse's xx yy zz yz xz xy
MLEARN_TO_VOIGT = [0, 1, 2, 5, 4, 3]


def _structure(d: dict[str, Any], where: str, path: str) -> tuple[np.ndarray, ...]:
    try:
        cell = _numeric(d["lattice"]["matrix"], "lattice matrix")
        sites = d["sites"]
        symbols = []
        for site in sites:
            species = site["species"]
            if len(species) != 1 or float(species[0].get("occu", 1)) != 1.0:
                raise IngestError("partially occupied site; only ordered structures are stored",
                                  path=path, where=where)
            symbols.append(species[0]["element"])
        numbers = np.array([atomic_numbers[s] for s in symbols], dtype=np.int32)
        if all("xyz" in site for site in sites):
            positions = _numeric([site["xyz"] for site in sites], "xyz")
        else:
            positions = _numeric([site["abc"] for site in sites], "abc") @ cell
    except IngestError:
        raise
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise IngestError(f"not a pymatgen structure dict ({type(exc).__name__}: {exc})",
                          path=path, where=where) from exc
    pbc = d["lattice"].get("pbc", (True, True, True))
    if not (isinstance(pbc, list | tuple) and len(pbc) == 3 and all(isinstance(b, bool) for b in pbc)):
        raise IngestError(f"lattice pbc must be three booleans, got {str(pbc)[:40]}", path=path,
                          where=where)
    return numbers, np.asarray(positions), cell, np.array(pbc, dtype=np.bool_)


def _numeric(value: Any, what: str) -> np.ndarray:
    """Numbers only: JSON's true/false and strings are no coordinates or labels (numpy would
    read true as 1.0 and "1.5" as 1.5)."""
    a = np.asarray(value)
    # a JSON true inside a list of numbers becomes 1 silently: look at the elements themselves
    if a.dtype.kind not in "iuf" or any(isinstance(x, bool) for x in np.asarray(value, dtype=object).ravel()):
        raise ValueError(f"{what} holds something that is not a number")
    return a.astype(np.float64)


def mlearn_stress_to_gpa(virial_stress: Any) -> np.ndarray:
    """mlearn ``virial_stress`` (kbar, compressive positive, xx yy zz xy xz yz) -> GPa, ASE, Voigt."""
    values = _numeric(virial_stress, "virial_stress")
    if values.shape != (6,):
        raise ValueError(f"virial_stress has shape {values.shape}, expected 6 values")
    return vasp_kbar_to_gpa(values)[MLEARN_TO_VOIGT]


@reader_guard
def parse_mlearn_json(path: str | Path) -> Iterator[Frame]:
    """Yield validated frames; ``config_type`` is the record's ``group`` (e.g. AIMD-NVT)."""
    path = str(path)
    try:
        with open(path, encoding="utf-8") as fh:
            records = json.load(fh, object_pairs_hook=no_duplicate_keys)
    except FileNotFoundError as exc:
        raise missing_file(path) from exc
    except (json.JSONDecodeError, UnicodeDecodeError, DuplicateKey) as exc:
        raise IngestError(f"not valid JSON ({exc})", path=path) from exc
    except RecursionError:
        raise IngestError("not valid JSON (nested too deeply)", path=path) from None
    if not isinstance(records, list) or not records:
        raise IngestError("expected a non-empty JSON list of records", path=path)
    for i, rec in enumerate(records):
        where = f"record {i}"
        if not isinstance(rec, dict) or "structure" not in rec:
            raise IngestError("record has no 'structure'", path=path, where=where)
        numbers, positions, cell, pbc = _structure(rec["structure"], where, path)
        out = rec.get("outputs") or {}
        stress = out.get("virial_stress")
        try:
            labels = Labels(
                energy=None if out.get("energy") is None else label_number(out["energy"], "energy"),
                forces=None if out.get("forces") is None else _numeric(out["forces"], "forces"),
                stress=None if stress is None else mlearn_stress_to_gpa(stress),
            )
        except (TypeError, ValueError) as exc:
            raise IngestError(f"unreadable outputs ({exc})", path=path, where=where) from exc
        frame = Frame(numbers=numbers, positions=positions, cell=cell, pbc=pbc, index=i,
                      labels=labels, config_type=rec.get("group"),
                      info={k: rec[k] for k in ("tag", "description") if k in rec})
        yield validate_frame(frame, path)

"""mlearn-style JSON (materialsvirtuallab/mlearn): a list of records, each with a pymatgen
``Structure`` dict and ``outputs`` {energy, forces, virial_stress}. Read without pymatgen.

Conventions: energy in eV (total), forces in eV/Å, ``virial_stress`` as VASP writes it: kbar,
positive = compressive, ordered xx yy zz xy yz zx. Converted here to GPa, ASE sign, Voigt order
(sigma = -0.1 x value, reordered).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from ase.data import atomic_numbers

from ingest.atoms import validate_frame
from warehouse.records import Frame, Labels
from warehouse.errors import IngestError
from warehouse.units import gpumd_voigt_to_ase_order, vasp_kbar_to_gpa


def _structure(d: dict[str, Any], where: str, path: str) -> tuple[np.ndarray, ...]:
    try:
        cell = np.asarray(d["lattice"]["matrix"], dtype=np.float64)
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
            positions = np.asarray([site["xyz"] for site in sites], dtype=np.float64)
        else:
            positions = np.asarray([site["abc"] for site in sites], dtype=np.float64) @ cell
    except IngestError:
        raise
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise IngestError(f"not a pymatgen structure dict ({type(exc).__name__}: {exc})",
                          path=path, where=where) from exc
    pbc = np.array(d["lattice"].get("pbc", (True, True, True)), dtype=np.bool_)
    return numbers, positions, cell, pbc


def parse_mlearn_json(path: str | Path) -> Iterator[Frame]:
    """Yield validated frames; ``config_type`` is the record's ``group`` (e.g. AIMD-NVT)."""
    path = str(path)
    try:
        with open(path, encoding="utf-8") as fh:
            records = json.load(fh)
    except FileNotFoundError as exc:
        raise IngestError("no such file", path=path) from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise IngestError(f"not valid JSON ({exc})", path=path) from exc
    if not isinstance(records, list) or not records:
        raise IngestError("expected a non-empty JSON list of records", path=path)
    for i, rec in enumerate(records):
        where = f"record {i}"
        if not isinstance(rec, dict) or "structure" not in rec:
            raise IngestError("record has no 'structure'", path=path, where=where)
        numbers, positions, cell, pbc = _structure(rec["structure"], where, path)
        out = rec.get("outputs") or {}
        stress = out.get("virial_stress")
        labels = Labels(
            energy=None if out.get("energy") is None else float(out["energy"]),
            forces=None if out.get("forces") is None else np.asarray(out["forces"], dtype=np.float64),
            stress=None if stress is None else gpumd_voigt_to_ase_order(
                vasp_kbar_to_gpa(np.asarray(stress, dtype=np.float64))
            ),
        )
        frame = Frame(numbers=numbers, positions=positions, cell=cell, pbc=pbc, index=i,
                      labels=labels, config_type=rec.get("group"),
                      info={k: rec[k] for k in ("tag", "description") if k in rec})
        yield validate_frame(frame, path)

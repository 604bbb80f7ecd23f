"""The UNEP-v1 reference sets (GPUMD-Wizard ``unep_v1_dft_ref``) as properties, DFT beside models.

Readers (pure; they yield :class:`ingest.properties.PropertyRecord`):

- :func:`parse_unep_eos`, :func:`parse_unep_stacking_fault`: the author's ``data.json`` files
  (DFT and NEP side by side; units in :mod:`ingest.properties`).
- :func:`parse_unep_reference`: the DFT labels of ``eos/ref.xyz`` and ``stacking_fault/ref.xyz``
  turned into the same properties a model gets from :func:`parse_unep_predictions`, so any model
  can be put beside DFT:

  * ``stacking_fault_energy`` (J/m^2), key ``path<p>/<ii>``: gamma_i = (E_i - E_0) / (2 A), A =
    |a x b| of the cell (the periodic slab holds two faults). In ref.xyz each element has 22
    frames: path 0 then path 1, 11 points each (the order of data.json, which this reproduces).
  * ``equilibrium_volume`` (Å^3/atom) and ``bulk_modulus`` (GPa) from a Birch-Murnaghan fit
    (ASE ``EquationOfState``) to the 11 E(V) points per element of ``eos/ref.xyz``.
  * ``screw_path_energy`` (meV/cell), key = point, and its maximum ``peierls_barrier``, from
    ``screw/ref.xyz`` (Mo, Ta, V, W): E_i - E_0 of cells one Burgers vector long holding a
    screw-dislocation dipole. Per cell, not per dislocation: how many dislocations moved is the
    source's business, so divide only when you know.

- :func:`parse_unep_predictions`: a model's energies on those structures from a prediction
  fixture (``tests/fixtures/unep_v1/<model>.npz``: arrays ``set``, ``frame``, ``energy``,
  ``status``); failed points leave their element/path out, with a note in ``extra``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path

import numpy as np

from ingest.properties import UNEP_LEVEL, UNEP_MODEL, PropertyRecord, _load_json, _numbers
from warehouse.errors import IngestError

SF_POINTS = 11  # points per slip path in stacking_fault/ref.xyz and data.json


def parse_unep_eos(path: str | Path, *, reference: str = UNEP_LEVEL,
                   model: str = UNEP_MODEL) -> Iterator[PropertyRecord]:
    """UNEP-v1 ``eos/data.json``: E(V) per element, DFT (a level of theory) and NEP (a model)."""
    path = str(path)
    for el, block in _load_json(path).items():
        vols = _numbers(block.get("volume"), path, f"{el}.volume")
        for src, name, st in (("DFT", reference, "level_of_theory"), ("NEP", model, "model")):
            vals = _numbers(block.get(src), path, f"{el}.{src}")
            if len(vals) != len(vols):
                raise IngestError(f"{len(vals)} energies for {len(vols)} volumes", path=path,
                                  where=f"{el}.{src}")
            for i, (v, e) in enumerate(zip(vols, vals, strict=True)):
                yield PropertyRecord(el, "eos_energy", f"{v:.6f}", e, "eV/atom", name, st, None,
                                     {"volume_A3_per_atom": v, "point": i,
                                      "zero": "the source's own equilibrium energy"})


def parse_unep_stacking_fault(path: str | Path, *, reference: str = UNEP_LEVEL,
                              model: str = UNEP_MODEL) -> Iterator[PropertyRecord]:
    """UNEP-v1 ``stacking_fault/data.json``: generalized stacking-fault energies (J/m^2)."""
    path = str(path)
    for el, paths in _load_json(path).items():
        for p, block in paths.items():
            for src, name, st in (("DFT", reference, "level_of_theory"), ("NEP", model, "model")):
                vals = _numbers(block.get(src), path, f"{el}.{p}.{src}")
                n = len(vals)
                for i, e in enumerate(vals):
                    yield PropertyRecord(el, "stacking_fault_energy", f"path{p}/{i:02d}", e,
                                         "J/m^2", name, st, None,
                                         {"path": int(p), "point": i,
                                          "fraction": i / (n - 1) if n > 1 else 0.0})


@lru_cache(maxsize=4)
def _ref_frames(path: str, mtime: float) -> tuple[tuple[str, float, float, int], ...]:
    """(element, volume, fault-plane area, n_atoms) and the DFT energy of every ref.xyz frame."""
    from ase.io import read

    out = []
    for a in read(path, index=":"):
        area = float(np.linalg.norm(np.cross(a.cell[0], a.cell[1])))
        out.append((a.get_chemical_symbols()[0], float(a.get_volume()), area, len(a),
                    float(a.get_potential_energy())))
    return tuple(out)


def _frames(ref_dir: Path, name: str) -> tuple:
    path = ref_dir / name / "ref.xyz"
    if not path.is_file():
        raise IngestError(f"no {name}/ref.xyz here: pass the unep_v1_dft_ref folder", path=str(ref_dir))
    return _ref_frames(str(path), path.stat().st_mtime)


def _gsfe(frames: tuple, energy: np.ndarray, source: str, st: str) -> Iterator[PropertyRecord]:
    from ase.units import J, m

    by_el: dict[str, list[int]] = {}
    for i, f in enumerate(frames):
        by_el.setdefault(f[0], []).append(i)
    for el, idx in by_el.items():
        if len(idx) % SF_POINTS:
            raise IngestError(f"{el}: {len(idx)} stacking-fault frames, not a multiple of {SF_POINTS}")
        for p in range(len(idx) // SF_POINTS):
            sel = idx[p * SF_POINTS:(p + 1) * SF_POINTS]
            e = energy[sel]
            if not np.isfinite(e).all():
                continue
            gamma = (e - e[0]) / (2 * frames[sel[0]][2]) / (J / m**2)
            for i, g in enumerate(gamma):
                yield PropertyRecord(el, "stacking_fault_energy", f"path{p}/{i:02d}", float(g),
                                     "J/m^2", source, st, None,
                                     {"path": p, "point": i, "fraction": i / (SF_POINTS - 1),
                                      "from": "stacking_fault/ref.xyz energies"})


def _eos_fits(frames: tuple, energy: np.ndarray, source: str, st: str) -> Iterator[PropertyRecord]:
    from ase.eos import EquationOfState
    from ase.units import GPa

    by_el: dict[str, list[int]] = {}
    for i, f in enumerate(frames):
        by_el.setdefault(f[0], []).append(i)
    for el, idx in by_el.items():
        ok = [i for i in idx if math.isfinite(energy[i])]
        if len(ok) < 5:
            continue
        v = np.array([frames[i][1] / frames[i][3] for i in ok])
        e = np.array([energy[i] / frames[i][3] for i in ok])
        try:
            v0, _, b = EquationOfState(v, e, eos="birchmurnaghan").fit()
        except (RuntimeError, ValueError):  # no minimum inside the sampled volumes
            continue
        extra = {"fit": "Birch-Murnaghan (ase.eos)", "n_points": len(ok), "from": "eos/ref.xyz"}
        yield PropertyRecord(el, "equilibrium_volume", None, float(v0), "Å^3/atom", source, st,
                             None, extra)
        yield PropertyRecord(el, "bulk_modulus", None, float(b / GPa), "GPa", source, st, None,
                             extra)


def _screw(frames: tuple, energy: np.ndarray, source: str, st: str) -> Iterator[PropertyRecord]:
    """Screw-dislocation glide path: E_i - E_0 per cell, and its maximum (the Peierls barrier)."""
    by_el: dict[str, list[int]] = {}
    for i, f in enumerate(frames):
        by_el.setdefault(f[0], []).append(i)
    for el, idx in by_el.items():
        e = energy[idx]
        if len(idx) < 3 or not np.isfinite(e).all():
            continue
        path = (e - e[0]) * 1000
        extra = {"from": "screw/ref.xyz energies", "n_points": len(idx),
                 "per": "simulation cell: one Burgers vector of line, a dislocation dipole"}
        for i, v in enumerate(path):
            yield PropertyRecord(el, "screw_path_energy", f"{i:02d}", float(v), "meV/cell",
                                 source, st, None, {**extra, "fraction": i / (len(idx) - 1)})
        yield PropertyRecord(el, "peierls_barrier", None, float(path.max()), "meV/cell", source,
                             st, None, extra)


DERIVED = (("stacking_fault", _gsfe), ("eos", _eos_fits), ("screw", _screw))


def parse_unep_reference(ref_dir: str | Path, *, reference: str = UNEP_LEVEL) -> Iterator[PropertyRecord]:
    """DFT stacking-fault energies and EOS fits from the ``ref.xyz`` labels of ``ref_dir``."""
    ref_dir = Path(ref_dir)
    for name, derive in DERIVED:
        frames = _frames(ref_dir, name)
        yield from derive(frames, np.array([f[4] for f in frames]), reference, "level_of_theory")


def parse_unep_predictions(path: str | Path, *, ref_dir: str | Path | None,
                           model: str) -> Iterator[PropertyRecord]:
    """A model's stacking-fault energies and EOS fits from its prediction fixture (``.npz``)."""
    path = str(path)
    if ref_dir is None:
        raise IngestError("pass --ref-dir: the unep_v1_dft_ref folder whose ref.xyz files the"
                          " predictions belong to", path=path)
    try:
        d = np.load(path, allow_pickle=False)
        sets, frame, energy, status = d["set"], d["frame"], d["energy"], d["status"]
    except (OSError, KeyError, ValueError) as exc:
        raise IngestError(f"not a prediction fixture with set/frame/energy/status ({exc})",
                          path=path) from exc
    for name, derive in DERIVED:
        frames = _frames(Path(ref_dir), name)
        e = np.full(len(frames), np.nan)
        sel = (sets == name) & (status == "ok")
        if frame[sel].max(initial=-1) >= len(frames):
            raise IngestError(f"frame {int(frame[sel].max())} of set {name!r} is not in its ref.xyz",
                              path=path)
        e[frame[sel]] = energy[sel]
        yield from derive(frames, e, model, "model")

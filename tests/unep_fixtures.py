"""Load the UNEP-v1 fixtures (real models' predictions on real DFT reference sets) into a warehouse.

The DFT reference structures come from ``<shared>/gpumd_wizard/unep_v1_dft_ref/<set>/ref.xyz``
(AGPL, never copied into the repo); the predictions from ``tests/fixtures/unep_v1/<model>.npz``
(see that folder's README). Reusable by any test::

    from unep_fixtures import ingest_unep, load_fixture, reference_atoms  # tests/ is on sys.path
    info = ingest_unep(wh, shared_data, models=("unep-v1", "eam-zhou"))

Structures go into one dataset (``DATASET``) with the set name (eos, stacking_fault, screw) as
the subset tag; each model's predictions are loaded through ``ingest_run`` and
``Loader.add_predictions`` exactly as an ingester would. ``omit`` / ``fail`` take fixture row
indices (the npz row order) per model, to make missing and failed predictions on purpose.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from ase import Atoms

from ingest.api import ingest_structures
from ingest.atoms import frame_from_atoms
from ingest.loader import ingest_run
from warehouse.core import Warehouse
from warehouse.records import Labels, PredictionFrame

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "unep_v1"
SETS = ("eos", "stacking_fault", "screw")
REF_DIR = Path("gpumd_wizard") / "unep_v1_dft_ref"
DATASET = "unep-v1-dft"
LEVEL = "VASP-PBE (UNEP-v1 reference)"
ALL_MODELS = tuple(sorted(p.stem for p in FIXTURES.glob("*.npz")))


@dataclass(frozen=True)
class UnepLoaded:
    dataset: str
    models: tuple[str, ...]
    sets: tuple[str, ...]
    n_structures: int


def ref_path(shared_data: Path, set_name: str) -> Path:
    return Path(shared_data) / REF_DIR / set_name / "ref.xyz"


@lru_cache(maxsize=8)
def _read_refs(path: str) -> tuple[Atoms, ...]:
    import ase.io

    return tuple(ase.io.read(path, index=":", format="extxyz"))


def reference_atoms(shared_data: Path, set_name: str) -> tuple[Atoms, ...]:
    """The frames of one reference set, as ASE reads them (cached; do not mutate)."""
    return _read_refs(str(ref_path(shared_data, set_name)))


@lru_cache(maxsize=16)
def _load(path: str) -> dict[str, np.ndarray]:
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def load_fixture(model: str) -> dict[str, np.ndarray]:
    """The arrays of ``tests/fixtures/unep_v1/<model>.npz`` plus ``offsets`` (force row starts)."""
    d = dict(_load(str(FIXTURES / f"{model}.npz")))
    d["offsets"] = np.concatenate([[0], np.cumsum(d["n_atoms"])])
    return d


def fixture_rows(sets: Sequence[str] = SETS, model: str = "unep-v1") -> np.ndarray:
    """Fixture row indices belonging to ``sets`` (row order is the same in every model's file)."""
    return np.flatnonzero(np.isin(load_fixture(model)["set"], list(sets)))


def _prediction_frames(
    shared_data: Path, model: str, rows: Iterable[int], fail: set[int]
) -> list[PredictionFrame]:
    d = load_fixture(model)
    out = []
    for row in rows:
        atoms = reference_atoms(shared_data, str(d["set"][row]))[int(d["frame"][row])]
        if row in fail or d["status"][row] != "ok":
            frame = frame_from_atoms(atoms, int(row), labels=Labels())
            msg = str(d["message"][row]) or "failed on purpose (test fixture)"
            out.append(PredictionFrame(frame, status="failed", message=msg))
            continue
        a, b = d["offsets"][row], d["offsets"][row + 1]
        labels = Labels(float(d["energy"][row]), d["forces"][a:b].copy(), d["stress"][row].copy())
        out.append(PredictionFrame(frame_from_atoms(atoms, int(row), labels=labels)))
    return out


def ingest_unep(
    wh: Warehouse,
    shared_data: Path,
    *,
    models: Sequence[str] = ("unep-v1", "eam-zhou"),
    sets: Sequence[str] = SETS,
    dataset: str = DATASET,
    omit: Mapping[str, Iterable[int]] | None = None,
    fail: Mapping[str, Iterable[int]] | None = None,
) -> UnepLoaded:
    """Ingest the reference sets ``sets`` into ``dataset`` and ``models``' fixture predictions."""
    omit = {k: set(map(int, v)) for k, v in (omit or {}).items()}
    fail = {k: set(map(int, v)) for k, v in (fail or {}).items()}
    for s in sets:
        ingest_structures(wh, ref_path(shared_data, s), dataset=dataset, level_of_theory=LEVEL,
                          subset=s)
    rows = fixture_rows(sets)
    for model in models:
        keep = [int(r) for r in rows if int(r) not in omit.get(model, set())]
        preds = _prediction_frames(shared_data, model, keep, fail.get(model, set()))
        src = FIXTURES / f"{model}.npz"
        with ingest_run(wh, kind="fixture-predictions", source=str(src)) as ld:
            family = "EAM" if model.startswith("eam") else "NEP"
            model_id = ld.model(model, family=family,
                                framework="ASE" if family == "EAM" else "calorine")
            ld.add_predictions(model_id, preds, path=str(src))
    return UnepLoaded(dataset, tuple(models), tuple(sets), len(rows))


def reference_labels(shared_data: Path, set_name: str, frame: int) -> tuple[float, np.ndarray, np.ndarray]:
    """DFT energy (eV), forces (eV/Å) and stress (GPa, ASE sign, Voigt) of one frame, read
    independently of the warehouse's parser: stress = -virial / V from the file's ``virial=``."""
    from ase.units import GPa

    atoms = reference_atoms(shared_data, set_name)[frame]
    virial = np.asarray(atoms.info["virial"], dtype=float).reshape(3, 3) if "virial" in atoms.info \
        else None
    energy = float(atoms.calc.results["energy"])
    forces = np.asarray(atoms.calc.results["forces"], dtype=float)
    if virial is None:  # ASE may have turned the virial into a calculator stress already
        stress = np.asarray(atoms.calc.results["stress"], dtype=float) / GPa
    else:
        sigma = -virial / atoms.get_volume()
        stress = np.array([sigma[0, 0], sigma[1, 1], sigma[2, 2], sigma[1, 2], sigma[0, 2],
                           sigma[0, 1]]) / GPa
    return energy, forces, stress

"""``warehouse demo``: a small real benchmark built from data that ships with the package.

The mlearn Cu and Ni test sets (DFT, VASP PBE; BSD-3-Clause, notice in warehouse/data/mlearn)
are ingested as two datasets, ASE's built-in EMT potential is evaluated on them, and its
predictions are stored with provenance. Runs anywhere: no server, no ``../shared``.
"""

from __future__ import annotations

import time
from importlib.resources import files

from ase.calculators.emt import EMT

from ingest.api import ingest_structures
from ingest.evaluate import EvalClock, evaluate_frames
from ingest.loader import IngestSummary, ingest_run
from warehouse.core import Warehouse
from warehouse.structures import iter_dataset_frames

LEVEL = "mlearn-VASP-PBE"
DATASETS = {"mlearn-Cu-test": "Cu_test.json", "mlearn-Ni-test": "Ni_test.json"}
MODEL = "emt"


def demo_files() -> dict[str, str]:
    root = files("warehouse") / "data" / "mlearn"
    return {name: str(root / fname) for name, fname in DATASETS.items()}


def run_demo(wh: Warehouse, *, argv: list[str] | None = None) -> list[IngestSummary]:
    summaries = []
    for name, path in demo_files().items():
        summaries.append(ingest_structures(wh, path, dataset=name, level_of_theory=LEVEL,
                                           fmt="mlearn-json", argv=argv))
    for name in DATASETS:
        clock = EvalClock()
        with ingest_run(wh, kind="evaluate", source=f"ase.calculators.emt:EMT on {name}",
                        argv=argv) as ld:
            model_id = ld.model(MODEL, family="EMT", framework="ASE", conservative=True,
                                licence="LGPL-2.1-or-later (ASE)",
                                url="https://wiki.fysik.dtu.dk/ase/ase/calculators/emt.html")
            frames = (f for _, f in iter_dataset_frames(wh, name))
            t0 = time.perf_counter()
            ld.add_predictions(model_id, evaluate_frames(EMT(), frames, clock=clock),
                               path=f"dataset {name}")
            ld.summary.notes.append(
                f"EMT on {name}: {clock.n_structures} structures, {clock.n_atoms} atoms,"
                f" {clock.seconds:.2f} s in the calculator, {time.perf_counter() - t0:.2f} s in all"
            )
        summaries.append(ld.summary)
    return summaries

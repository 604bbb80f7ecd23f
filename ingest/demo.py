"""``warehouse demo``: a small real benchmark built from data that ships with the package.

The mlearn Cu and Ni test sets (DFT, VASP PBE; BSD-3-Clause, notice in warehouse/data/mlearn)
are ingested as two datasets, ASE's built-in EMT potential is evaluated on them, and its
predictions are stored with provenance. Runs anywhere: no server, no ``../shared``.

A second demo does no new work: a file already stored in its dataset (same sha256, by an ingest
run that succeeded) is not read again, and ``warehouse evaluate`` evaluates only structures
without a prediction; each step says so.
"""

from __future__ import annotations

from importlib.resources import files

from sqlalchemy import select

from ingest.api import ingest_structures
from ingest.evaluate import run_evaluate
from ingest.loader import IngestSummary
from warehouse import models as m
from warehouse.core import Warehouse
from warehouse.hashing import sha256_file

LEVEL = "mlearn-VASP-PBE"
DATASETS = {"mlearn-Cu-test": "Cu_test.json", "mlearn-Ni-test": "Ni_test.json"}
MODEL = "emt"


def demo_files() -> dict[str, str]:
    root = files("warehouse") / "data" / "mlearn"
    return {name: str(root / fname) for name, fname in DATASETS.items()}


def _stored_before(wh: Warehouse, path: str, dataset: str) -> bool:
    """Whether ``dataset`` exists and a successful structures ingest stored this very file."""
    sha = sha256_file(path)
    with wh.session() as s:
        if s.scalar(select(m.Dataset.id).where(m.Dataset.name == dataset)) is None:
            return False
        return s.scalar(select(m.IngestRun.id).where(
            m.IngestRun.kind == "structures", m.IngestRun.status == "ok",
            m.IngestRun.source_sha256 == sha).limit(1)) is not None


def run_demo(wh: Warehouse, *, argv: list[str] | None = None) -> list[IngestSummary]:
    summaries = []
    for name, path in demo_files().items():
        if _stored_before(wh, path, name):
            done = IngestSummary(kind="structures")
            done.seen("source files")
            done.notes.append(f"{name}: {DATASETS[name]} is stored already; not read again")
            summaries.append(done)
            continue
        summaries.append(ingest_structures(wh, path, dataset=name, level_of_theory=LEVEL,
                                           fmt="mlearn-json", argv=argv))
    for name in DATASETS:
        # no timings: the demo shows accuracy; `warehouse evaluate` measures cost
        summaries.append(run_evaluate(wh, model=MODEL, calculator="emt", dataset=name,
                                      timing="never", argv=argv).summary)
    return summaries

"""Timing records as a table, and throughput-vs-size series for scaling plots.

Columns (:class:`Col`): model, task, hardware, device_model, device_count, cpu_model, cpu_cores,
software, software_version, precision, system, composition, n_atoms, n_steps, wall_s (s),
peak_memory_mb (MiB), atom_steps_per_s, s_per_atom_step (its inverse), status (``ok`` or
``failed``), timing_id and run_id (the ``ingest_runs`` row that recorded it).
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

import numpy as np
import pandas as pd
from sqlalchemy import Select, select

from warehouse import models as m
from warehouse.core import Warehouse
from warehouse.errors import NoMatch

TASKS = ("md", "inference", "training")


class Col(StrEnum):
    MODEL = "model"
    TASK = "task"
    HARDWARE = "hardware"
    DEVICE_MODEL = "device_model"
    DEVICE_COUNT = "device_count"
    CPU_MODEL = "cpu_model"
    CPU_CORES = "cpu_cores"
    SOFTWARE = "software"
    SOFTWARE_VERSION = "software_version"
    PRECISION = "precision"
    SYSTEM = "system"
    COMPOSITION = "composition"
    N_ATOMS = "n_atoms"
    N_STEPS = "n_steps"
    WALL_S = "wall_s"
    PEAK_MEMORY_MB = "peak_memory_mb"
    ATOM_STEPS_PER_S = "atom_steps_per_s"
    S_PER_ATOM_STEP = "s_per_atom_step"
    STATUS = "status"
    TIMING_ID = "timing_id"
    RUN_ID = "run_id"


COLUMNS = [c.value for c in Col]


def timings_statement(
    *, models: Sequence[str] = (), task: str | None = None, hardware: Sequence[str] = ()
) -> Select:
    t = m.Timing
    stmt = (
        select(
            m.Model.name.label("model"), t.task, t.hardware, t.device_model, t.device_count,
            t.cpu_model, t.cpu_cores, t.software, t.software_version, t.precision, t.system,
            t.composition, t.n_atoms, t.n_steps, t.wall_s, t.peak_memory_mb, t.atom_steps_per_s,
            t.extra, t.id.label("timing_id"), t.ingest_run_id.label("run_id"),
        )
        .outerjoin(m.Model, m.Model.id == t.model_id)
        .order_by(m.Model.name, t.task, t.hardware, t.n_atoms, t.id)
    )
    if models:
        stmt = stmt.where(m.Model.name.in_(list(models)))
    if task:
        stmt = stmt.where(t.task == task)
    if hardware:
        stmt = stmt.where(t.hardware.in_(list(hardware)))
    return stmt


def timings(
    wh: Warehouse, *, models: Sequence[str] = (), task: str | None = None,
    hardware: Sequence[str] = (),
) -> pd.DataFrame:
    """Every timing record matching the filters (columns: :class:`Col`)."""
    if task is not None and task not in TASKS:
        raise NoMatch(f"task {task!r} is not one of {', '.join(TASKS)}")
    with wh.engine.connect() as conn:
        df = pd.read_sql(timings_statement(models=models, task=task, hardware=hardware), conn)
    if df.empty:
        raise NoMatch(
            "no timing records match"
            + (f" (models: {', '.join(models)})" if models else "")
            + (f" (task: {task})" if task else "")
            + (f" (hardware: {', '.join(hardware)})" if hardware else "")
            + "; store some with `warehouse ingest timings` or `warehouse evaluate`")
    rate = pd.to_numeric(df["atom_steps_per_s"], errors="coerce").astype(float)
    df["s_per_atom_step"] = 1.0 / rate.where(rate > 0)
    df["status"] = [
        (e or {}).get("status", "ok") if isinstance(e, dict) else "ok" for e in df["extra"]
    ]
    for c in ("device_count", "cpu_cores", "n_atoms", "n_steps"):
        df[c] = df[c].astype("Int64")
    return df[COLUMNS]


def scaling(
    wh: Warehouse, *, models: Sequence[str] = (), hardware: Sequence[str] = (), task: str = "md"
) -> pd.DataFrame:
    """Throughput vs system size: per model, hardware and n_atoms, the median atom-steps/s of
    the successful records (columns model, hardware, n_atoms, atom_steps_per_s, n_records)."""
    df = timings(wh, models=models, task=task, hardware=hardware)
    df = df[(df["status"] == "ok") & df["atom_steps_per_s"].notna() & df["n_atoms"].notna()]
    if df.empty:
        raise NoMatch("no successful timing records with an atom count match these filters")
    out = (
        df.groupby(["model", "hardware", "n_atoms"], dropna=False)["atom_steps_per_s"]
        .agg(atom_steps_per_s="median", n_records="count").reset_index()
    )
    out["n_atoms"] = out["n_atoms"].astype(np.int64)
    return out.sort_values(["model", "hardware", "n_atoms"], ignore_index=True)

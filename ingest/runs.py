"""Provenance: the ``ingest_runs`` table as a DataFrame (``warehouse runs``).

Every ingest (and evaluate) command leaves one row: what it read (source URI and sha256), how it
was called (argv), by whom and where (user, host), when (start, end), how it ended (ok / failed
with the message) and with which versions of the warehouse and of the libraries that parsed it.
A failed attempt is recorded in its own small transaction after everything it wrote was undone.
"""

from __future__ import annotations

from pathlib import PurePath
from typing import Any

import pandas as pd
from sqlalchemy import select

from warehouse import models as m
from warehouse.core import Warehouse

COLUMNS = (
    "id", "kind", "status", "source", "sha256", "added", "present", "refused", "user", "host",
    "started", "finished", "seconds", "warehouse", "libraries", "message", "argv",
)


def _counts_text(counts: dict[str, Any] | None, key: str) -> str:
    part = (counts or {}).get(key) or {}
    if not isinstance(part, dict):
        return str(part)
    return ", ".join(f"{v} {k}" for k, v in part.items() if v) or "-"


def list_runs(
    wh: Warehouse,
    *,
    kind: str | None = None,
    status: str | None = None,
    limit: int | None = 50,
    compact: bool = False,
) -> pd.DataFrame:
    """Ingest runs, newest first. ``compact`` shortens hashes and paths for a terminal."""
    stmt = select(m.IngestRun).order_by(m.IngestRun.id.desc())
    if kind:
        stmt = stmt.where(m.IngestRun.kind == kind)
    if status:
        stmt = stmt.where(m.IngestRun.status == status)
    if limit:
        stmt = stmt.limit(limit)
    with wh.session() as s:
        runs = s.scalars(stmt).all()
    rows = []
    for r in runs:
        seconds = (r.finished_at - r.started_at).total_seconds() if r.finished_at else None
        libs = r.library_versions or {}
        source, sha = r.source_uri, r.source_sha256
        if compact:
            source = PurePath(source).name if source and "/" in source else source
            sha = sha[:12] if sha else sha
        rows.append({
            "id": r.id, "kind": r.kind, "status": r.status, "source": source, "sha256": sha,
            "added": _counts_text(r.counts, "added"), "present": _counts_text(r.counts, "present"),
            "refused": (r.counts or {}).get("refused"), "user": r.user, "host": r.host,
            "started": r.started_at.isoformat(timespec="seconds") if r.started_at else None,
            "finished": r.finished_at.isoformat(timespec="seconds") if r.finished_at else None,
            "seconds": seconds, "warehouse": r.warehouse_version,
            "libraries": " ".join(f"{k}={v}" for k, v in libs.items()),
            "message": r.message, "argv": " ".join(r.argv or []),
        })
    df = pd.DataFrame(rows, columns=list(COLUMNS))
    if compact:
        df = df.drop(columns=["libraries", "argv"])
        df["message"] = df["message"].map(
            lambda t: t[:57] + "..." if isinstance(t, str) and len(t) > 60 else t)
    return df

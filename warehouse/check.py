"""``warehouse check``: the catalog and the lake agree.

A row whose file is missing or altered is an error; a file with no row is garbage that ``repair``
removes, as are temporary files, but only once no running ingest can still commit it.

Why that is safe while ingests run: a lake file's name carries the id of the ingest run that
wrote it (``part-<run>-...``), and a run holds its run lock (``warehouse.locks.RunLock``) from
before its first file is written until after its commit or rollback. So for a file of run R
that no row names: while R's lock is held, R may still commit it (the file is left alone); once
the lock is free, R has ended, and what the catalog says *now* is final for R's files (read again
after the lock was found free: a commit between the first look and the lock test is then seen).
A run whose row still says ``running`` with its lock free was killed; ``--repair`` marks it failed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select, update

from warehouse import models as m
from warehouse.core import Warehouse
from warehouse.identity import check_lake_binding
from warehouse.lake import TMP_SUFFIX, run_of
from warehouse.locks import run_is_live
from warehouse.provenance import now

KILLED = "the ingest's process ended before it finished (killed?); nothing it wrote was kept"


@dataclass
class CheckReport:
    n_files: int = 0
    missing: list[str] = field(default_factory=list)
    altered: list[str] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    in_flight: list[str] = field(default_factory=list)  # files of running ingests, left alone
    dead_runs: list[int] = field(default_factory=list)  # marked failed by repair
    repair_skipped: str | None = None  # why --repair deleted nothing

    @property
    def problems(self) -> bool:
        return bool(self.missing or self.altered or (self.orphans and not self.removed))

    def lines(self) -> list[str]:
        out = [f"{self.n_files} lake files in the catalog"]
        out += [f"MISSING  {p}" for p in self.missing]
        out += [f"ALTERED  {p} (sha256 differs from the catalog)" for p in self.altered]
        out += [f"ORPHAN   {p}" + (" (removed)" if p in self.removed else "") for p in self.orphans]
        if self.in_flight:
            out.append(f"{len(self.in_flight)} files of ingests still running (left alone)")
        if self.repair_skipped:
            out.append(f"repair skipped: {self.repair_skipped}")
        if self.dead_runs:
            out.append(f"marked failed: ingest runs {', '.join(map(str, self.dead_runs))}"
                       " (their process ended before they finished)")
        if not (self.missing or self.altered or self.orphans):
            out.append("ok: every file is present and unaltered, and there are no orphans")
        elif self.orphans and not self.removed:
            out.append("orphans are files no row points to; `warehouse check --repair` removes them")
        return out


def check_lake(wh: Warehouse, *, repair: bool = False, verify: bool = True) -> CheckReport:
    report = CheckReport()
    on_disk = sorted(wh.lake.walk())  # first: a file that appears later is not looked at
    known = _known(wh)
    report.n_files = len(known)
    for path, sha in sorted(known.items()):
        if not wh.lake.exists(path):
            report.missing.append(path)
        elif verify and wh.lake.sha256(path) != sha:
            report.altered.append(path)
    live: dict[int, bool | None] = {}
    candidates = [p for p in on_disk if p not in known or p.endswith(TMP_SUFFIX)]
    for path in candidates:
        run = run_of(path)
        if run is not None:
            if run not in live:
                live[run] = run_is_live(wh.engine, run)
            if live[run]:
                report.in_flight.append(path)
                continue
        report.orphans.append(path)
    if candidates and report.orphans:
        # looked at again after the lock tests: a run that committed meanwhile named its files
        known = _known(wh)
        report.orphans = [p for p in report.orphans if p not in known or p.endswith(TMP_SUFFIX)]
    if repair:
        # refuses a lake that another catalog wrote; a read, so that a repair never waits for
        # (or holds up) the write lock of an ingest in flight on SQLite
        if report.orphans and not check_lake_binding(wh):
            marker = wh.lake.read_marker() or {}
            report.repair_skipped = (
                f"the lake belongs to another catalog ({marker.get('catalog', 'unknown')}, uuid"
                f" {marker.get('catalog_uuid')}), unless this catalog's first ingest is binding it"
                " at this moment; nothing was removed")
            return report
        for path in report.orphans:
            wh.lake.delete(path)
            report.removed.append(path)
        report.dead_runs = _mark_dead_runs(wh)
    return report


def _known(wh: Warehouse) -> dict[str, str]:
    with wh.session() as s:
        return {path: sha for path, sha in s.execute(select(m.LakeFile.path, m.LakeFile.sha256))}


def _mark_dead_runs(wh: Warehouse) -> list[int]:
    """Runs still ``running`` whose process is gone: marked failed (provenance only)."""
    with wh.session() as s:
        running = s.scalars(select(m.IngestRun.id).where(m.IngestRun.status == "running")).all()
    dead = [r for r in running if run_is_live(wh.engine, r) is False]
    if dead:
        with wh.engine.begin() as conn:
            conn.execute(update(m.IngestRun).where(
                m.IngestRun.id.in_(dead), m.IngestRun.status == "running",
            ).values(status="failed", finished_at=now(), message=KILLED))
    return dead

"""``warehouse check``: the catalog and the lake agree.

A row whose file is missing or altered is an error; a file with no row (left by a killed ingest)
is garbage that ``repair`` removes, as are temporary files.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select

from warehouse import models as m
from warehouse.core import Warehouse
from warehouse.lake import TMP_SUFFIX


@dataclass
class CheckReport:
    n_files: int = 0
    missing: list[str] = field(default_factory=list)
    altered: list[str] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    @property
    def problems(self) -> bool:
        return bool(self.missing or self.altered or (self.orphans and not self.removed))

    def lines(self) -> list[str]:
        out = [f"{self.n_files} lake files in the catalog"]
        out += [f"MISSING  {p}" for p in self.missing]
        out += [f"ALTERED  {p} (sha256 differs from the catalog)" for p in self.altered]
        out += [f"ORPHAN   {p}" + (" (removed)" if p in self.removed else "") for p in self.orphans]
        if not (self.missing or self.altered or self.orphans):
            out.append("ok: every file is present and unaltered, and there are no orphans")
        elif self.orphans and not self.removed:
            out.append("orphans are files no row points to; `warehouse check --repair` removes them")
        return out


def check_lake(wh: Warehouse, *, repair: bool = False, verify: bool = True) -> CheckReport:
    report = CheckReport()
    with wh.session() as s:
        known = {path: sha for path, sha in s.execute(select(m.LakeFile.path, m.LakeFile.sha256))}
    report.n_files = len(known)
    for path, sha in sorted(known.items()):
        if not wh.lake.exists(path):
            report.missing.append(path)
        elif verify and wh.lake.sha256(path) != sha:
            report.altered.append(path)
    for path in sorted(wh.lake.walk()):
        if path not in known or path.endswith(TMP_SUFFIX):
            report.orphans.append(path)
            if repair:
                wh.lake.delete(path)
                report.removed.append(path)
    return report

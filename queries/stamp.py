"""The provenance stamp printed under exported tables: what a table was computed from.

``warehouse <version> · schema <alembic revision> · rows <fingerprint> · <date>``. The fingerprint
is a sha256 over the query options and, per group, the counts and the ids of the prediction rows
used (their sum and the latest ingest run): the same inputs always give the same fingerprint;
adding, removing or re-ingesting a prediction changes it. The floating-point error sums are left
out: summed in another order (kept at ingest vs. live, one engine vs. another) they differ in the
last bits, and rounding them cannot hide that for every value (one near a rounding boundary flips).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from warehouse import __version__
from warehouse.core import Warehouse

SUM_COLUMNS = ("n_structures", "n_predicted", "n_failed", "n_energy", "e_abs", "e_sq", "f_abs",
               "f_sq", "f_n", "s_abs", "s_sq", "s_n", "id_sum", "max_run")
FLOAT_SUMS = ("e_abs", "e_sq", "f_abs", "f_sq", "s_abs", "s_sq")


def _canon(v: object) -> object:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return None
    if isinstance(v, (float, np.floating)):
        return float(f"{float(v):.12g}")
    if isinstance(v, (int, np.integer)):
        return int(v)
    return str(v)


def rows_fingerprint(sums: pd.DataFrame, *, options: dict[str, object]) -> str:
    """sha256 (hex) of the grouped sums a table was computed from, and the options."""
    keys = [c for c in sums.columns if c not in SUM_COLUMNS and c not in ("n_atoms", "n_missing")]
    cols = keys + [c for c in SUM_COLUMNS if c in sums.columns and c not in FLOAT_SUMS]
    rows = sorted(
        ([_canon(v) for v in row] for row in sums[cols].itertuples(index=False)),
        key=lambda r: json.dumps(r[: len(keys)], default=str),
    )
    payload = json.dumps({"options": options, "columns": cols, "rows": rows}, sort_keys=True,
                         default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


@dataclass(frozen=True)
class Stamp:
    version: str
    revision: str | None
    fingerprint: str
    date: str

    def text(self) -> str:
        return (f"mlip-warehouse {self.version} · schema {self.revision} · rows"
                f" {self.fingerprint[:16]} · {self.date}")


def make_stamp(wh: Warehouse, fingerprint: str, *, date: str | None = None) -> Stamp:
    return Stamp(__version__, wh.revision(), fingerprint,
                 date or datetime.now(UTC).strftime("%Y-%m-%d"))

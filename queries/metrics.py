"""The metric registry: every error metric defined once (DESIGN.md, "Comparability and identity").

A metric is an aggregate over the per-structure error sums stored at ingest
(``prediction_errors``), grouped any way a query likes. For structures j with N_j atoms:

* energy: dE_j = (E_pred - E_ref) / N_j in eV/atom; MAE = mean_j |dE_j|, RMSE = sqrt(mean_j dE_j^2);
* force (per Cartesian component, atom-weighted): MAE = sum |dF_ia| / (3 sum N_j),
  RMSE = sqrt(sum dF_ia^2 / (3 sum N_j));
* force norm (per atom, vector norm): MAE = sum_i |dF_i| / sum N_j, RMSE = sqrt(sum_i |dF_i|^2 /
  sum N_j); the RMSE is sqrt(3) times the component RMSE, the MAE is not a fixed multiple;
* stress (per Voigt component): as forces, over 6 components per structure.

Each :class:`Metric` names the numerator and denominator sums (columns of the sums frames that
:mod:`queries.leaderboard` and :mod:`queries.breakdowns` build), the scale from stored units
(eV, eV/Å, GPa) to report units (meV/atom, meV/Å, GPa), and a label and symbol for figures and
tables. Adding a metric is one entry in :data:`REGISTRY` (and its sums in the statements, if new).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from warehouse.errors import NoMatch

# The sums every per-structure row and every group carry: (numerator, denominator) pairs.
SUM_COLUMNS = ("e_abs", "e_sq", "n_energy", "f_abs", "f_sq", "f_n", "fn_abs", "fn_sq", "fn_n",
               "s_abs", "s_sq", "s_n")


@dataclass(frozen=True)
class Metric:
    """One error metric: how to aggregate it, its unit and how to show it."""

    name: str  # column name, e.g. force_rmse; the CLI also accepts force-rmse
    quantity: str  # energy | force | stress
    stat: str  # mae | rmse
    num: str  # numerator sum column
    den: str  # denominator sum column (a count)
    unit: str  # report unit
    scale: float  # stored unit -> report unit
    label: str  # words, for axes and headers
    symbol: str  # LaTeX math, for paper tables
    default: bool = True  # a column of the leaderboard's default table

    @property
    def cli_name(self) -> str:
        return self.name.replace("_", "-")

    @property
    def axis_label(self) -> str:
        return f"{self.label} ({self.unit})"

    def from_sums(self, sums: pd.DataFrame) -> pd.Series:
        """The metric of each row of a frame of group sums (NaN where the count is 0)."""
        num = pd.to_numeric(sums[self.num], errors="coerce").astype(float) if self.num in sums \
            else pd.Series(np.nan, index=sums.index)
        den = pd.to_numeric(sums[self.den], errors="coerce").astype(float) if self.den in sums \
            else pd.Series(0.0, index=sums.index)
        ratio = num.where(den > 0) / den.where(den > 0)
        return self.scale * (np.sqrt(ratio) if self.stat == "rmse" else ratio)


REGISTRY: dict[str, Metric] = {m.name: m for m in (
    Metric("energy_mae", "energy", "mae", "e_abs", "n_energy", "meV/atom", 1000.0,
           "Energy MAE", r"\mathrm{MAE}_E"),
    Metric("energy_rmse", "energy", "rmse", "e_sq", "n_energy", "meV/atom", 1000.0,
           "Energy RMSE", r"\mathrm{RMSE}_E"),
    Metric("force_mae", "force", "mae", "f_abs", "f_n", "meV/Å", 1000.0,
           "Force MAE", r"\mathrm{MAE}_F"),
    Metric("force_rmse", "force", "rmse", "f_sq", "f_n", "meV/Å", 1000.0,
           "Force RMSE", r"\mathrm{RMSE}_F"),
    Metric("stress_mae", "stress", "mae", "s_abs", "s_n", "GPa", 1.0,
           "Stress MAE", r"\mathrm{MAE}_\sigma"),
    Metric("stress_rmse", "stress", "rmse", "s_sq", "s_n", "GPa", 1.0,
           "Stress RMSE", r"\mathrm{RMSE}_\sigma"),
    Metric("force_norm_mae", "force", "mae", "fn_abs", "fn_n", "meV/Å", 1000.0,
           "Force-norm MAE", r"\mathrm{MAE}_{|F|}", default=False),
    Metric("force_norm_rmse", "force", "rmse", "fn_sq", "fn_n", "meV/Å", 1000.0,
           "Force-norm RMSE", r"\mathrm{RMSE}_{|F|}", default=False),
)}

DEFAULT = [name for name, m in REGISTRY.items() if m.default]
UNITS = {name: m.unit for name, m in REGISTRY.items()}
# Report units of each quantity (uq, parity insets): the same as the tables'.
QUANTITY_UNITS = {"energy": "meV/atom", "force": "meV/Å", "stress": "GPa"}
QUANTITY_SCALE = {"energy": 1000.0, "force": 1000.0, "stress": 1.0}


def get(name: str) -> Metric:
    """The metric called ``name`` (``force_rmse`` or ``force-rmse``); a clear error otherwise."""
    key = name.strip().lower().replace("-", "_")
    if key not in REGISTRY:
        raise NoMatch(f"unknown metric {name!r}; use one of {', '.join(REGISTRY)}")
    return REGISTRY[key]


def finish(sums: pd.DataFrame, names: Iterable[str]) -> pd.DataFrame:
    """Columns ``names`` (metric names) computed from a frame of group sums."""
    return pd.DataFrame({n: REGISTRY[n].from_sums(sums) for n in names}, index=sums.index)


def row_sums(rows: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Group sums (:data:`SUM_COLUMNS`) of per-structure error rows, as the SQL builds them.

    ``rows`` has ``e`` (eV/atom, signed) and the stored sums ``f_abs, f_sq, f_n, fn_abs, fn_sq,
    fn_n, s_abs, s_sq, s_n``; a sum over no value is NaN, a count over none is 0.
    """
    r = rows.assign(e_abs=rows["e"].abs(), e_sq=rows["e"] ** 2,
                    n_energy=rows["e"].notna().astype("int64"))
    for c in ("fn_abs", "fn_sq", "fn_n"):
        if c not in r:
            r[c] = np.nan if c != "fn_n" else 0
    g = r.groupby(keys, dropna=False, sort=False)
    out = pd.DataFrame({c: g[c].sum(min_count=1) for c in SUM_COLUMNS
                        if c not in ("n_energy", "f_n", "fn_n", "s_n")})
    for c in ("n_energy", "f_n", "fn_n", "s_n"):
        out[c] = g[c].sum().fillna(0).astype("int64")
    return out.reset_index()

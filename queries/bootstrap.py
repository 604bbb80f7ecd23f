"""Bootstrap confidence intervals over structures, seeded and reproducible.

Structures of a group are resampled with replacement (a structure carries all its atoms, so the
atom-weighted force metrics are resampled as DESIGN.md defines them); each resample's metrics are
computed from the resampled error sums, and the percentile interval at ``level`` % is reported as
``<metric>_lo`` / ``<metric>_hi`` in report units. Each group draws from its own generator,
seeded by ``seed`` and the group's key, so a group's interval does not depend on which other
groups were asked for. Pure numpy/pandas.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import pandas as pd

from queries import metrics as metric_registry

# resamples are drawn in blocks so memory stays near BLOCK_CELLS * 8 bytes however big a group is
BLOCK_CELLS = 5_000_000
METRICS = tuple(metric_registry.DEFAULT)  # the metrics of the default table (queries.metrics)


def group_rng(seed: int, key: Sequence[object]) -> np.random.Generator:
    digest = hashlib.sha256(repr(tuple(map(str, key))).encode()).digest()
    return np.random.default_rng([int(seed), int.from_bytes(digest[:8], "little")])


def _metric_arrays(g: pd.DataFrame) -> dict[str, tuple[np.ndarray, np.ndarray, float, bool]]:
    """metric -> (numerator per structure, denominator per structure, scale, sqrt), read from
    the metric registry: the same sums the tables aggregate."""
    e = g["e"].to_numpy(float)
    has_e = np.isfinite(e)
    e0 = np.where(has_e, e, 0.0)
    sums = {"e_abs": np.abs(e0), "e_sq": e0 * e0, "n_energy": has_e.astype(float)}
    for c in ("f_abs", "f_sq", "f_n", "fn_abs", "fn_sq", "fn_n", "s_abs", "s_sq", "s_n"):
        sums[c] = g[c].fillna(0).to_numpy(float) if c in g else np.zeros(len(g))
    out = {}
    for name in METRICS:
        mt = metric_registry.REGISTRY[name]
        out[name] = (sums[mt.num], sums[mt.den], mt.scale, mt.stat == "rmse")
    return out


def calc_bootstrap(g: pd.DataFrame, *, rng: np.random.Generator, level: float, n_boot: int) -> dict[str, float]:
    """Percentile CIs of the six metrics for one group's per-structure rows."""
    n = len(g)
    arrays = _metric_arrays(g)
    stats = {k: [] for k in arrays}
    block = max(1, min(n_boot, BLOCK_CELLS // max(n, 1)))
    done = 0
    while done < n_boot:
        b = min(block, n_boot - done)
        w = rng.multinomial(n, np.full(n, 1.0 / n), size=b).astype(float)
        for k, (num, den, _, _) in arrays.items():
            d = w @ den
            with np.errstate(invalid="ignore", divide="ignore"):
                stats[k].append(np.where(d > 0, (w @ num) / d, np.nan))
        done += b
    lo_q, hi_q = (100 - level) / 2, 100 - (100 - level) / 2
    out = {}
    for k, (_, den, scale, root) in arrays.items():
        v = np.concatenate(stats[k])
        if root:
            v = np.sqrt(v)
        if den.sum() == 0 or np.all(np.isnan(v)):
            out[f"{k}_lo"] = out[f"{k}_hi"] = np.nan
            continue
        lo, hi = np.nanpercentile(v, [lo_q, hi_q])
        out[f"{k}_lo"], out[f"{k}_hi"] = scale * lo, scale * hi
    return out


def bootstrap_metrics(
    per: pd.DataFrame, *, keys: Sequence[str], level: float = 95.0, seed: int = 0, n_boot: int = 1000
) -> pd.DataFrame:
    """One row per group of ``keys`` with ``<metric>_lo``/``<metric>_hi`` columns."""
    rows = []
    ok = per[per["status"] == "ok"]
    for key, g in ok.groupby(list(keys), sort=True, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        ci = calc_bootstrap(g, rng=group_rng(seed, key), level=level, n_boot=n_boot)
        rows.append({**dict(zip(keys, key, strict=True)), **ci})
    cols = [*keys, *(f"{k}_{s}" for k in METRICS for s in ("lo", "hi"))]
    return pd.DataFrame(rows, columns=cols)

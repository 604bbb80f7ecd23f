"""Ensemble uncertainty against true error (DESIGN.md, "Uncertainty (ensembles)").

For an ensemble of K models on structure j with N_j atoms i (max-deviation, |.| = vector norm)::

    U_E = max_k |E_k - <E>| / N_j        e_E = |E_ref - <E>| / N_j
    U_F,atom = max_k |F_ik - <F_i>|       e_F,atom = |F_ref,i - <F_i>|
    U_F,cfg = max_i U_F,atom              e_F,cfg = max_i e_F,atom

where <.> is the mean over the K members and the reference is the one at the dataset's level of
theory. Per-atom extrapolation grades (e.g. D-optimality gamma) of a single model are analysed the
same way with U = the grade (U_cfg = max grade) and e = that model's own error.

This module is pure numpy/pandas: the ``calc_*`` functions compute U and e, ``spearman_ci``,
``calibration_bins`` and ``threshold_separation`` judge them, and ``uq_summary`` /
``uq_calibration`` / ``uq_threshold`` turn a :class:`queries.uq_data.UQData` (read from the
warehouse in streamed batches) into report tables. Stored values are eV and eV/Å; reported values
are meV/atom (energy) and meV/Å (forces); grades are unitless.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy.stats import rankdata

from queries.metrics import QUANTITY_UNITS
from queries.uq_options import DEFAULT_N_BOOT, By, Level, Quantity, Show

if TYPE_CHECKING:
    from queries.uq_data import UQData

# Resamples larger than this are ranked on m-subsamples (m-out-of-n bootstrap, see spearman_ci):
# re-ranking 7.5M atoms a few hundred times would cost minutes for a CI width of ~1e-4.
BOOT_EXACT_MAX_N = 50_000
DEFAULT_SEED = 0


# (quantity, level) pairs that exist: energy has no per-atom form.
PAIRS = ((Quantity.ENERGY, Level.STRUCTURE), (Quantity.FORCE, Level.STRUCTURE),
         (Quantity.FORCE, Level.ATOM))
# the tables' units, from the metric registry (queries.metrics)
REPORT_UNIT = {Quantity.ENERGY: QUANTITY_UNITS["energy"], Quantity.FORCE: QUANTITY_UNITS["force"]}


# -- U and e ----------------------------------------------------------------------------------


def calc_energy_uq(
    energies: NDArray[np.float64], ref: NDArray[np.float64], n_atoms: NDArray[np.integer]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """U_E and e_E (eV/atom) of structures from member energies ``(n, K)`` (eV, total)."""
    energies = np.asarray(energies, dtype=np.float64)
    mean = energies.mean(axis=1)
    u = np.abs(energies - mean[:, None]).max(axis=1) / n_atoms
    e = np.abs(np.asarray(ref, dtype=np.float64) - mean) / n_atoms
    return u, e


def calc_force_uq(
    forces: NDArray[np.floating], ref: NDArray[np.floating]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """U_F,atom and e_F,atom (eV/Å) from member forces ``(K, n_atoms, 3)`` and reference ``(n_atoms, 3)``.

    Members are visited one at a time so the temporaries stay one member's size; float32 input
    is promoted to float64 per member.
    """
    k = forces.shape[0]
    mean = np.zeros(forces.shape[1:], dtype=np.float64)
    for f in forces:
        mean += f
    mean /= k
    u = np.zeros(forces.shape[1], dtype=np.float64)
    for f in forces:
        np.maximum(u, _norm(f - mean), out=u)
    return u, _norm(np.asarray(ref, dtype=np.float64) - mean)


def calc_model_force_error(forces: NDArray[np.floating], ref: NDArray[np.floating]) -> NDArray[np.float64]:
    """e_F,atom of one model (eV/Å): |F_ref,i - F_i|."""
    return _norm(np.asarray(ref, dtype=np.float64) - forces)


def structure_max(values: NDArray[np.float64], counts: NDArray[np.integer]) -> NDArray[np.float64]:
    """Per-structure maximum of per-atom ``values`` laid out structure after structure."""
    counts = np.asarray(counts)
    if counts.size == 0:
        return np.zeros(0)
    if (counts <= 0).any():
        raise ValueError("every structure needs at least one atom")
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    return np.maximum.reduceat(values, starts)


def _norm(v: NDArray[np.float64]) -> NDArray[np.float64]:
    return np.sqrt(np.einsum("ij,ij->i", v, v))


# -- judging U against e ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RankCorrelation:
    n: int
    rho: float  # NaN when undefined
    ci_low: float
    ci_high: float
    method: str
    note: str | None = None


def spearman(u: NDArray[np.float64], e: NDArray[np.float64]) -> float:
    """Spearman rho (average ranks for ties); NaN when either side is constant or n < 2."""
    if len(u) < 2:
        return math.nan
    return _pearson(rankdata(u), rankdata(e))


def _pearson(a: NDArray[np.float64], b: NDArray[np.float64]) -> float:
    a = a - a.mean()
    b = b - b.mean()
    den = math.sqrt(float(a @ a) * float(b @ b))
    return float(a @ b) / den if den > 0 else math.nan


def spearman_ci(
    u: NDArray[np.float64],
    e: NDArray[np.float64],
    *,
    n_boot: int = DEFAULT_N_BOOT,
    seed: int = DEFAULT_SEED,
    confidence: float = 0.95,
) -> RankCorrelation:
    """Spearman rho with a seeded percentile-bootstrap confidence interval.

    Up to ``BOOT_EXACT_MAX_N`` pairs, every resample is re-ranked (ordinary bootstrap). Beyond, the
    m-out-of-n bootstrap is used: resamples of m = BOOT_EXACT_MAX_N pairs give the spread of rho,
    scaled by sqrt(m/n) around the full-sample rho (rho is a smooth statistic whose standard error
    goes as 1/sqrt(n)); ``method`` says which. Constant U or e gives NaN with a note, not an error.
    """
    u = np.asarray(u, dtype=np.float64)
    e = np.asarray(e, dtype=np.float64)
    n = len(u)
    if n < 3:
        return RankCorrelation(n, math.nan, math.nan, math.nan, "none",
                               f"only {n} pairs: rho is undefined")
    if np.ptp(u) == 0:
        return RankCorrelation(n, math.nan, math.nan, math.nan, "none",
                               f"uncertainty is constant ({u[0]:.3g} everywhere): rho is undefined")
    if np.ptp(e) == 0:
        return RankCorrelation(n, math.nan, math.nan, math.nan, "none",
                               "error is constant: rho is undefined")
    rho = spearman(u, e)
    rng = np.random.default_rng(seed)
    m = min(n, BOOT_EXACT_MAX_N)
    reps = np.empty(n_boot)
    for b in range(n_boot):
        idx = rng.integers(0, n, size=m)
        reps[b] = spearman(u[idx], e[idx])
    reps = reps[np.isfinite(reps)]
    if reps.size == 0:
        return RankCorrelation(n, rho, math.nan, math.nan, "bootstrap", "every resample was constant")
    alpha = (1 - confidence) / 2
    lo, hi = np.quantile(reps, [alpha, 1 - alpha])
    if m == n:
        return RankCorrelation(n, rho, float(lo), float(hi), f"bootstrap ({n_boot}, seed {seed})")
    scale = math.sqrt(m / n)
    centre = float(np.mean(reps))
    return RankCorrelation(
        n, rho, rho + (float(lo) - centre) * scale, rho + (float(hi) - centre) * scale,
        f"m-out-of-n bootstrap (m={m}, {n_boot}, seed {seed})",
    )


def calibration_bins(u: NDArray[np.float64], e: NDArray[np.float64], *, n_bins: int = 10) -> pd.DataFrame:
    """Binned error vs uncertainty: equal-count bins of U, each with its count and mean/RMS error.

    Ties in U never straddle a bin edge, so constant U gives one bin.
    """
    u = np.asarray(u, dtype=np.float64)
    e = np.asarray(e, dtype=np.float64)
    cols = ["bin", "u_low", "u_high", "n", "mean_u", "mean_e", "rms_e", "median_e"]
    if len(u) == 0:
        return pd.DataFrame(columns=cols)
    edges = np.unique(np.quantile(u, np.linspace(0, 1, n_bins + 1)))
    which = np.clip(np.searchsorted(edges, u, side="right") - 1, 0, max(len(edges) - 2, 0))
    rows = []
    for b in np.unique(which):
        sel = which == b
        ub, eb = u[sel], e[sel]
        rows.append([int(b), float(ub.min()), float(ub.max()), int(sel.sum()), float(ub.mean()),
                     float(eb.mean()), float(np.sqrt(np.mean(eb**2))), float(np.median(eb))])
    out = pd.DataFrame(rows, columns=cols)
    out["bin"] = np.arange(len(out))
    return out


def top_cut(values: NDArray[np.float64], fraction: float) -> float:
    """The value at or above which the top ``fraction`` of ``values`` lie (ties included)."""
    if not 0 < fraction <= 1:
        raise ValueError(f"a top fraction must be in (0, 1], got {fraction}")
    k = max(1, math.ceil(fraction * len(values)))
    return float(np.partition(values, len(values) - k)[len(values) - k])


def threshold_separation(
    u: NDArray[np.float64],
    e: NDArray[np.float64],
    *,
    threshold: float | None = None,
    top_fraction: float | None = None,
    high_error_fraction: float = 0.1,
    error_threshold: float | None = None,
) -> dict[str, float | int]:
    """Precision and recall of flagging cases by U in catching the highest-error cases.

    Flagged: U > ``threshold`` (a value), or U at or above the cut of its top ``top_fraction``.
    High-error: e > ``error_threshold``, or e at or above the cut of its top ``high_error_fraction``.
    """
    if (threshold is None) == (top_fraction is None):
        raise ValueError("give exactly one of threshold (a value) or top_fraction")
    u = np.asarray(u, dtype=np.float64)
    e = np.asarray(e, dtype=np.float64)
    n = len(u)
    if n == 0:
        return {"n": 0, "u_cut": math.nan, "e_cut": math.nan, "n_flagged": 0, "n_high": 0,
                "n_caught": 0, "precision": math.nan, "recall": math.nan, "base_rate": math.nan}
    flagged = u > threshold if threshold is not None else u >= (u_cut := top_cut(u, top_fraction))
    if error_threshold is not None:
        high, e_cut = e > error_threshold, error_threshold
    else:
        e_cut = top_cut(e, high_error_fraction)
        high = e >= e_cut
    caught = int((flagged & high).sum())
    n_flag, n_high = int(flagged.sum()), int(high.sum())
    return {
        "n": n, "u_cut": float(threshold if threshold is not None else u_cut), "e_cut": float(e_cut),
        "n_flagged": n_flag, "n_high": n_high, "n_caught": caught,
        "precision": caught / n_flag if n_flag else math.nan,
        "recall": caught / n_high if n_high else math.nan,
        "base_rate": n_high / n,
    }


# -- reports over UQData ----------------------------------------------------------------------


def _pairs(level: Level | None) -> list[tuple[Quantity, Level]]:
    return [(q, lv) for q, lv in PAIRS if level is None or lv == level]


def _groups(data: UQData, quantity: Quantity, level: Level, by: By | None):
    """Yield (group label, u, e, structure rows) for the whole set or each group of ``by``."""
    st = data.structures
    used = st[st[f"{quantity}_status"] == "used"]
    if level is Level.STRUCTURE:
        u, e = used[f"u_{quantity}"].to_numpy(), used[f"e_{quantity}"].to_numpy()
    else:
        u, e = data.atom_u, data.atom_e
    if by is None:
        yield "all", u, e, st
        return
    if by is By.ELEMENT:
        symbols = data.atom_symbols() if level is Level.ATOM else None
        for el in sorted({x for s in st["elements"] for x in s.split(",")}):
            rows = st[st["elements"].str.split(",").map(lambda xs, el=el: el in xs)]
            if level is Level.STRUCTURE:
                sel = used["elements"].str.split(",").map(lambda xs, el=el: el in xs).to_numpy()
            else:
                sel = symbols == el
            yield el, u[sel], e[sel], rows
        return
    col = by.value
    keys = st[col].astype("string").fillna("-")
    for key in sorted(keys.unique()):
        rows = st[keys == key]
        if level is Level.STRUCTURE:
            sel = (used[col].astype("string").fillna("-") == key).to_numpy()
        else:
            sel = (keys.to_numpy()[data.atom_row] == key) if len(data.atom_row) else np.zeros(0, bool)
        yield key, u[sel], e[sel], rows


def _status_counts(rows: pd.DataFrame, quantity: Quantity) -> dict[str, int]:
    vc = rows[f"{quantity}_status"].value_counts()
    return {f"n_{s}": int(vc.get(s, 0)) for s in ("missing", "failed", "no_reference")}


def uq_summary(
    data: UQData,
    *,
    level: Level | None = None,
    by: By | None = None,
    n_boot: int = DEFAULT_N_BOOT,
    seed: int = DEFAULT_SEED,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Spearman rho (with CI) between U and e per quantity, level and group.

    ``n`` counts the pairs used (structures or atoms); ``n_missing``/``n_failed``/``n_no_reference``
    count structures excluded because a member had no prediction, a member failed (or gave NaN),
    or the reference lacks that label. ``mean_u``/``mean_e`` are in meV/atom or meV/Å (grades:
    ``mean_u`` is the mean grade).
    """
    rows = []
    for quantity, lv in _pairs(level):
        for key, u, e, st_rows in _groups(data, quantity, lv, by):
            rc = spearman_ci(u, e, n_boot=n_boot, seed=seed, confidence=confidence)
            note = "; ".join(x for x in (data.note, rc.note) if x) or None
            rows.append({
                "source": data.source, "dataset": ",".join(data.datasets), "quantity": str(quantity),
                "level": str(lv), "group": key, "n": rc.n, **_status_counts(st_rows, quantity),
                "spearman_rho": rc.rho, "ci_low": rc.ci_low, "ci_high": rc.ci_high,
                "mean_u": float(np.mean(u)) * data.u_scale if len(u) else math.nan,
                "mean_e": float(np.mean(e)) * 1000.0 if len(e) else math.nan,
                "unit": REPORT_UNIT[quantity], "ci_method": rc.method, "note": note,
            })
    return pd.DataFrame(rows)


def uq_calibration(data: UQData, *, level: Level | None = None, n_bins: int = 10) -> pd.DataFrame:
    """Calibration tables (equal-count bins of U: count, mean U, mean/RMS/median e) in report units."""
    parts = []
    for quantity, lv in _pairs(level):
        (_, u, e, _), = _groups(data, quantity, lv, None)
        cal = calibration_bins(u, e, n_bins=n_bins)
        for c in ("u_low", "u_high", "mean_u"):
            cal[c] = cal[c] * data.u_scale
        for c in ("mean_e", "rms_e", "median_e"):
            cal[c] = cal[c] * 1000.0
        cal.insert(0, "level", str(lv))
        cal.insert(0, "quantity", str(quantity))
        cal["unit"] = REPORT_UNIT[quantity]
        parts.append(cal)
    return pd.concat(parts, ignore_index=True)


def uq_threshold(
    data: UQData,
    *,
    level: Level | None = None,
    threshold: float | None = None,
    top_fraction: float | None = None,
    high_error_fraction: float = 0.1,
) -> pd.DataFrame:
    """Precision/recall of U in catching the top ``high_error_fraction`` of errors.

    ``threshold`` is in report units (meV/atom, meV/Å; for grades the grade itself, e.g. 1.0 for
    gamma); ``top_fraction`` flags that share of the highest U instead.
    """
    rows = []
    for quantity, lv in _pairs(level):
        (_, u, e, _), = _groups(data, quantity, lv, None)
        thr = None if threshold is None else threshold / data.u_scale
        res = threshold_separation(u, e, threshold=thr, top_fraction=top_fraction,
                                   high_error_fraction=high_error_fraction)
        res["u_cut"] *= data.u_scale
        res["e_cut"] *= 1000.0
        mean_e = lambda sel: float(np.mean(e[sel])) * 1000.0 if sel.any() else math.nan  # noqa: E731
        flagged = u >= res["u_cut"] / data.u_scale if threshold is None else u > thr
        rows.append({
            "source": data.source, "quantity": str(quantity), "level": str(lv),
            "rule": f"U > {threshold:g}" if threshold is not None else f"top {top_fraction:g} of U",
            "high_error": f"top {high_error_fraction:g} of e", **res,
            "mean_e_flagged": mean_e(flagged), "mean_e_unflagged": mean_e(~flagged),
            "unit": REPORT_UNIT[quantity],
        })
    return pd.DataFrame(rows)


def apply_comparison_rule(data: UQData, *, common: bool) -> None:
    """Refuse an ensemble comparison with gaps unless ``common``; then say what was left out.

    Grades of one model compare no models: structures without grades or predictions are
    counted (``n_missing``, ``n_failed``) and left out, as documented in docs/UQ.md.
    """
    from warehouse.errors import NoMatch

    if data.kind != "ensemble":
        return
    st = data.structures
    gap = st["energy_status"].isin(["missing", "failed"]) | st["force_status"].isin(["missing", "failed"])
    if not gap.any():
        return
    counts = {s: int(((st["energy_status"] == s) | (st["force_status"] == s)).sum())
              for s in ("missing", "failed")}
    detail = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    if not common:
        raise NoMatch(f"{data.source}: members lack an ok prediction for {int(gap.sum())} of"
                      f" {len(st)} structures ({detail}); models are compared on the same"
                      " structures: pass --common to use the structures all of them share")
    named = ", ".join(f"{d} #{i}" for d, i in zip(st.loc[gap, "dataset"][:8],
                                                 st.loc[gap, "structure_id"][:8], strict=True))
    more = f" and {int(gap.sum()) - 8} more" if gap.sum() > 8 else ""
    data.note = "; ".join(x for x in (data.note, f"--common: {int(gap.sum())} of {len(st)}"
                                      f" structures left out ({detail}): {named}{more}") if x)


def uq_report(
    wh,
    *,
    datasets: list[str],
    ensemble: str | None = None,
    grades: str | None = None,
    model: str | None = None,
    show: Show = Show.SUMMARY,
    level: Level | None = None,
    by: By | None = None,
    threshold: float | None = None,
    top_fraction: float | None = None,
    high_error_fraction: float = 0.1,
    n_bins: int = 10,
    n_boot: int = DEFAULT_N_BOOT,
    seed: int = DEFAULT_SEED,
    energy_offset: str = "none",
    common: bool = False,
) -> tuple[pd.DataFrame, UQData]:
    """Read an ensemble's (or a model's grades') U and e on ``datasets`` and build one report.

    Exactly one source: ``ensemble``, or ``grades`` (a kind) with ``model``. For ``threshold``
    reports without a rule, grades use U > 1 (the gamma = 1 extrapolation threshold) and
    ensembles flag their top 10% of U. The comparison rule (:mod:`queries.selection`): every
    member needs an ok prediction for every structure with a reference, unless ``common``
    (then the others are left out, counted and named). ``energy_offset="per-element"`` removes
    each member's per-element energy shifts (the leaderboard's fit) before U_E and e_E.
    """
    from queries.uq_data import read_ensemble_uq, read_grades_uq
    from warehouse.errors import NoMatch

    if (ensemble is None) == (grades is None) or (grades is not None and model is None):
        raise NoMatch("give --ensemble NAME, or --grades KIND with --model NAME")
    if threshold is not None and top_fraction is not None:
        raise NoMatch("give either --threshold or --top-fraction, not both")
    if top_fraction is not None and not 0 < top_fraction <= 1:
        raise NoMatch(f"--top-fraction must be in (0, 1], got {top_fraction}")
    if not 0 < high_error_fraction <= 1:
        raise NoMatch(f"--high-error-fraction must be in (0, 1], got {high_error_fraction}")
    if ensemble is not None:
        data = read_ensemble_uq(wh, ensemble=ensemble, datasets=datasets, energy_offset=energy_offset)
    else:
        data = read_grades_uq(wh, model=model, kind=grades, datasets=datasets,
                              energy_offset=energy_offset)
    apply_comparison_rule(data, common=common)
    if energy_offset == "per-element":
        data.note = "; ".join(x for x in (data.note, "energies after each member's per-element"
                                          " least-squares shift") if x)
    if show is Show.CALIBRATION:
        return uq_calibration(data, level=level, n_bins=n_bins), data
    if show is Show.THRESHOLD:
        if threshold is None and top_fraction is None:
            threshold, top_fraction = (1.0, None) if grades is not None else (None, 0.1)
        return uq_threshold(data, level=level, threshold=threshold, top_fraction=top_fraction,
                            high_error_fraction=high_error_fraction), data
    return uq_summary(data, level=level, by=by, n_boot=n_boot, seed=seed), data

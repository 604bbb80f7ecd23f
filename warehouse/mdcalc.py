"""MD observables from time series and member values (pure numpy; no database).

Used by the MD loader (observables derived at ingest, each stored with the method that made it)
and by ``queries.md`` (the same numbers recomputed on demand over any window), so both agree by
construction. Like ``errorsums``, this lives in the core because both layers above need it.

Definitions (DESIGN.md, issue 7):

- Energy drift of an NVE segment with total energy E(t) of N atoms:
  ``max_abs = max_t |E(t) - E(t0)| / N`` (eV/atom) and ``slope`` = the least-squares slope of
  E(t)/N against t (eV/atom/ps). E(t0) is the first sample of the segment.
- Spall strength = the largest tensile stress (GPa) anywhere in a stress series or profile set.
  Stress is ASE's sign (positive = tensile); a *pressure* column (positive = compressive, as GPUMD
  and LAMMPS write) is negated first.
- Window statistics: mean and population standard deviation (the fluctuation) of the samples.
- Ensemble statistics over K members: mean, standard deviation in the population form (divide by
  K) and the sample form (divide by K-1), each labelled, and the relative uncertainty std/|mean|.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray


@dataclass(frozen=True, slots=True)
class Drift:
    max_abs_per_atom: float  # eV/atom
    slope_per_atom_per_ps: float  # eV/atom/ps
    n_samples: int
    duration_ps: float


@dataclass(frozen=True, slots=True)
class WindowStats:
    mean: float
    std: float  # population form: the fluctuation about the mean
    n_samples: int


@dataclass(frozen=True, slots=True)
class MemberStats:
    n: int
    mean: float
    std_population: float  # divide by K
    std_sample: float | None  # divide by K - 1; None for one member
    rel_population: float | None  # std_population / |mean|
    rel_sample: float | None


def _finite_1d(values: ArrayLike, what: str) -> NDArray[np.float64]:
    a = np.asarray(values, dtype=np.float64).ravel()
    if not np.isfinite(a).all():
        raise ValueError(f"{what} holds non-finite values")
    return a


def calc_energy_drift(time_ps: ArrayLike, total_energy_ev: ArrayLike, n_atoms: int) -> Drift:
    """Energy drift of one NVE segment (see the module docstring)."""
    t = _finite_1d(time_ps, "time")
    e = _finite_1d(total_energy_ev, "total energy")
    if t.shape != e.shape:
        raise ValueError(f"time has {t.size} samples, energy {e.size}")
    if t.size < 2:
        raise ValueError("energy drift needs at least two samples")
    if n_atoms <= 0:
        raise ValueError("energy drift per atom needs a positive number of atoms")
    per_atom = e / n_atoms
    max_abs = float(np.max(np.abs(per_atom - per_atom[0])))
    slope = float(np.polyfit(t - t[0], per_atom, 1)[0])
    return Drift(max_abs, slope, int(t.size), float(t[-1] - t[0]))


def calc_window_stats(values: ArrayLike) -> WindowStats:
    """Mean and fluctuation (population standard deviation) of the samples in a window."""
    v = _finite_1d(values, "values")
    if v.size == 0:
        raise ValueError("the window holds no samples")
    return WindowStats(float(v.mean()), float(v.std(ddof=0)), int(v.size))


def calc_spall_strength(values: ArrayLike, *, is_pressure: bool) -> float:
    """Largest tensile stress (GPa, positive) among ``values`` (a stress or pressure column)."""
    v = _finite_1d(values, "stress")
    if v.size == 0:
        raise ValueError("no stress samples")
    return float(np.max(-v if is_pressure else v))


def calc_member_stats(values: ArrayLike) -> MemberStats:
    """Statistics of one observable across ensemble members (both standard deviations)."""
    v = _finite_1d(values, "member values")
    if v.size == 0:
        raise ValueError("no member values")
    mean = float(v.mean())
    pop = float(v.std(ddof=0))
    sample = float(v.std(ddof=1)) if v.size > 1 else None
    rel = (lambda s: None if s is None or mean == 0 else s / abs(mean))
    return MemberStats(int(v.size), mean, pop, sample, rel(pop), rel(sample))

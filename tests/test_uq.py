"""Pure uncertainty functions (queries.uq) against independent computations; no database."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import spearmanr

from queries import uq


@pytest.fixture
def rng():
    return np.random.default_rng(7)


def test_force_uq_matches_naive_definition(rng):
    k, n = 5, 40
    forces = rng.normal(size=(k, n, 3))
    ref = rng.normal(size=(n, 3))
    u, e = uq.calc_force_uq(forces, ref)
    mean = forces.mean(axis=0)
    u_naive = np.max([np.linalg.norm(forces[j] - mean, axis=1) for j in range(k)], axis=0)
    np.testing.assert_allclose(u, u_naive, rtol=0, atol=1e-12)
    np.testing.assert_allclose(e, np.linalg.norm(ref - mean, axis=1), rtol=0, atol=1e-12)
    u32, e32 = uq.calc_force_uq(forces.astype(np.float32), ref.astype(np.float32))
    assert u32.dtype == np.float64
    np.testing.assert_allclose(u32, u_naive, rtol=1e-5)


def test_energy_uq_and_structure_max():
    energies = np.array([[1.0, 2.0, 3.0], [-4.0, -4.0, -4.0]])
    u, e = uq.calc_energy_uq(energies, np.array([0.0, -2.0]), np.array([2, 4]))
    np.testing.assert_allclose(u, [0.5, 0.0])
    np.testing.assert_allclose(e, [1.0, 0.5])
    np.testing.assert_array_equal(uq.structure_max(np.array([1, 5, 2, 7, 0.0]), np.array([2, 3])),
                                  [5, 7])


@pytest.mark.parametrize("n", [10, 500], ids=["small", "medium"])
def test_spearman_matches_scipy(rng, n):
    u = rng.random(n)
    e = u + rng.normal(scale=0.3, size=n)
    e[:3] = e[3]  # ties
    assert uq.spearman(u, e) == pytest.approx(spearmanr(u, e).statistic, abs=1e-12)


def test_bootstrap_ci_is_seeded_and_brackets_rho(rng):
    u = rng.random(300)
    e = u + rng.normal(scale=0.5, size=300)
    a = uq.spearman_ci(u, e, n_boot=200, seed=3)
    b = uq.spearman_ci(u, e, n_boot=200, seed=3)
    assert a == b
    assert a.ci_low < a.rho < a.ci_high
    assert a.method.startswith("bootstrap")


def test_m_out_of_n_bootstrap_for_large_samples(rng, monkeypatch):
    monkeypatch.setattr(uq, "BOOT_EXACT_MAX_N", 500)
    u = rng.random(5000)
    e = u + rng.normal(scale=0.5, size=5000)
    rc = uq.spearman_ci(u, e, n_boot=200, seed=0)
    assert rc.method.startswith("m-out-of-n")
    assert rc.ci_low < rc.rho < rc.ci_high
    # the interval scales like 1/sqrt(n): close to the Fisher-z normal approximation's width
    z_width = 2 * 1.96 * math.sqrt((1 + rc.rho**2 / 2) / (5000 - 3)) * (1 - rc.rho**2)
    assert 0.5 < (rc.ci_high - rc.ci_low) / z_width < 2


@pytest.mark.parametrize("u", [np.zeros(50), np.full(50, 0.3)], ids=["zero", "constant"])
def test_constant_uncertainty_gives_undefined_rho_with_a_reason(u, rng):
    rc = uq.spearman_ci(u, rng.random(50))
    assert math.isnan(rc.rho) and math.isnan(rc.ci_low)
    assert "constant" in rc.note and "undefined" in rc.note


def test_too_few_pairs():
    rc = uq.spearman_ci(np.array([1.0]), np.array([2.0]))
    assert rc.n == 1 and math.isnan(rc.rho) and "only 1" in rc.note


def test_calibration_bins_counts_and_means(rng):
    u = rng.random(1000)
    e = 2 * u
    cal = uq.calibration_bins(u, e, n_bins=10)
    assert cal["n"].sum() == 1000 and len(cal) == 10
    np.testing.assert_allclose(cal["mean_e"], 2 * cal["mean_u"])
    assert (np.diff(cal["mean_u"]) > 0).all()
    one = uq.calibration_bins(np.zeros(20), rng.random(20))
    assert len(one) == 1 and one["n"].iloc[0] == 20


def test_threshold_separation_by_hand():
    u = np.array([0.1, 0.9, 0.8, 0.2, 0.7, 0.3, 0.05, 0.6, 0.4, 0.5])
    e = np.array([0.0, 1.0, 0.1, 0.0, 0.9, 0.0, 0.0, 0.0, 0.0, 0.0])
    # high-error = top 20% of e = {1, 4}; flagged U > 0.65 = {1, 2, 4}
    r = uq.threshold_separation(u, e, threshold=0.65, high_error_fraction=0.2)
    assert (r["n_flagged"], r["n_high"], r["n_caught"]) == (3, 2, 2)
    assert r["precision"] == pytest.approx(2 / 3) and r["recall"] == 1.0
    assert r["base_rate"] == pytest.approx(0.2)
    # top 10% of U = {1}
    r = uq.threshold_separation(u, e, top_fraction=0.1, high_error_fraction=0.2)
    assert (r["n_flagged"], r["n_caught"], r["precision"], r["recall"]) == (1, 1, 1.0, 0.5)
    with pytest.raises(ValueError):
        uq.threshold_separation(u, e)

"""Exact binomial and multinomial counts (stochem.multinomial) against scipy's distributions.

Every case is judged by a chi-square goodness-of-fit test of the draws against
the exact probabilities (tails lumped into end bins of expected count >= 20)
at a Bonferroni-corrected family level, so a correct sampler fails with
probability below ``FAMILY_ALPHA`` whatever the seed; a wrong branch (inversion,
BTRS, the flip to ``p > 1/2``, the shortcut for rows settled by one uniform)
shows up as p-values of zero.
"""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import stochem as se
from stochem import devices
from stochem import multinomial as multinomial_module
from stochem.multinomial import binomial, multinomial
from tests.mc_checks import FAMILY_ALPHA, assert_mean_matches

DRAWS = 20_000

# (n, p): inversion (n·min(p, 1−p) < 10), BTRS (>= 10), flipped (p > 1/2), tiny and huge n.
BINOMIAL_CASES = [(1, 0.3), (10, 0.5), (7, 0.9), (50, 0.1), (30, 0.4), (12, 0.85), (1000, 0.3),
                  (10**6, 1e-5), (10**6, 0.37), (10**6, 0.999), (10**6, 2e-5), (200, 0.04)]


def lumped_chi_square_pvalue(draws, pmf_support, pmf):
    """p-value of the chi-square test of integer ``draws`` against ``pmf`` on ``pmf_support``,
    with the bins from each end merged until every bin expects at least 20 draws."""
    expected = pmf * draws.size
    observed = np.array([(draws == k).sum() for k in pmf_support], dtype=float)
    assert observed.sum() == draws.size, "a draw fell outside the support"
    bins_observed, bins_expected, run_observed, run_expected = [], [], 0.0, 0.0
    for count, expectation in zip(observed, expected):
        run_observed += count
        run_expected += expectation
        if run_expected >= 20:
            bins_observed.append(run_observed)
            bins_expected.append(run_expected)
            run_observed = run_expected = 0.0
    if bins_observed:
        bins_observed[-1] += run_observed
        bins_expected[-1] += run_expected
    bins_observed, bins_expected = np.array(bins_observed), np.array(bins_expected)
    if bins_observed.size < 2:
        return 1.0
    return stats.chisquare(bins_observed, bins_expected * bins_observed.sum() / bins_expected.sum()).pvalue


@pytest.fixture(scope="module")
def binomial_draws():
    trials = np.repeat([float(n) for n, _ in BINOMIAL_CASES], DRAWS)
    probs = np.repeat([p for _, p in BINOMIAL_CASES], DRAWS)
    draws = jax.jit(binomial)(jax.random.key(0), jnp.asarray(trials), jnp.asarray(probs))
    return np.asarray(draws).reshape(len(BINOMIAL_CASES), DRAWS)


def test_binomial_draws_follow_the_binomial_distribution(binomial_draws):
    threshold = FAMILY_ALPHA / len(BINOMIAL_CASES)
    for (n, p), draws in zip(BINOMIAL_CASES, binomial_draws):
        assert np.all(draws == np.round(draws)) and draws.min() >= 0 and draws.max() <= n, (n, p)
        low, high = stats.binom.ppf(1e-9, n, p), stats.binom.isf(1e-9, n, p)
        support = np.arange(low, high + 1)
        pmf = stats.binom.pmf(support, n, p)
        pmf[0] += stats.binom.cdf(low - 1, n, p)
        pmf[-1] += stats.binom.sf(high, n, p)
        clipped = np.clip(draws, low, high)
        pvalue = lumped_chi_square_pvalue(clipped, support, pmf)
        assert pvalue > threshold, (n, p, pvalue)


def test_binomial_edge_cases_and_complement():
    trials = jnp.array([0.0, 5.0, 5.0, 3.0, np.nan, 4.0])
    probs = jnp.array([0.4, 0.0, 1.0, np.nan, 0.5, 1e-300])
    draws = np.asarray(jax.jit(binomial)(jax.random.key(1), trials, probs))
    np.testing.assert_array_equal(draws[:3], [0.0, 0.0, 5.0])
    assert np.isnan(draws[3]) and np.isnan(draws[4]) and draws[5] == 0.0
    # A complement given apart is used as is: p rounded to 1 with complement 1e-6 is not p = 1.
    many = np.asarray(jax.jit(binomial)(jax.random.key(2), jnp.full(4000, 1e6), jnp.full(4000, 1.0),
                                        jnp.full(4000, 1e-6)))
    assert_mean_matches(1e6 - many, 1.0)


def quarter_grid_uniforms(key, num_rows, dtype):
    """Coarse uniforms on a grid of four (``u = coarse + v / 4``): most thresholds fall inside a
    cell, so the draws must come from the refined uniform that a 32-bit grid almost never needs."""
    return jnp.floor(jax.random.uniform(key, (num_rows,), dtype) * 4.0) / 4.0, jnp.asarray(0.25, dtype)


@pytest.mark.parametrize("coarse", ["32 bits", "quarters"])
@pytest.mark.parametrize("num_trials", [1, 3])
def test_multinomial_counts_follow_the_multinomial_distribution(num_trials, coarse, monkeypatch):
    """Small S: every count vector's frequency against scipy's multinomial, for rows that the first
    uniform often settles (one dominant category), rows it never does, and rows whose mode has
    less than half the probability (the binomial of the draws away from it is flipped); S = 1 is
    drawn by its own branch; "quarters" makes the coarse uniforms undecided almost everywhere."""
    if coarse == "quarters":
        monkeypatch.setattr(multinomial_module, "coarse_uniforms", quarter_grid_uniforms)
    rows = np.array([[0.2, 0.5, 0.3], [0.9, 0.06, 0.04], [0.02, 0.01, 0.97], [0.0, 0.7, 0.3],
                     [0.3, 0.35, 0.35]])
    probs = jnp.asarray(np.repeat(rows, DRAWS, axis=0))
    counts = np.asarray(jax.jit(multinomial)(jax.random.key(3), num_trials, probs))
    counts = counts.reshape(len(rows), DRAWS, 3)
    outcomes = [c for c in itertools.product(range(num_trials + 1), repeat=3) if sum(c) == num_trials]
    for p, row_counts in zip(rows, counts):
        np.testing.assert_array_equal(row_counts.sum(axis=-1), num_trials)
        codes = row_counts @ np.array([16, 4, 1])
        support = np.array([c[0] * 16 + c[1] * 4 + c[2] for c in outcomes])
        pmf = np.array([stats.multinomial.pmf(c, num_trials, p) for c in outcomes])
        order = np.argsort(support)
        pvalue = lumped_chi_square_pvalue(codes, support[order], pmf[order])
        assert pvalue > FAMILY_ALPHA / len(rows), (p, pvalue)


MOMENT_ROWS = np.array([[0.005, 0.97, 0.01, 0.01, 0.005], [0.1, 0.05, 0.4, 0.3, 0.15], [0.2, 0.2, 0.2, 0.2, 0.2]])


def assert_multinomial_moments(num_trials, repeats):
    """Counts of ``repeats`` copies of each of :data:`MOMENT_ROWS`: mean S p and covariance
    S (diag p − p pᵀ) by z-scores."""
    probs = jnp.asarray(np.repeat(MOMENT_ROWS, repeats, axis=0))
    counts = np.asarray(jax.jit(multinomial)(jax.random.key(4), num_trials, probs)).reshape(3, repeats, 5)
    for p, row_counts in zip(MOMENT_ROWS, counts):
        np.testing.assert_array_equal(row_counts.sum(axis=-1), num_trials)
        assert_mean_matches(row_counts, num_trials * p)
        centred = row_counts - num_trials * p
        products = (centred[:, :, None] * centred[:, None, :]).reshape(len(centred), -1)
        covariance = num_trials * (np.diag(p) - np.outer(p, p))
        assert_mean_matches(products, covariance.ravel())


@pytest.mark.parametrize("coarse", ["32 bits", "quarters"])
@pytest.mark.parametrize("num_trials", [1, 40, 10**6])
def test_multinomial_mean_and_covariance(num_trials, coarse, monkeypatch):
    """Large and small S (S = 1 is its own branch), five categories, rows from nearly one-hot to
    flat; also with a grid of coarse uniforms so coarse that every path through the refined
    uniform is taken."""
    if coarse == "quarters":
        monkeypatch.setattr(multinomial_module, "coarse_uniforms", quarter_grid_uniforms)
    assert_multinomial_moments(num_trials, repeats=4000)


def test_accelerator_chunks_give_the_same_distribution(monkeypatch):
    """On an accelerator the undecided rows are finished 8192 at a time (here: two chunks, the
    second partly padding), with the same distribution."""
    monkeypatch.setattr(multinomial_module, "coarse_uniforms", quarter_grid_uniforms)
    monkeypatch.setattr(devices, "on_accelerator", lambda: True)
    assert multinomial_module.chunk_rows() == multinomial_module.ACCELERATOR_CHUNK == 8192
    assert_multinomial_moments(40, repeats=3000)  # other shapes than above: traced anew


@pytest.mark.parametrize("num_trials", [1, 7])
def test_multinomial_bad_rows_give_nan_and_others_are_unaffected(num_trials):
    probs = jnp.array([[0.5, 0.5], [np.nan, 0.5], [1.0, 0.0]])
    counts = np.asarray(jax.jit(multinomial)(jax.random.key(5), num_trials, probs))
    assert np.all(np.isnan(counts[1]))
    assert counts[0].sum() == num_trials and np.all(counts[2] == [num_trials, 0.0])


def test_one_category_takes_every_draw_and_a_one_component_mixture_samples():
    counts = np.asarray(jax.jit(multinomial)(jax.random.key(2), 9, jnp.array([[1.0], [np.nan], [1.0]])))
    np.testing.assert_array_equal(counts[[0, 2]], [[9.0], [9.0]])
    assert np.isnan(counts[1, 0])
    # A one-component mixture: every draw is the one label, so Monte Carlo EM is exact EM.
    points = np.random.default_rng(0).normal(size=(50, 2))
    model = se.models.GaussianMixture(1)
    exact = se.fit(model, points, num_iters=2).params.means
    for num_samples in (1, 5):
        sampled = se.fit(model, points, completion=se.monte_carlo(num_samples), num_iters=2).params.means
        np.testing.assert_allclose(sampled, exact, rtol=1e-12)

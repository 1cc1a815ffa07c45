"""Ascent-based MCEM: the sample grows as the iterates approach the fixed point, and the run stops."""

import jax
import numpy as np
import pytest

import stochem as se
from tests.mc_checks import assert_mean_matches
from tests.tracing import count_traces

MODEL = se.models.BinomialMixture(num_components=2, num_trials=10)
START = {"weights": [0.5, 0.5], "probs": [0.9, 0.1]}


def coin_data():
    rng = np.random.default_rng(0)
    return rng.binomial(10, np.where(rng.random(400) < 0.35, 0.75, 0.35))


def test_sample_grows_towards_the_fixed_point_and_the_run_stops():
    heads = coin_data()
    exact = se.fit(MODEL, heads, init=START, num_iters=2000, tol=1e-13)
    seeds = list(range(8))
    result = se.fit(MODEL, heads, init=START, num_iters=300, key=seeds,
                    completion=se.ascent_monte_carlo(10, 8000, tol=1e-3))
    assert np.all(result.converged) and np.all(np.asarray(result.num_iters) < 300)
    final_sizes = []
    for row, iterations in enumerate(np.asarray(result.num_iters)):
        sizes = np.asarray(result.trace.diagnostics.num_samples[row][:iterations])
        assert np.all(np.diff(sizes) >= 0) and sizes[-1] > sizes[0], sizes
        final_sizes.append(sizes[-1])
        upper = np.asarray(result.trace.diagnostics.delta_q_upper[row][:iterations])
        assert upper[-1] < 1e-3 and np.all(upper[1:-1] >= 1e-3)
    # Where a seed stops depends on its noise (final sizes of 40 to 8000 over 16 seeds, median about
    # 1200): the typical seed, not each one, ends with a sample many times the first.
    assert np.median(final_sizes) >= 20 * 10, final_sizes
    # A seed that stopped at iteration n holds exact EM's θ_n plus Monte Carlo error. The rule stops
    # before EM has converged (θ_n is still ~5e-4 from the fixed point here, on the start's side, a
    # bias of 5 standard errors of the mean over 64 seeds), so the comparison is with exact EM's
    # iterate at the same iteration; those iterates are near the fixed point.
    stopped_at = np.asarray(result.num_iters)
    path = np.asarray(se.fit(MODEL, heads, init=START, num_iters=300).trace.params.probs)[stopped_at]
    assert_mean_matches(np.asarray(result.params.probs) - path, 0.0)
    assert np.max(np.abs(path - np.asarray(exact.params.probs))) < 5e-3


def test_delta_q_estimates_the_change_of_the_exact_q():
    """ΔQ̂ for a step is an unbiased estimate of Q(θ_k | θ_{k−1}) − Q(θ_{k−1} | θ_{k−1})."""
    heads = coin_data()
    data = MODEL.prepare_data(heads)
    result = se.fit(MODEL, heads, init=START, num_iters=6, key=list(range(40)),
                    completion=se.ascent_monte_carlo(200, 200, tol=1e-12))
    params = result.trace.params

    def exact_change(before, after):
        stats = MODEL.expected_stats(before, data)
        return MODEL.complete_loglik(after, data, stats) - MODEL.complete_loglik(before, data, stats)

    for step in (2, 4):
        estimates = np.asarray(result.trace.diagnostics.delta_q[:, step])
        before = jax.tree_util.tree_map(lambda leaf: leaf[:, step - 1], params)
        after = jax.tree_util.tree_map(lambda leaf: leaf[:, step], params)
        exact = np.asarray(jax.vmap(exact_change)(before, after))
        # Each estimate has its own target (θ differs by seed): judge the differences.
        assert_mean_matches(estimates - exact, 0.0)


def test_the_first_sample_size_and_tol_are_run_time_values():
    heads = coin_data()
    se.fit(MODEL, heads, init=START, num_iters=100, key=[0, 1], completion=se.ascent_monte_carlo(10, 2000, tol=1e-3))
    with count_traces() as counted:
        other = se.fit(MODEL, heads, init=START, num_iters=80, key=[2, 3],
                       completion=se.ascent_monte_carlo(25, 2000, tol=5e-3))
    assert counted.traces == 0
    assert np.all(np.asarray(other.trace.diagnostics.num_samples[:, 0]) == 25)


def test_ascent_arguments_are_checked():
    with pytest.raises(ValueError, match="alpha"):
        se.ascent_monte_carlo(alpha=0.7)
    with pytest.raises(ValueError, match="max_samples"):
        se.ascent_monte_carlo(initial_samples=100, max_samples=50)
    with pytest.raises(ValueError, match="tol"):
        se.ascent_monte_carlo(tol=0.0)

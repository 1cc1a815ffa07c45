"""Ascent-based MCMC-EM (``stochem.ascent_mcmc``) on a random-intercept model whose MLE is known exactly.

``y_j ~ N(z_j, σ²)``, ``z_j ~ N(mu, tau²)``: marginally ``y_j ~ N(mu, tau² + σ²)``,
so the MLE is ``mu = mean(y)``, ``tau² = var(y) − σ²``, and the exact posterior
``P(z_j | y_j)`` gives the exact change of Q for any step.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as scipy_stats

import stochem as se
from stochem.batch_means import batch_means
from stochem.completion.ascent_mcmc import doubling_grid_size
from tests.mc_checks import assert_mean_matches, z_threshold
from tests.models import numpyro_examples as examples
from tests.tracing import count_traces

NOISE_SD = 0.8
NUM_SEEDS = 8


def _data():
    rng = np.random.default_rng(5)
    return rng.normal(1.0, np.sqrt(1.5**2 + NOISE_SD**2), size=30)


@pytest.fixture(scope="module")
def model():
    return se.models.from_numpyro(examples.normal_normal, _data(), NOISE_SD)


@pytest.fixture(scope="module")
def growing(model):
    completion = se.ascent_mcmc(se.mcmc(16, num_warmup=100), max_samples=1024, tol=1e-3)
    return se.fit(model, None, completion=completion, num_iters=200, key=list(range(NUM_SEEDS)))


def test_the_sample_grows_the_run_stops_and_ends_at_the_mle(growing):
    y = _data()
    mle = np.array([np.mean(y), np.sqrt(np.var(y) - NOISE_SD**2)])
    assert np.all(growing.converged) and np.all(np.asarray(growing.num_iters) < 200)
    for row, iterations in enumerate(np.asarray(growing.num_iters)):
        sizes = np.asarray(growing.trace.diagnostics.num_samples[row][:iterations])
        assert sizes[0] == 16 and np.all(np.diff(sizes) >= 0) and sizes[-1] >= 8 * sizes[0], sizes
        assert set(sizes.tolist()) <= {16 * 2**j for j in range(7)}, sizes  # the doubling grid
        upper = np.asarray(growing.trace.diagnostics.delta_q_upper[row][:iterations])
        assert upper[-1] < 1e-3 and np.all(upper[1:-1] >= 1e-3), upper
    # Where the seeds stopped they agree with the MLE within their Monte Carlo spread.
    assert_mean_matches(np.stack([growing.params.mu, growing.params.tau], axis=-1), mle)


def test_other_settings_reuse_the_compiled_program(model, growing):
    """The first sample size, the tolerance and num_iters are run-time values of one program."""
    del growing  # compiled it
    seeds = list(range(100, 100 + NUM_SEEDS))
    with count_traces() as counted:
        other = se.fit(model, None, num_iters=150, key=seeds,
                       completion=se.ascent_mcmc(se.mcmc(32, num_warmup=100), max_samples=1024, tol=3e-3))
    assert counted.traces == 0
    assert np.all(other.converged) and np.all(np.asarray(other.trace.diagnostics.num_samples[:, 0]) == 32)


def test_delta_q_and_its_batch_means_error_are_honest(model):
    """(ΔQ̂ − ΔQ)/se over seeds and steps looks standard normal, ΔQ from the exact posterior."""
    y = _data()
    num_seeds = 12
    completion = se.ascent_mcmc(se.mcmc(256, num_warmup=100), max_samples=256, tol=1e-12)
    result = se.fit(model, None, completion=completion, num_iters=4, key=list(range(num_seeds)),
                    init={"mu": 0.0, "tau": 3.0})
    params, diagnostics = result.trace.params, result.trace.diagnostics
    z_alpha = scipy_stats.norm.isf(0.25)

    def expected_log_prior(mu, tau, posterior_mean, posterior_variance):
        return np.sum(-np.log(tau) - ((posterior_mean - mu) ** 2 + posterior_variance) / (2 * tau**2))

    scores = []
    for seed in range(num_seeds):
        for step in (1, 2, 3):
            before = params.mu[seed, step - 1], params.tau[seed, step - 1]
            after = params.mu[seed, step], params.tau[seed, step]
            posterior = examples.normal_normal_posterior(y, NOISE_SD, *before)
            exact = expected_log_prior(*after, *posterior) - expected_log_prior(*before, *posterior)
            estimate = diagnostics.delta_q[seed, step]
            stderr = (estimate - diagnostics.delta_q_lower[seed, step]) / z_alpha
            scores.append((estimate - exact) / stderr)
    scores = np.asarray(scores)
    assert np.abs(scores.mean()) * np.sqrt(scores.size) < z_threshold(1)
    # Σ z² against χ²: too large means the batch-means error is too small (or ΔQ̂ biased).
    total = float(np.sum(scores**2))
    assert scipy_stats.chi2.ppf(1e-4, scores.size) < total < scipy_stats.chi2.isf(1e-4, scores.size), total


def test_batch_means_and_the_doubling_grid():
    values = np.arange(16.0)
    mean, variance = batch_means(values, 16)
    assert float(mean) == 7.5
    np.testing.assert_allclose(float(variance), 4 * np.var(values.reshape(4, 4).mean(axis=1), ddof=1))
    # Entries after the count are ignored; 10 values: 3 batches of 3 (the tenth only enters the mean).
    mean, variance = batch_means(np.concatenate([np.arange(10.0), np.full(6, 99.0)]), 10)
    assert float(mean) == 4.5
    np.testing.assert_allclose(float(variance), 3 * np.var(np.arange(9.0).reshape(3, 3).mean(axis=1), ddof=1))
    sizes = [int(doubling_grid_size(proposed, 16, 256)) for proposed in (2, 16, 17, 100, 256, 5000)]
    assert sizes == [16, 16, 32, 128, 256, 256]


def test_ascent_mcmc_arguments_are_checked():
    with pytest.raises(ValueError, match="max_samples=512"):
        se.ascent_mcmc(se.mcmc(32), max_samples=500)
    with pytest.raises(ValueError, match="at least 4 states"):
        se.ascent_mcmc(se.mcmc(2), max_samples=64)
    with pytest.raises(TypeError, match="sampler must be stochem.mcmc"):
        se.ascent_mcmc(se.monte_carlo(16), max_samples=64)
    with pytest.raises(ValueError, match="alpha"):
        se.ascent_mcmc(se.mcmc(16), max_samples=64, alpha=0.7)
    with pytest.raises(TypeError, match="init_position"):
        se.ascent_mcmc(se.mcmc(16), max_samples=64)(se.models.BinomialMixture(2, 10))

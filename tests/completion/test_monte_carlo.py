"""Monte Carlo completion against exact completion, judged by Monte Carlo standard errors."""

import jax
import numpy as np
import pytest

import stochem as se
from tests.mc_checks import assert_mean_matches, assert_sampled_stats_match_exact

HEADS = [5, 9, 8, 4, 7, 2, 10, 6]
MODEL = se.models.BinomialMixture(num_components=2, num_trials=10)
START = {"weights": [0.4, 0.6], "probs": [0.7, 0.35]}


def test_sampled_statistics_agree_with_exact_ones():
    params = MODEL.prepare_params(START, None)
    z = assert_sampled_stats_match_exact(MODEL, params, MODEL.prepare_data(HEADS), jax.random.key(0))
    assert z.size == 4


def test_completion_update_averages_the_draws():
    """monte_carlo(S).update is the mean of S draws, so its variance shrinks like 1/S."""
    params = MODEL.prepare_params(START, None)
    data = MODEL.prepare_data(HEADS)
    spreads = []
    for num_samples in (4, 64):
        transform = se.monte_carlo(num_samples)(MODEL)
        state = transform.init(params, data)
        keys = jax.random.split(jax.random.key(num_samples), 200)
        heads = np.asarray(jax.jit(jax.vmap(lambda key: transform.update(key, params, data, state)[0].heads))(keys))
        assert_mean_matches(heads, np.asarray(MODEL.expected_stats(params, data).heads))
        spreads.append(heads.std(axis=0))
    ratio = spreads[0] / spreads[1]
    # Variance ratio 16 ⇒ spread ratio 4; with 200 replicates the spread is known to ~5% each.
    np.testing.assert_allclose(ratio, 4.0, rtol=0.25)


def test_mcem_with_many_samples_ends_near_the_exact_fixed_point():
    exact = se.fit(MODEL, HEADS, init=START, num_iters=400, tol=1e-13)
    seeds = list(range(12))
    sampled = se.fit(MODEL, HEADS, completion=se.monte_carlo(500), init=START, num_iters=60, key=seeds)
    # Judge the seeds' mean against the exact fixed point in units of its standard error.
    assert_mean_matches(np.asarray(sampled.params.probs), np.asarray(exact.params.probs))
    assert_mean_matches(np.asarray(sampled.params.weights), np.asarray(exact.params.weights))
    # And the noise is what 500 samples should leave: far below stochastic EM's.
    stochastic = se.fit(MODEL, HEADS, completion=se.monte_carlo(1), init=START, num_iters=60, key=seeds)
    assert np.asarray(sampled.params.probs).std(axis=0).max() < np.asarray(stochastic.params.probs).std(axis=0).min()


def test_a_model_without_a_sampler_is_told_what_to_use_instead():
    class NoSampler:
        pass

    with pytest.raises(TypeError, match=r"sample_latent.*\(PosteriorSampler\); NoSampler has none\. Use completion=mcmc"):
        se.monte_carlo(3)(NoSampler())
    with pytest.raises(TypeError, match=r"expected_stats.*\(ExactEStep\); NoSampler has none\. Use completion=monte_carlo"):
        se.exact()(NoSampler())

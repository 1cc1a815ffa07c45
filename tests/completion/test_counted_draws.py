"""S draws as multinomial counts (CountedDraws) have the distribution of S explicit draws.

For each model that draws counts, the average statistics of S draws are
replicated many times, once through the counts (``counted_draws``) and once
through S explicit completions (``draw_stats``, the path every other model
takes), and both are compared with the exact moments of the average of S
independent draws:

    E[T̄] = T(o, p),   Cov(T̄) = (1/S) Σ_n [Σ_l p_nl t_nl t_nlᵀ − μ_n μ_nᵀ],   μ_n = Σ_l p_nl t_nl,

with ``p`` the posterior and ``t_nl = ∂T/∂φ_nl`` (the statistics are linear in
the weights φ, so the Jacobian holds every row's statistics for every value).
Means and covariances are judged by z-scores; so are the reported variances
(``S · stderr²``, whose expectation is the per-draw variance ``S · diag Cov(T̄)``).

Each model costs ~15 s to compile both paths; the default suite checks the
coins, a full-covariance mixture and the dice sum (``DEFAULT_CASES``: one
binomial, one Gaussian and one many-to-one latent), the other models are ``slow``.
"""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

import stochem as se
from stochem import multinomial as multinomial_module
from stochem.completion.sampling import counted_draws, draw_stats
from tests.mc_checks import assert_mean_matches
from tests.models import numpyro_examples as examples
from tests.test_multinomial import quarter_grid_uniforms

RNG = np.random.default_rng(1)
NUM_SAMPLES = 4
REPLICATES = 600


def _gmm_data(num_features):
    """24 points around three centres."""
    centres = RNG.normal(scale=1.5, size=(3, num_features))
    return centres[RNG.integers(0, 3, 24)] + RNG.normal(size=(24, num_features))


CASES = {
    "binomial_mixture": (se.models.BinomialMixture(2, 10), RNG.integers(0, 11, 12)),
    "categorical_mixture": (se.models.CategoricalMixture(2, 3), RNG.integers(0, 4, (10, 3))),
    "gaussian_mixture_full": (se.models.GaussianMixture(3), _gmm_data(2)),
    "gaussian_mixture_diag": (se.models.GaussianMixture(3, covariance_type="diag"), _gmm_data(2)),
    "gaussian_mixture_spherical": (se.models.GaussianMixture(2, covariance_type="spherical"), _gmm_data(2)),
    "gaussian_mixture_tied": (se.models.GaussianMixture(2, covariance_type="tied"), _gmm_data(2)),
    "shifted_die": (se.models.ShiftedDie(4), RNG.integers(1, 6, 15)),
    "dice_sum": (se.models.DiceSum(3), RNG.integers(2, 7, 15)),
    "numpyro_coins": (se.models.from_numpyro(examples.coins, RNG.integers(0, 11, 6), 10), None),
}
DEFAULT_CASES = {"binomial_mixture", "gaussian_mixture_full", "dice_sum"}
# Where the seeded start leaves nearly every posterior one-hot, a start whose posteriors are mixed.
STARTS = {"gaussian_mixture_tied": {"weights": [0.5, 0.5], "means": [[-1.0, 0.0], [1.0, 0.0]],
                                    "covariances": [[2.0, 0.0], [0.0, 2.0]]}}


def exact_moments(model, params, data):
    """``(E[T̄], Cov(T̄) · S)`` of one draw's statistics, flattened, from the posterior and ``t_nl``."""

    @jax.jit  # one program rather than op by op
    def moments(params, data):
        posterior = model.categorical_posterior(params, data)
        flat = lambda weights: ravel_pytree(model.weighted_stats(data, weights))[0]  # noqa: E731
        per_value = jax.jacfwd(flat)(posterior)  # [entries, N, L]: t_nl for every entry
        row_means = jnp.einsum("enl,nl->ne", per_value, posterior)
        second = jnp.einsum("enl,fnl,nl->ef", per_value, per_value, posterior)
        return flat(posterior), second - row_means.T @ row_means

    mean, covariance = moments(params, data)
    return np.asarray(mean), np.asarray(covariance)


@pytest.fixture(scope="module", params=[pytest.param(name, marks=() if name in DEFAULT_CASES else pytest.mark.slow)
                                        for name in sorted(CASES)])
def replicated(request):
    """For one model: exact moments and REPLICATES averages of S draws, by counts and explicitly."""
    model, data = CASES[request.param]
    prepared = model.prepare_data(data)
    params = se.fit(model, data, init=STARTS.get(request.param), num_iters=0, key=3).params
    mean, covariance = exact_moments(model, params, prepared)

    def by_counts(key):
        drawn = counted_draws(model, key, params, prepared, NUM_SAMPLES)
        return ravel_pytree(drawn.mean())[0], ravel_pytree(drawn.stderr())[0]

    def explicitly(key):
        drawn = draw_stats(model, key, params, prepared, NUM_SAMPLES, NUM_SAMPLES)
        return ravel_pytree(drawn.mean())[0], ravel_pytree(drawn.stderr())[0]

    keys = jax.random.split(jax.random.key(7), REPLICATES)
    results = {name: tuple(map(np.asarray, jax.jit(jax.vmap(sampler))(keys)))
               for name, sampler in (("counts", by_counts), ("explicit", explicitly))}
    return mean, covariance, results


@pytest.mark.parametrize("path", ["counts", "explicit"])
def test_average_has_the_mean_and_covariance_of_s_independent_draws(replicated, path):
    mean, covariance, results = replicated
    averages, _ = results[path]
    varying = np.diag(covariance) > 1e-12 * max(1.0, np.abs(mean).max())
    assert_mean_matches(averages, mean)
    centred = (averages - mean)[:, varying]
    pairs = np.triu_indices(centred.shape[1])
    products = (centred[:, :, None] * centred[:, None, :])[:, pairs[0], pairs[1]]
    assert_mean_matches(products, covariance[np.ix_(varying, varying)][pairs] / NUM_SAMPLES)


@pytest.mark.parametrize("path", ["counts", "explicit"])
def test_reported_standard_errors_are_unbiased(replicated, path):
    """``S · stderr²`` estimates the per-draw variance ``S · diag Cov(T̄)`` without bias."""
    _, covariance, results = replicated
    _, stderrs = results[path]
    assert_mean_matches(NUM_SAMPLES * stderrs**2, np.diag(covariance))


@pytest.mark.parametrize("num_samples", [1, 5])
def test_mixture_one_pass_finishes_undecided_rows_with_sample_weights(num_samples, monkeypatch):
    """The Gaussian mixture's one-pass ``draw_counts`` with coarse uniforms on a grid of four, so that
    nearly every row is left undecided and finished apart (S = 5; S = 1 takes the one-draw pass), and
    with sample weights: the average's mean and covariance and the reported per-draw variance against
    the exact moments (z-scores)."""
    monkeypatch.setattr(multinomial_module, "coarse_uniforms", quarter_grid_uniforms)
    model, points = CASES["gaussian_mixture_full"]
    data = model.with_sample_weight(model.prepare_data(points), jnp.asarray(RNG.uniform(0.5, 2.0, len(points))))
    params = se.fit(model, points, num_iters=0, key=3).params
    mean, covariance = exact_moments(model, params, data)

    def by_counts(key):
        drawn = counted_draws(model, key, params, data, num_samples)
        return ravel_pytree(drawn.mean())[0], ravel_pytree(drawn.stderr())[0]

    averages, stderrs = map(np.asarray, jax.jit(jax.vmap(by_counts))(jax.random.split(jax.random.key(8), 2000)))
    varying = np.diag(covariance) > 1e-12 * max(1.0, np.abs(mean).max())
    assert_mean_matches(averages, mean)
    centred = (averages - mean)[:, varying]
    assert_mean_matches(centred**2, np.diag(covariance)[varying] / num_samples)
    if num_samples > 1:
        assert_mean_matches(num_samples * stderrs**2, np.diag(covariance))
    else:
        assert np.all(stderrs == 0.0)


def test_one_draw_reports_zero_standard_error():
    model, data = CASES["gaussian_mixture_full"]
    prepared = model.prepare_data(data)
    params = se.fit(model, data, num_iters=0, key=3).params
    drawn = counted_draws(model, jax.random.key(0), params, prepared, 1)
    assert all(np.all(np.asarray(leaf) == 0.0) for leaf in jax.tree_util.tree_leaves(drawn.stderr()))
    weights = np.asarray(drawn.weights)
    assert set(np.unique(weights)) <= {0.0, 1.0} and np.all(weights.sum(axis=1) == 1.0)


def test_change_of_q_moments_from_counts_match_brute_force():
    """ascent_monte_carlo's ΔQ: mean and per-draw variance from the counts, against every labelling.

    Six sets of coin tosses, two coins: the 2⁶ labellings give the exact
    distribution of one draw's ΔQ = Q(θ'; T(m)) − Q(θ; T(m)); the counts' mean
    and Rao–Blackwellized variance over many replicates must match its mean and
    variance.
    """
    model = se.models.BinomialMixture(2, 10)
    heads = model.prepare_data([2, 9, 5, 7, 4, 8])
    before = model.prepare_params({"weights": [0.5, 0.5], "probs": [0.7, 0.35]}, heads)
    after = model.prepare_params({"weights": [0.45, 0.55], "probs": [0.75, 0.3]}, heads)

    def change(stats):
        return model.complete_loglik(after, heads, stats) - model.complete_loglik(before, heads, stats)

    posterior = np.asarray(model.posterior(before, heads))
    values, probabilities = [], []
    for labels in itertools.product(range(2), repeat=6):
        one_hot = jax.nn.one_hot(jnp.asarray(labels), 2, dtype=heads.dtype)
        values.append(float(change(model.suff_stats(heads, one_hot))))
        probabilities.append(np.prod(posterior[np.arange(6), labels]))
    values, probabilities = np.asarray(values), np.asarray(probabilities)
    exact_mean = probabilities @ values
    exact_variance = probabilities @ (values - exact_mean) ** 2

    def moments(key):
        drawn = counted_draws(model, key, before, heads, NUM_SAMPLES)
        return drawn.linear_moments(model, heads, change)

    means, variances = map(np.asarray, jax.jit(jax.vmap(moments))(jax.random.split(jax.random.key(9), 4000)))
    assert_mean_matches(means, exact_mean)
    assert_mean_matches(variances, exact_variance)

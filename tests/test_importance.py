"""Importance sampling summaries: the Pareto k̂ diagnostic and the bias-corrected log mean weight."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from stochem.importance import PARETO_K_THRESHOLD, generalized_pareto_shape, log_mean_weight, pareto_k


@pytest.mark.parametrize("shape", [-0.3, 0.2, 0.5, 0.9])
def test_the_pareto_fit_recovers_a_known_shape(shape):
    """On 2000 generalized Pareto draws the shape's sampling error is about 0.03; 0.1 is over 3 of those."""
    draws = stats.genpareto(c=shape, scale=1.7).rvs(size=2000, random_state=np.random.default_rng(1))
    assert abs(float(generalized_pareto_shape(jnp.asarray(draws))) - shape) < 0.1


def test_bounded_weights_pass_and_infinite_variance_weights_are_flagged():
    rng = np.random.default_rng(2)
    # Target N(0, 1) under a wider t_5 proposal: weights are bounded.
    draws = stats.t(5, scale=1.3).rvs(4000, random_state=rng)
    bounded = stats.norm.logpdf(draws) - stats.t(5, scale=1.3).logpdf(draws)
    assert float(pareto_k(jnp.asarray(bounded))) < 0.5
    # Target N(0, 3²) under N(0, 1): w ∝ exp(x²(1 − 1/9)/2) has tail index 1/(1 − 1/9), k = 0.89.
    draws = rng.normal(size=4000)
    heavy = stats.norm.logpdf(draws, scale=3.0) - stats.norm.logpdf(draws)
    assert float(pareto_k(jnp.asarray(heavy))) > PARETO_K_THRESHOLD


def test_log_mean_weight_is_unbiased_and_its_variance_is_honest():
    """Target N(0, 0.8²) under N(0, 1) (bounded weights): z-scores of 400 replicates of log Ẑ = 0."""
    keys = jax.random.split(jax.random.key(3), 400)

    def replicate(key):
        draws = jax.random.normal(key, (500,))
        log_weights = (jax.scipy.stats.norm.logpdf(draws, scale=0.8) - jax.scipy.stats.norm.logpdf(draws))
        return log_mean_weight(log_weights)

    summary = jax.vmap(replicate)(keys)
    z = np.asarray(summary.log_mean) / np.sqrt(np.asarray(summary.variance))
    # mean of 400 standard normals: sd 0.05; their sd: 0.035.
    assert abs(z.mean()) < 0.2
    assert 0.85 < z.std() < 1.15


def test_weights_constant_to_rounding_are_the_lightest_tail_not_a_failed_fit():
    """An exact proposal gives weights equal up to rounding; their 'tail' is noise, so k̂ = −inf."""
    log_weights = -6.66 + 1e-13 * jax.random.normal(jax.random.key(4), (4000,))
    assert float(pareto_k(log_weights)) == -np.inf
    summary = log_mean_weight(log_weights)
    assert abs(float(summary.log_mean) + 6.66) < 1e-10 and float(summary.variance) < 1e-20

"""SQUAREM: same fixed point as EM, far fewer EM-map evaluations, never a lower log-likelihood."""

import numpy as np
import pytest

import stochem as se
from stochem.acceleration import EM_EVALUATIONS_PER_ITERATION

START = {"weights": [0.5, 0.5], "probs": [0.9, 0.1]}


def overlapping_coins():
    """Two heavily overlapping coins (0.6 vs 0.4, 10 tosses): EM's rate of convergence is slow."""
    rng = np.random.default_rng(1)
    heads = rng.binomial(10, np.where(rng.random(3000) < 0.3, 0.6, 0.4))
    return se.models.BinomialMixture(2, 10), heads


def evaluations_to_reach(result, reference, tolerance, evaluations_per_iteration):
    trace = result.trace.params
    error = np.maximum(np.abs(np.asarray(trace.probs) - np.asarray(reference.probs)).max(axis=1),
                       np.abs(np.asarray(trace.weights) - np.asarray(reference.weights)).max(axis=1))
    reached = np.flatnonzero(error < tolerance)
    assert reached.size, f"never came within {tolerance} of the fixed point (closest {error.min():.2e})"
    return reached[0] * evaluations_per_iteration


def test_squarem_reaches_the_em_fixed_point_with_at_least_3x_fewer_em_maps():
    model, heads = overlapping_coins()
    reference = se.fit(model, heads, init=START, num_iters=20000).params
    plain = se.fit(model, heads, init=START, num_iters=3000)
    accelerated = se.fit(model, heads, init=START, num_iters=400, accelerator=se.squarem())
    np.testing.assert_allclose(accelerated.params.probs, reference.probs, atol=1e-8)
    plain_cost = evaluations_to_reach(plain, reference, 1e-6, 1)
    squarem_cost = evaluations_to_reach(accelerated, reference, 1e-6, EM_EVALUATIONS_PER_ITERATION)
    assert np.all(np.asarray(accelerated.trace.diagnostics.em_evaluations) == EM_EVALUATIONS_PER_ITERATION)
    assert plain_cost >= 3 * squarem_cost, (plain_cost, squarem_cost)


@pytest.mark.parametrize("seed", range(4))
def test_squarem_never_lowers_the_loglik(seed):
    model, heads = overlapping_coins()
    rng = np.random.default_rng(seed)
    probs = rng.uniform(0.05, 0.95, 2)
    weight = rng.uniform(0.1, 0.9)
    result = se.fit(model, heads, init={"weights": [weight, 1 - weight], "probs": probs},
                    num_iters=60, accelerator=se.squarem())
    loglik = np.asarray(result.trace.loglik)
    assert np.all(np.diff(loglik) >= -1e-12 * np.abs(loglik).max())


def test_squarem_keeps_fixed_fields_exactly():
    model, heads = overlapping_coins()
    init = {"weights": [0.3, 0.7], "probs": [0.9, 0.1]}
    result = se.fit(model, heads, init=init, num_iters=20, fixed=("weights",), accelerator=se.squarem())
    np.testing.assert_array_equal(result.trace.params.weights, np.tile([0.3, 0.7], (21, 1)))


def test_squarem_is_for_exact_em():
    model, heads = overlapping_coins()
    with pytest.raises(ValueError, match="exact EM"):
        se.fit(model, heads, init=START, completion=se.monte_carlo(10), accelerator=se.squarem())

"""The gradient M-step (optax ascent on Q) lands on the closed-form maximizer."""

import jax
import numpy as np
import optax
import pytest

import stochem as se
from stochem.mstep import to_constrained, to_unconstrained

HEADS = [5, 9, 8, 4, 7]
MODEL = se.models.BinomialMixture(num_components=2, num_trials=10)
START = {"weights": [0.4, 0.6], "probs": [0.6, 0.5]}
OPTIMIZER = optax.adam(0.05)


def test_unconstrained_round_trip():
    params = MODEL.prepare_params(START, None)
    back = to_constrained(MODEL, params, to_unconstrained(MODEL, params))
    np.testing.assert_allclose(back.weights, params.weights, atol=1e-12)
    np.testing.assert_allclose(back.probs, params.probs, atol=1e-12)


def test_one_gradient_mstep_equals_the_closed_form():
    params = MODEL.prepare_params(START, None)
    data = MODEL.prepare_data(HEADS)
    stats = MODEL.expected_stats(params, data)
    transform = se.gradient(OPTIMIZER, num_steps=3000)(MODEL)
    new_params, _ = jax.jit(transform.update)(stats, transform.init(params, data), params, data)
    closed = MODEL.m_step(stats)
    # Q is strictly concave in (weights, probs); adam's final jitter at lr 0.05 after
    # 3000 steps is far below 1e-5 in these units.
    np.testing.assert_allclose(new_params.probs, closed.probs, atol=1e-5)
    np.testing.assert_allclose(new_params.weights, closed.weights, atol=1e-5)


def test_gradient_em_with_lbfgs_follows_closed_form_em_step_for_step():
    closed = se.fit(MODEL, HEADS, init=START, num_iters=10, fixed=("weights",))
    ascent = se.fit(MODEL, HEADS, init=START, num_iters=10, fixed=("weights",),
                    mstep=se.gradient(optax.lbfgs(), num_steps=40))
    # L-BFGS solves each concave inner problem to rounding error.
    np.testing.assert_allclose(ascent.trace.params.probs, closed.trace.params.probs, atol=1e-9)
    np.testing.assert_array_equal(ascent.params.weights, [0.4, 0.6])


def test_gradient_mstep_checks_its_arguments():
    with pytest.raises(TypeError, match="optax.GradientTransformation"):
        se.gradient("adam", num_steps=10)
    with pytest.raises(ValueError, match="num_steps"):
        se.gradient(OPTIMIZER, num_steps=0)

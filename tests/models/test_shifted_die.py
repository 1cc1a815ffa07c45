"""ShiftedDie: a die shouted as is on heads and plus one on tails, checked independently."""

import itertools
import math

import hypothesis
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import stochem as se
from tests.models.finite_latent_checks import (
    assert_exact_em_never_decreases,
    assert_log_joint_is_complete_loglik_plus_constant,
    assert_matches_joint_table,
    assert_mcem_ends_at_the_exact_fixed_point,
    assert_sampled_stats_match,
    exact_quantities,
    free_logits,
    maximize,
    simplex,
)

NUM_FACES = 6
MODEL = se.models.ShiftedDie(NUM_FACES)
PARAMS = {"p_heads": 0.35, "face_probs": [0.1, 0.2, 0.05, 0.3, 0.15, 0.2]}


def brute_force(shouts, p_heads, face_probs):
    """Per shout, enumerate the coin: joint probabilities [N, 2] (heads, tails) with plain floats."""
    joint = np.zeros((len(shouts), 2))
    for n, shout in enumerate(shouts):
        for side, (coin_prob, face) in enumerate([(p_heads, shout), (1 - p_heads, shout - 1)]):
            if 1 <= face <= len(face_probs):
                joint[n, side] = coin_prob * face_probs[face - 1]
    return joint


def shout_counts(shouts):
    """How often each number 1..F+1 was shouted."""
    return np.bincount(np.asarray(shouts), minlength=NUM_FACES + 2)[1:]


def test_posterior_likelihood_and_statistics_equal_brute_force():
    shouts = [1, 2, 3, 4, 5, 6, 7, 3]
    data = MODEL.prepare_data(shouts)
    params = MODEL.prepare_params(PARAMS, data)
    joint = brute_force(shouts, PARAMS["p_heads"], PARAMS["face_probs"])
    posterior = joint / joint.sum(axis=1, keepdims=True)
    model_posterior, model_loglik, stats = exact_quantities(MODEL, params, data)
    np.testing.assert_allclose(model_posterior, posterior, rtol=1e-12, atol=1e-15)
    loglik = sum(math.log(row.sum()) for row in joint)
    np.testing.assert_allclose(model_loglik, loglik, rtol=1e-12)
    # Expected statistics: heads, tails and the faces each coin side implies.
    face_counts = np.zeros(NUM_FACES)
    for shout, (heads, tails) in zip(shouts, posterior):
        if shout <= NUM_FACES:
            face_counts[shout - 1] += heads
        if shout >= 2:
            face_counts[shout - 2] += tails
    np.testing.assert_allclose(stats.heads, posterior[:, 0].sum(), rtol=1e-12)
    np.testing.assert_allclose(stats.tails, posterior[:, 1].sum(), rtol=1e-12)
    np.testing.assert_allclose(stats.face_counts, face_counts, rtol=1e-12, atol=1e-15)
    # Summing p(o, coins) over all 2^N coin sequences gives p(o).
    all_coins = jax.nn.one_hot(np.array(list(itertools.product([0, 1], repeat=len(shouts)))), 2)
    log_joints = jax.vmap(lambda coins: MODEL.log_joint(params, data, coins))(all_coins)
    total = sum(math.exp(value) for value in np.asarray(log_joints))
    np.testing.assert_allclose(math.log(total), loglik, rtol=1e-12)


def test_complete_loglik_matches_log_joint_up_to_a_constant():
    data = MODEL.prepare_data([1, 2, 3, 4, 5, 6, 7, 3])
    latent = jax.nn.one_hot(np.array([0, 1, 0, 1, 0, 0, 1, 1]), 2)
    assert_log_joint_is_complete_loglik_plus_constant(MODEL, data, latent, [
        PARAMS, {"p_heads": 0.8, "face_probs": [1 / 6] * 6},
        {"p_heads": 0.1, "face_probs": [0.3, 0.1, 0.1, 0.1, 0.1, 0.3]}])


def test_impossible_coin_sides_give_no_nan():
    """Shout 1 cannot be tails, shout 7 cannot be heads, and zero face probabilities give -inf."""
    shouts = [1, 7, 2, 6, 1, 7, 2, 6]
    data = MODEL.prepare_data(shouts)
    params = MODEL.prepare_params({"p_heads": 0.5, "face_probs": [0.5, 0, 0, 0, 0, 0.5]}, data)
    joint = brute_force(shouts, 0.5, [0.5, 0, 0, 0, 0, 0.5])
    posterior, _ = assert_matches_joint_table(MODEL, params, data, joint)
    assert np.isfinite(MODEL.log_joint(params, data, posterior))


# A histogram data set: 1000 shouts in proportion to p_heads = 0.3 and a loaded die.
TRUE_FACES = np.array([0.1, 0.15, 0.2, 0.25, 0.15, 0.15])
_SHOUT_PROBS = np.append(0.3 * TRUE_FACES, 0) + np.insert(0.7 * TRUE_FACES, 0, 0)
SHOUTS = np.repeat(np.arange(1, NUM_FACES + 2), np.round(1000 * _SHOUT_PROBS).astype(int))
START = {"p_heads": 0.5, "face_probs": np.full(NUM_FACES, 1 / NUM_FACES)}
# EM here contracts slowly (the coin is hard to tell from the die); 1500 iterations
# bring the parameters within ~1e-10 of the fixed point (measured 1.2e-10 after 1000).
EXACT_ITERS = 1500


@pytest.fixture(scope="module")
def exact_fit():
    return se.fit(MODEL, SHOUTS, init=START, num_iters=EXACT_ITERS)


def negative_loglik(theta, counts):
    """−ℓ written from the story: p(s) = p · f_s + (1 − p) · f_{s−1}; θ = (logit p, free face logits)."""
    p_heads, face_probs = jax.nn.sigmoid(theta[0]), simplex(theta[1:])
    shout_probs = jnp.append(p_heads * face_probs, 0.0) + jnp.insert((1 - p_heads) * face_probs, 0, 0.0)
    return -jnp.sum(counts * jnp.log(shout_probs))


def test_exact_em_fixed_point_equals_scipy_maximum(exact_fit):
    counts = shout_counts(SHOUTS)
    start = np.concatenate([[0.0], free_logits(START["face_probs"])])
    theta, scipy_loglik, hessian_eigenvalues = maximize(lambda t: negative_loglik(t, counts), start)
    em_loglik = float(exact_fit.trace.loglik[-1])
    assert abs(em_loglik - scipy_loglik) < 1e-6
    # The maximum is strict (positive curvature), so the parameters are identified
    # near it; a log-likelihood gap δ allows parameter errors ~ sqrt(2δ / λ_min).
    assert hessian_eigenvalues.min() > 0.1
    np.testing.assert_allclose(exact_fit.params.p_heads, jax.nn.sigmoid(theta[0]), atol=1e-6)
    np.testing.assert_allclose(exact_fit.params.face_probs, simplex(theta[1:]), atol=1e-6)
    # F + 1 outcomes and F free parameters: here the fit reproduces the shout frequencies.
    saturated = float(np.sum(counts * np.log(counts / counts.sum())))
    assert abs(em_loglik - saturated) < 1e-6


@hypothesis.settings(max_examples=8, deadline=None)
@hypothesis.given(seed=st.integers(0, 2**32 - 1))
def test_exact_em_never_decreases_the_loglik(seed):
    rng = np.random.default_rng(seed)
    # Random shouts with SHOUTS's length and EXACT_ITERS iterations: the compiled EM loop is reused.
    shouts = rng.integers(1, NUM_FACES + 2, size=len(SHOUTS))
    init = {"p_heads": rng.uniform(0.05, 0.95), "face_probs": rng.dirichlet(np.ones(NUM_FACES))}
    assert_exact_em_never_decreases(MODEL, shouts, init, EXACT_ITERS)


def test_sampled_stats_match_exact_stats():
    assert_sampled_stats_match(MODEL, SHOUTS, PARAMS, seed=0, num_samples=4000)


def test_mcem_with_many_samples_ends_near_the_exact_fixed_point(exact_fit):
    assert_mcem_ends_at_the_exact_fixed_point(MODEL, SHOUTS, exact_fit.params, num_samples=50)  # 50 x 1000 shouts


def test_gradient_m_step_lands_on_the_closed_form_m_step():
    data = MODEL.prepare_data(SHOUTS)
    params = MODEL.prepare_params(PARAMS, data)
    closed = MODEL.m_step(MODEL.expected_stats(params, data))
    # Adam's step length is about its learning rate; decayed to 1e-5 the last
    # steps move each unconstrained coordinate by ~1e-5, and the maps to (0, 1)
    # and to the simplex have slopes below 1, so 1e-4 is ten times that.
    num_steps = 3000
    optimizer = optax.adam(optax.exponential_decay(0.05, num_steps, 2e-4))
    result = se.fit(MODEL, SHOUTS, init=params, mstep=se.gradient(optimizer, num_steps), num_iters=1)
    np.testing.assert_allclose(result.params.p_heads, closed.p_heads, atol=1e-4)
    np.testing.assert_allclose(result.params.face_probs, closed.face_probs, atol=1e-4)
    # The closed form is the maximizer of Q: the gradient answer never beats it.
    stats = MODEL.expected_stats(params, data)
    assert MODEL.complete_loglik(result.params, data, stats) <= MODEL.complete_loglik(closed, data, stats) + 1e-9


@pytest.mark.parametrize(
    "shouts, message",
    [
        ([1, 8, 3], "<= 7"),
        ([1, 0, 3], ">= 1"),
        ([1, 2.5, 3], "whole numbers"),
        ([1, np.nan, 3], "NaN"),
        ([[1, 2], [3, 4]], "1-D"),
        ([], "empty"),
        (["a", "b"], "array of numbers"),
    ],
)
def test_bad_data_is_rejected(shouts, message):
    with pytest.raises((ValueError, TypeError), match=message):
        se.fit(MODEL, shouts, init=PARAMS)


@pytest.mark.parametrize(
    "init, message",
    [
        ({"p_heads": 1.5, "face_probs": PARAMS["face_probs"]}, r"init.p_heads must lie in \[0, 1\]"),
        ({"p_heads": -0.1, "face_probs": PARAMS["face_probs"]}, r"init.p_heads must lie in \[0, 1\]"),
        ({"p_heads": [0.5, 0.5], "face_probs": PARAMS["face_probs"]}, r"init.p_heads must have shape \(\)"),
        ({"p_heads": 0.5, "face_probs": [0.5, 0.5]}, r"init.face_probs must have shape \(6,\)"),
        ({"p_heads": 0.5, "face_probs": [0.2] * 6}, "init.face_probs must sum to 1"),
        ({"p_heads": 0.5, "face_probs": [-0.1, 0.3, 0.2, 0.2, 0.2, 0.2]}, "init.face_probs must be non-negative"),
        ({"p_heads": 0.5, "face_probs": [np.nan] * 6}, "NaN"),
        ({"p_heads": 1.0, "face_probs": PARAMS["face_probs"]}, "init gives probability zero"),
        ({"p_heads": 0.5}, "missing"),
    ],
)
def test_bad_init_is_rejected(init, message):
    with pytest.raises(ValueError, match=message):
        se.fit(MODEL, [1, 2, 7], init=init)


def test_bad_model_arguments_are_rejected():
    with pytest.raises(ValueError, match="num_faces"):
        se.models.ShiftedDie(num_faces=1)
    with pytest.raises(TypeError, match="num_faces"):
        se.models.ShiftedDie(num_faces=2.5)

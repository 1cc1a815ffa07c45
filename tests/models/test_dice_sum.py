"""DiceSum: two dice, only their sum seen, checked independently."""

import itertools
import math

import hypothesis
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
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

SMALL = se.models.DiceSum(num_faces=4)
SMALL_PARAMS = {"probs1": [0.1, 0.2, 0.3, 0.4], "probs2": [0.4, 0.15, 0.15, 0.3]}


def brute_force(sums, probs1, probs2):
    """Enumerate every pair of faces: joint [N, F] of (sum, die-1 face) and die-2 face weights [N, F, F]."""
    num_faces = len(probs1)
    joint = np.zeros((len(sums), num_faces))
    for n, total in enumerate(sums):
        for face1, face2 in itertools.product(range(1, num_faces + 1), repeat=2):
            if face1 + face2 == total:
                joint[n, face1 - 1] += probs1[face1 - 1] * probs2[face2 - 1]
    return joint


def die2_face_counts(sums, posterior):
    """Expected rolls of each face of die 2: face s − i with the weight of die-1 face i."""
    counts = np.zeros(posterior.shape[1])
    for total, row in zip(sums, posterior):
        for face1, weight in enumerate(row, start=1):
            if 1 <= total - face1 <= len(counts):
                counts[total - face1 - 1] += weight
    return counts


def test_posterior_likelihood_and_statistics_equal_brute_force():
    sums = [2, 5, 8, 4, 6]
    data = SMALL.prepare_data(sums)
    params = SMALL.prepare_params(SMALL_PARAMS, data)
    joint = brute_force(sums, SMALL_PARAMS["probs1"], SMALL_PARAMS["probs2"])
    posterior = joint / joint.sum(axis=1, keepdims=True)
    model_posterior, model_loglik, stats = exact_quantities(SMALL, params, data)
    np.testing.assert_allclose(model_posterior, posterior, rtol=1e-12, atol=1e-15)
    loglik = sum(math.log(row.sum()) for row in joint)
    np.testing.assert_allclose(model_loglik, loglik, rtol=1e-12)
    np.testing.assert_allclose(stats.face_counts1, posterior.sum(axis=0), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(stats.face_counts2, die2_face_counts(sums, posterior), rtol=1e-12, atol=1e-15)
    # Summing p(o, faces of die 1) over all 4^5 assignments gives p(o); impossible ones add 0.
    assignments = np.array(list(itertools.product(range(4), repeat=len(sums))))
    log_joints = jax.vmap(lambda faces: SMALL.log_joint(params, data, faces))(jax.nn.one_hot(assignments, 4))
    assert not np.any(np.isnan(log_joints))
    np.testing.assert_allclose(math.log(np.exp(np.asarray(log_joints)).sum()), loglik, rtol=1e-12)


def test_zero_probabilities_and_impossible_faces_give_no_nan():
    """Faces of probability zero and die-2 faces outside 1..F are -inf in the table, never NaN."""
    sums = [3, 7, 5, 4, 6]
    probs1, probs2 = [0.0, 0.5, 0.5, 0.0], [0.25] * 4
    data = SMALL.prepare_data(sums)
    params = SMALL.prepare_params({"probs1": probs1, "probs2": probs2}, data)
    joint = brute_force(sums, probs1, probs2)
    posterior, _ = assert_matches_joint_table(SMALL, params, data, joint)
    assert np.isfinite(SMALL.log_joint(params, data, posterior))


def test_swapping_the_dice_changes_no_likelihood():
    data = SMALL.prepare_data([2, 5, 8, 4, 6])
    params = SMALL.prepare_params(SMALL_PARAMS, data)
    swapped = SMALL.prepare_params({"probs1": SMALL_PARAMS["probs2"], "probs2": SMALL_PARAMS["probs1"]}, data)
    np.testing.assert_allclose(SMALL.log_marginal(swapped, data), SMALL.log_marginal(params, data), rtol=1e-12)
    # Die 1 of the swapped model plays die 2 of the original.
    np.testing.assert_allclose(SMALL.expected_stats(swapped, data).face_counts1,
                               SMALL.expected_stats(params, data).face_counts2, rtol=1e-12)


def test_complete_loglik_matches_log_joint_up_to_a_constant():
    data = SMALL.prepare_data([2, 5, 8, 4, 6])
    latent = jax.nn.one_hot(np.array([0, 1, 3, 2, 2]), 4)
    assert_log_joint_is_complete_loglik_plus_constant(SMALL, data, latent, [
        SMALL_PARAMS, {"probs1": [0.25] * 4, "probs2": [0.7, 0.1, 0.1, 0.1]},
        {"probs1": [0.4, 0.1, 0.1, 0.4], "probs2": [0.25] * 4}])


NUM_FACES = 6
MODEL = se.models.DiceSum(NUM_FACES)
# A histogram data set: 1000 sums in proportion to two loaded dice.
TRUE_PROBS1 = np.array([0.1, 0.15, 0.2, 0.25, 0.15, 0.15])
TRUE_PROBS2 = np.array([0.3, 0.2, 0.15, 0.1, 0.1, 0.15])
SUMS = np.repeat(np.arange(2, 2 * NUM_FACES + 1), np.round(1000 * np.convolve(TRUE_PROBS1, TRUE_PROBS2)).astype(int))
UNIFORM = np.full(NUM_FACES, 1 / NUM_FACES)
START = {"probs1": (TRUE_PROBS1 + UNIFORM) / 2, "probs2": (TRUE_PROBS2 + UNIFORM) / 2}
# EM contracts slowly here (the sum hides much of each die); 5000 iterations
# bring the parameters within ~1e-9 of the fixed point (measured).
EXACT_ITERS = 5000


@pytest.fixture(scope="module")
def exact_fit():
    return se.fit(MODEL, SUMS, init=START, num_iters=EXACT_ITERS)


def negative_loglik(theta, counts):
    """−ℓ from the story: the sum's distribution is the convolution of the two dice."""
    probs1, probs2 = simplex(theta[: NUM_FACES - 1]), simplex(theta[NUM_FACES - 1:])
    return -jnp.sum(counts * jnp.log(jnp.convolve(probs1, probs2)))


def test_exact_em_fixed_point_equals_scipy_maximum_up_to_swapping_the_dice(exact_fit):
    counts = np.bincount(SUMS, minlength=2 * NUM_FACES + 1)[2:]
    # scipy starts from the swapped start, so it climbs to the swapped maximum.
    start = np.concatenate([free_logits(START["probs2"]), free_logits(START["probs1"])])
    theta, scipy_loglik, hessian_eigenvalues = maximize(lambda t: negative_loglik(t, counts), start)
    em_loglik = float(exact_fit.trace.loglik[-1])
    assert abs(em_loglik - scipy_loglik) < 1e-6
    # A strict maximum (positive curvature): the dice are identified up to the swap.
    assert hessian_eigenvalues.min() > 0.05
    scipy_dice = np.stack([simplex(theta[: NUM_FACES - 1]), simplex(theta[NUM_FACES - 1:])])
    em_dice = np.stack([exact_fit.params.probs1, exact_fit.params.probs2])
    errors = {order: np.abs(em_dice - scipy_dice[list(order)]).max() for order in [(0, 1), (1, 0)]}
    assert errors[(1, 0)] < 1e-6, errors
    assert errors[(0, 1)] > 1e-2  # the dice really differ, so the swap was needed
    # 11 sums and 10 free parameters: here the fit reproduces the sum frequencies.
    saturated = float(np.sum(counts * np.log(counts / counts.sum())))
    assert abs(em_loglik - saturated) < 1e-6


@hypothesis.settings(max_examples=5, deadline=None)
@hypothesis.given(seed=st.integers(0, 2**32 - 1))
def test_exact_em_never_decreases_the_loglik(seed):
    rng = np.random.default_rng(seed)
    # Random sums with SUMS's length and EXACT_ITERS iterations: the compiled EM loop is reused.
    sums = rng.integers(1, NUM_FACES + 1, size=len(SUMS)) + rng.integers(1, NUM_FACES + 1, size=len(SUMS))
    init = {"probs1": rng.dirichlet(np.ones(NUM_FACES)), "probs2": rng.dirichlet(np.ones(NUM_FACES))}
    assert_exact_em_never_decreases(MODEL, sums, init, EXACT_ITERS)


def test_sampled_stats_match_exact_stats():
    assert_sampled_stats_match(MODEL, SUMS, START, seed=1, num_samples=1000)


def test_mcem_with_many_samples_ends_near_the_exact_fixed_point(exact_fit):
    assert_mcem_ends_at_the_exact_fixed_point(MODEL, SUMS, exact_fit.params, num_samples=30)  # 30 draws x 1000 sums


@pytest.mark.parametrize(
    "sums, message",
    [
        ([2, 13, 3], "<= 12"),
        ([2, 1, 3], ">= 2"),
        ([2, 2.5, 3], "whole numbers"),
        ([2, np.nan, 3], "NaN"),
        ([[2, 3], [4, 5]], "1-D"),
        ([], "empty"),
    ],
)
def test_bad_data_is_rejected(sums, message):
    with pytest.raises(ValueError, match=message):
        se.fit(MODEL, sums, init=START)


@pytest.mark.parametrize(
    "init, message",
    [
        ({"probs1": UNIFORM[:5], "probs2": UNIFORM}, r"init.probs1 must have shape \(6,\)"),
        ({"probs1": UNIFORM, "probs2": [UNIFORM, UNIFORM]}, r"init.probs2 must have shape \(6,\)"),
        ({"probs1": UNIFORM, "probs2": UNIFORM * 2}, "init.probs2 must sum to 1"),
        ({"probs1": [-0.2, 0.4, 0.2, 0.2, 0.2, 0.2], "probs2": UNIFORM}, "init.probs1 must be non-negative"),
        ({"probs1": [0, 0.2, 0.2, 0.2, 0.2, 0.2], "probs2": UNIFORM}, "init gives probability zero"),
        ({"probs1": UNIFORM}, "missing"),
    ],
)
def test_bad_init_is_rejected(init, message):
    with pytest.raises(ValueError, match=message):
        se.fit(MODEL, [2, 7, 12], init=init)


def test_bad_model_arguments_are_rejected():
    with pytest.raises(ValueError, match="num_faces"):
        se.models.DiceSum(num_faces=1)
    with pytest.raises(TypeError, match="num_faces"):
        se.models.DiceSum(num_faces="6")

"""CategoricalMixture: gamblers with differently loaded dice, checked independently."""

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
    maximize,
    simplex,
)

SMALL = se.models.CategoricalMixture(num_components=3, num_categories=4)
SMALL_PARAMS = {"weights": [0.2, 0.5, 0.3],
                "probs": [[0.1, 0.2, 0.3, 0.4], [0.7, 0.1, 0.1, 0.1], [0.25, 0.25, 0.4, 0.1]]}
SMALL_COUNTS = [[2, 1, 0, 1], [0, 0, 3, 1], [1, 1, 1, 1], [4, 0, 0, 0], [0, 2, 0, 2]]


def multinomial_pmf(counts, probs):
    """t! / Π c! · Π p^c with plain integers and floats."""
    coefficient = math.factorial(sum(counts))
    for count in counts:
        coefficient //= math.factorial(count)
    return coefficient * math.prod(p**c for p, c in zip(probs, counts))


def brute_force(counts, weights, probs):
    """joint[n, k] = w_k · Multinomial(c_n; probs[k]), enumerating every gambler."""
    return np.array([[w * multinomial_pmf(row, p) for w, p in zip(weights, probs)] for row in counts])


def test_posterior_likelihood_and_statistics_equal_brute_force():
    data = SMALL.prepare_data(SMALL_COUNTS)
    params = SMALL.prepare_params(SMALL_PARAMS, data)
    joint = brute_force(SMALL_COUNTS, SMALL_PARAMS["weights"], SMALL_PARAMS["probs"])
    posterior = joint / joint.sum(axis=1, keepdims=True)
    model_posterior, model_loglik, stats = exact_quantities(SMALL, params, data)
    np.testing.assert_allclose(model_posterior, posterior, rtol=1e-12)
    loglik = sum(math.log(row.sum()) for row in joint)
    np.testing.assert_allclose(model_loglik, loglik, rtol=1e-12)
    np.testing.assert_allclose(stats.sessions, posterior.sum(axis=0), rtol=1e-12)
    face_counts = sum(np.outer(post, row) for post, row in zip(posterior, np.array(SMALL_COUNTS)))
    np.testing.assert_allclose(stats.face_counts, face_counts, rtol=1e-12)
    # Summing p(o, gamblers) over all 3^5 assignments gives p(o).
    assignments = np.array(list(itertools.product(range(3), repeat=len(SMALL_COUNTS))))
    log_joints = jax.vmap(lambda labels: SMALL.log_joint(params, data, labels))(jax.nn.one_hot(assignments, 3))
    np.testing.assert_allclose(math.log(np.exp(np.asarray(log_joints)).sum()), loglik, rtol=1e-12)


def test_single_calls_are_one_hot_sessions_and_identify_only_the_marginal():
    faces = [0, 3, 2, 2, 1]
    data = SMALL.prepare_data(faces)
    np.testing.assert_array_equal(data, np.eye(4)[faces])
    params = SMALL.prepare_params(SMALL_PARAMS, data)
    marginal = np.asarray(SMALL_PARAMS["weights"]) @ np.asarray(SMALL_PARAMS["probs"])
    np.testing.assert_allclose(SMALL.log_marginal(params, data), np.log(marginal[faces]).sum(), rtol=1e-12)
    # Three identical dice with the same marginal fit single calls equally well ...
    pooled = SMALL.prepare_params({"weights": SMALL_PARAMS["weights"], "probs": [marginal] * 3}, data)
    np.testing.assert_allclose(SMALL.log_marginal(pooled, data), SMALL.log_marginal(params, data), rtol=1e-12)
    # ... but not sessions of several calls, which tell the dice apart.
    sessions = SMALL.prepare_data(SMALL_COUNTS)
    assert abs(float(SMALL.log_marginal(pooled, sessions) - SMALL.log_marginal(params, sessions))) > 0.1


def test_zero_probabilities_give_no_nan():
    data = SMALL.prepare_data(SMALL_COUNTS)
    probs = [[0.5, 0.5, 0.0, 0.0], [0.0, 0.0, 0.5, 0.5], [0.25, 0.25, 0.25, 0.25]]
    params = SMALL.prepare_params({"weights": [0.3, 0.3, 0.4], "probs": probs}, data)
    joint = brute_force(SMALL_COUNTS, [0.3, 0.3, 0.4], probs)
    assert_matches_joint_table(SMALL, params, data, joint)


def test_complete_loglik_matches_log_joint_up_to_a_constant():
    data = SMALL.prepare_data(SMALL_COUNTS)
    latent = jax.nn.one_hot(np.array([0, 1, 2, 1, 0]), 3)
    assert_log_joint_is_complete_loglik_plus_constant(SMALL, data, latent, [
        SMALL_PARAMS, {"weights": [1 / 3] * 3, "probs": np.full((3, 4), 0.25)},
        {"weights": [0.6, 0.2, 0.2], "probs": SMALL_PARAMS["probs"][::-1]}])


K, C = 2, 4
MODEL = se.models.CategoricalMixture(K, C)
# 150 sessions of 8 calls each from two dice played with probabilities 0.35 / 0.65.
_rng = np.random.default_rng(2024)
_TRUE_PROBS = np.array([[0.5, 0.3, 0.15, 0.05], [0.1, 0.2, 0.3, 0.4]])
COUNTS = np.stack([_rng.multinomial(8, _TRUE_PROBS[k]) for k in _rng.choice(K, size=150, p=[0.35, 0.65])])
START = {"weights": np.full(K, 1 / K), "probs": _rng.dirichlet(np.ones(C), size=K)}
# EM converges fast here (sessions of 8 calls separate the dice well): after
# 300 iterations the steps are below 1e-12.
EXACT_ITERS = 300


@pytest.fixture(scope="module")
def exact_fit():
    return se.fit(MODEL, COUNTS, init=START, num_iters=EXACT_ITERS)


def negative_loglik(theta, counts):
    """−ℓ from the story: Σ_n log Σ_k w_k Multinomial(c_n; p_k), with the coefficients."""
    log_weights = jnp.log(simplex(theta[: K - 1]))
    log_probs = jnp.log(simplex(theta[K - 1:].reshape(K, C - 1)))
    log_coefficients = np.array([math.log(multinomial_pmf(row, [1.0] * C)) for row in counts])
    return -jnp.sum(jax.scipy.special.logsumexp(log_weights + counts @ log_probs.T, axis=1) + log_coefficients)


def test_exact_em_fixed_point_equals_scipy_maximum_up_to_relabelling(exact_fit):
    start = np.concatenate([[0.0], np.random.default_rng(7).normal(size=K * (C - 1))])
    theta, scipy_loglik, hessian_eigenvalues = maximize(lambda t: negative_loglik(t, COUNTS), start)
    assert abs(float(exact_fit.trace.loglik[-1]) - scipy_loglik) < 1e-6
    # A strict maximum: the components are identified up to their labels.
    assert hessian_eigenvalues.min() > 0.1
    scipy_weights = np.asarray(simplex(theta[: K - 1]))
    scipy_probs = np.asarray(simplex(theta[K - 1:].reshape(K, C - 1)))
    errors = [max(np.abs(exact_fit.params.weights - scipy_weights[list(order)]).max(),
                  np.abs(exact_fit.params.probs - scipy_probs[list(order)]).max())
              for order in itertools.permutations(range(K))]
    assert min(errors) < 1e-6, errors


@hypothesis.settings(max_examples=8, deadline=None)
@hypothesis.given(seed=st.integers(0, 2**32 - 1))
def test_exact_em_never_decreases_the_loglik(seed):
    rng = np.random.default_rng(seed)
    # Random sessions with COUNTS's shape and EXACT_ITERS iterations: the compiled EM loop is reused.
    counts = np.stack([rng.multinomial(rng.integers(0, 12), rng.dirichlet(np.ones(C))) for _ in COUNTS])
    init = {"weights": rng.dirichlet(np.ones(K)), "probs": rng.dirichlet(np.ones(C), size=K)}
    assert_exact_em_never_decreases(MODEL, counts, init, EXACT_ITERS)


def test_sampled_stats_match_exact_stats():
    assert_sampled_stats_match(MODEL, COUNTS, START, seed=2, num_samples=4000)


def test_mcem_with_many_samples_ends_near_the_exact_fixed_point(exact_fit):
    assert_mcem_ends_at_the_exact_fixed_point(MODEL, COUNTS, exact_fit.params, num_samples=50)  # 50 x 150 sessions


@pytest.mark.parametrize(
    "data, message",
    [
        ([[1, 2, 0, -1], [0, 1, 1, 1]], "Negative counts"),
        ([[1, 2, 0], [0, 1, 1]], "4 columns"),
        ([0, 4, 1], "<= 3"),
        ([0, -1, 1], ">= 0"),
        ([[1, 2.5, 0, 1], [0, 1, 1, 1]], "whole numbers"),
        ([[1, np.nan, 0, 1], [0, 1, 1, 1]], "NaN"),
        ([0, 1.5], "whole numbers"),
        (np.zeros((2, 2, 4)), "count matrix"),
        ([[1, 2, 0, 1]], "more data"),
        ([2], "more data"),
    ],
)
def test_bad_data_is_rejected(data, message):
    with pytest.raises(ValueError, match=message):
        se.fit(MODEL, data, init=START)


@pytest.mark.parametrize(
    "init, message",
    [
        ({"weights": [0.6, 0.6], "probs": START["probs"]}, "init.weights must sum to 1"),
        ({"weights": [0.5, 0.5], "probs": START["probs"] * 2}, "init.probs must sum to 1"),
        ({"weights": [0.5, 0.5], "probs": START["probs"][:, :3]}, r"init.probs must have shape \(2, 4\)"),
        ({"weights": [1.0], "probs": START["probs"]}, r"init.weights must have shape \(2,\)"),
        ({"weights": [1.5, -0.5], "probs": START["probs"]}, "init.weights must be non-negative"),
        ({"weights": [0.5, 0.5], "probs": [[0.5, 0.5, 0, 0]] * 2}, "init gives probability zero"),
        ({"weights": [0.5, 0.5]}, "missing"),
    ],
)
def test_bad_init_is_rejected(init, message):
    with pytest.raises(ValueError, match=message):
        se.fit(MODEL, [[1, 2, 0, 1], [0, 1, 1, 1]], init=init)


def test_bad_model_arguments_are_rejected():
    with pytest.raises(ValueError, match="num_categories"):
        se.models.CategoricalMixture(num_components=2, num_categories=1)
    with pytest.raises(ValueError, match="num_components"):
        se.models.CategoricalMixture(num_components=0, num_categories=6)
    with pytest.raises(TypeError, match="num_components"):
        se.models.CategoricalMixture(num_components=2.0, num_categories=6)

"""BinomialMixture: the two coins of Do & Batzoglou (2008), checked independently."""

import itertools
import math

import jax
import numpy as np
import pytest

import stochem as se

# The five sets of ten tosses from Do & Batzoglou (2008), Nature Biotechnology 26, 897-899.
TOSSES = ["HTTTHHTHTH", "HHHHTHHHHH", "HTHHHHHTHH", "HTHTTTHHTT", "THHHTHHHTH"]
HEADS = [tosses.count("H") for tosses in TOSSES]


def tutorial_update(theta_a, theta_b):
    """One EM step of the tutorial, written from its description with plain floats.

    Each set's coin is A or B with probability 1/2; the responsibility of A is
    its binomial likelihood share, and each coin's new bias is its expected
    heads over its expected tosses.
    """
    heads_a = tosses_a = heads_b = tosses_b = 0.0
    for heads in HEADS:
        like_a = theta_a**heads * (1 - theta_a) ** (10 - heads)
        like_b = theta_b**heads * (1 - theta_b) ** (10 - heads)
        share_a = like_a / (like_a + like_b)
        heads_a += share_a * heads
        tosses_a += share_a * 10
        heads_b += (1 - share_a) * heads
        tosses_b += (1 - share_a) * 10
    return heads_a / tosses_a, heads_b / tosses_b


@pytest.fixture
def coins_model():
    return se.models.BinomialMixture(num_components=2, num_trials=10)


START = {"weights": [0.5, 0.5], "probs": [0.6, 0.5]}


def test_tutorial_figures_after_one_and_ten_iterations(coins_model):
    result = se.fit(coins_model, HEADS, init=START, num_iters=10, fixed=("weights",))
    expected = [(0.6, 0.5)]
    for _ in range(10):
        expected.append(tutorial_update(*expected[-1]))
    np.testing.assert_allclose(np.asarray(result.trace.params.probs), np.array(expected), rtol=0, atol=1e-8)
    # The paper's rounded figures.
    np.testing.assert_allclose(result.trace.params.probs[1], [0.71, 0.58], atol=0.005)
    np.testing.assert_allclose(result.trace.params.probs[10], [0.80, 0.52], atol=0.005)
    # Fixed weights never move.
    np.testing.assert_array_equal(result.trace.params.weights, 0.5)


def test_known_labels_give_the_papers_complete_data_estimates(coins_model):
    # With the coins known (sets 2, 3, 5 are A) the M-step alone gives θA=0.80, θB=0.45.
    labels = np.array([1, 0, 0, 1, 0])
    latent = jax.nn.one_hot(labels, 2)
    params = coins_model.m_step(coins_model.suff_stats(coins_model.prepare_data(HEADS), latent))
    np.testing.assert_allclose(params.probs, [0.80, 0.45], atol=1e-12)


def test_posterior_and_likelihood_equal_brute_force(coins_model):
    params = coins_model.prepare_params({"weights": [0.3, 0.7], "probs": [0.65, 0.4]}, None)
    data = coins_model.prepare_data(HEADS)
    posterior = np.asarray(coins_model.posterior(params, data))
    total_loglik = 0.0
    for n, heads in enumerate(HEADS):
        joint = [w * math.comb(10, heads) * p**heads * (1 - p) ** (10 - heads)
                 for w, p in zip([0.3, 0.7], [0.65, 0.4])]
        np.testing.assert_allclose(posterior[n], np.array(joint) / sum(joint), rtol=1e-12)
        total_loglik += math.log(sum(joint))
    np.testing.assert_allclose(coins_model.log_marginal(params, data), total_loglik, rtol=1e-12)
    # The complete-data log joint, enumerated over all 2^5 labelings, sums to the marginal.
    joint_sum = sum(
        math.exp(float(coins_model.log_joint(params, data, jax.nn.one_hot(np.array(labels), 2))))
        for labels in itertools.product([0, 1], repeat=len(HEADS))
    )
    np.testing.assert_allclose(math.log(joint_sum), total_loglik, rtol=1e-12)


def test_complete_loglik_matches_log_joint_up_to_a_constant(coins_model):
    """Q(θ) through the statistics differs from log p(o, m; θ) only by a θ-free term."""
    data = coins_model.prepare_data(HEADS)
    latent = jax.nn.one_hot(np.array([1, 0, 0, 1, 0]), 2)
    stats = coins_model.suff_stats(data, latent)
    differences = []
    for probs in ([0.6, 0.5], [0.9, 0.2], [0.3, 0.55]):
        params = coins_model.prepare_params({"weights": [0.4, 0.6], "probs": probs}, None)
        differences.append(float(coins_model.log_joint(params, data, latent)
                                 - coins_model.complete_loglik(params, data, stats)))
    np.testing.assert_allclose(differences, differences[0], atol=1e-12)


@pytest.mark.parametrize(
    "data, message",
    [
        ([5, 11, 3], "<= 10"),
        ([5, -1, 3], "Negative counts"),
        ([5, 2.5, 3], "whole numbers"),
        ([5, np.nan, 3], "NaN"),
        ([[5, 3], [1, 2]], "1-D"),
        ([5], "more data"),
    ],
)
def test_bad_data_is_rejected(coins_model, data, message):
    with pytest.raises(ValueError, match=message):
        se.fit(coins_model, data, init=START)


@pytest.mark.parametrize(
    "init, message",
    [
        ({"weights": [0.6, 0.6], "probs": [0.6, 0.5]}, "sum to 1"),
        ({"weights": [0.5, 0.5], "probs": [1.6, 0.5]}, r"\[0, 1\]"),
        ({"weights": [0.5, 0.5, 0.0], "probs": [0.6, 0.5]}, "shape"),
        ({"weights": [0.5, 0.5]}, "missing"),
        ({"weights": [0.5, 0.5], "probs": [0.6, 0.5], "means": [1, 2]}, "unknown"),
    ],
)
def test_bad_init_is_rejected(coins_model, init, message):
    with pytest.raises(ValueError, match=message):
        se.fit(coins_model, HEADS, init=init)


def test_bad_model_arguments_are_rejected():
    with pytest.raises(ValueError, match="num_trials"):
        se.models.BinomialMixture(num_components=2, num_trials=0)
    with pytest.raises(TypeError, match="num_components"):
        se.models.BinomialMixture(num_components=2.5, num_trials=10)

"""Forward filter, smoother and FFBS sampler against brute-force enumeration of all K^T paths.

The oracle (tests/models/hmm_brute_force.py) shares no code with stochem.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from stochem.models import hmm_inference
from tests.mc_checks import assert_mean_matches
from tests.models.hmm_brute_force import brute_force, brute_force_filter

# Compiled once per shape and reused by every case below.
smoother = jax.jit(hmm_inference.smoother)
forward_filter = jax.jit(hmm_inference.forward_filter)
sample_paths = jax.jit(jax.vmap(hmm_inference.sample_path, in_axes=(0, None, None, None, None)))


def random_chain(seed, num_states, num_steps, forbid_one_transition=False):
    rng = np.random.default_rng(seed)
    initial_probs = rng.dirichlet(np.ones(num_states))
    transition_matrix = rng.dirichlet(np.ones(num_states), size=num_states)
    if forbid_one_transition:  # a structural zero must stay an exact zero
        transition_matrix[0, 1] = 0.0
        transition_matrix[0] /= transition_matrix[0].sum()
    emission_likelihoods = rng.uniform(0.05, 1.0, size=(num_steps, num_states))
    return initial_probs, transition_matrix, emission_likelihoods


CASES = [(2, 1), (2, 4), (3, 5), (2, 6), (3, 6)]


@pytest.mark.parametrize("num_states, num_steps", CASES)
@pytest.mark.parametrize("forbid", [False, True])
def test_smoother_and_likelihood_equal_enumeration(num_states, num_steps, forbid):
    initial_probs, transition_matrix, likelihoods = random_chain(
        10 * num_states + num_steps, num_states, num_steps, forbid)
    loglik, states, pairs, _ = brute_force(initial_probs, transition_matrix, likelihoods)
    result = smoother(jnp.asarray(initial_probs), jnp.asarray(transition_matrix),
                                    jnp.log(likelihoods))
    np.testing.assert_allclose(result.log_likelihood, loglik, rtol=1e-12)
    np.testing.assert_allclose(result.state_probs, states, rtol=1e-10, atol=1e-14)
    dense_pairs = np.asarray(result.pair_probs.dense())
    np.testing.assert_allclose(dense_pairs, pairs, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(result.pair_probs.summed(), pairs.sum(axis=0), rtol=1e-10, atol=1e-14)
    if forbid and num_steps > 1:
        assert np.all(dense_pairs[:, 0, 1] == 0.0)
    filtered = forward_filter(jnp.asarray(initial_probs), jnp.asarray(transition_matrix),
                                            jnp.log(likelihoods))
    np.testing.assert_allclose(filtered.log_likelihood, loglik, rtol=1e-12)
    np.testing.assert_allclose(filtered.filtered_probs,
                               brute_force_filter(initial_probs, transition_matrix, likelihoods),
                               rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("length", [1, 3, 5])
def test_padded_steps_change_nothing(length):
    """A sequence padded to T = 6 with arbitrary emission values gives its own exact results."""
    initial_probs, transition_matrix, likelihoods = random_chain(7, 3, length)
    loglik, states, pairs, _ = brute_force(initial_probs, transition_matrix, likelihoods)
    rng = np.random.default_rng(length)
    padded = np.concatenate([np.log(likelihoods), rng.normal(scale=50.0, size=(6 - length, 3))])
    result = smoother(jnp.asarray(initial_probs), jnp.asarray(transition_matrix),
                                    jnp.asarray(padded), length)
    np.testing.assert_allclose(result.log_likelihood, loglik, rtol=1e-12)
    np.testing.assert_allclose(result.state_probs[:length], states, rtol=1e-10, atol=1e-14)
    np.testing.assert_array_equal(result.state_probs[length:], 0.0)
    dense_pairs = np.asarray(result.pair_probs.dense())
    np.testing.assert_allclose(dense_pairs[: length - 1], pairs, rtol=1e-10, atol=1e-14)
    np.testing.assert_array_equal(dense_pairs[length - 1:], 0.0)
    path = sample_paths(jax.random.split(jax.random.key(0), 1), jnp.asarray(initial_probs),
                        jnp.asarray(transition_matrix), jnp.asarray(padded), length)[0]
    assert np.all(np.asarray(path[:length]) >= 0)
    np.testing.assert_array_equal(path[length:], hmm_inference.PADDED_STATE)


def path_frequencies_match(initial_probs, transition_matrix, log_likelihoods, length, num_draws, seed):
    """FFBS draws of whole paths against the enumerated path posterior, one z-score per path."""
    _, _, _, posterior = brute_force(initial_probs, transition_matrix, np.exp(log_likelihoods[:length]))
    paths = list(posterior)
    probabilities = np.array([posterior[path] for path in paths])
    # Every path must be common enough to be seen: a rare one would make the check vacuous.
    assert probabilities.min() * num_draws > 20
    keys = jax.random.split(jax.random.key(seed), num_draws)
    draws = np.asarray(sample_paths(keys, jnp.asarray(initial_probs), jnp.asarray(transition_matrix),
                                    jnp.asarray(log_likelihoods), length))
    np.testing.assert_array_equal(draws[:, length:], hmm_inference.PADDED_STATE)
    index = {path: i for i, path in enumerate(paths)}
    indicators = np.zeros((num_draws, len(paths)))
    indicators[np.arange(num_draws), [index[tuple(row)] for row in draws[:, :length]]] = 1.0
    return assert_mean_matches(indicators, probabilities)


def test_ffbs_path_frequencies_match_the_exact_posterior():
    initial_probs, transition_matrix, likelihoods = random_chain(3, 2, 4)
    z = path_frequencies_match(initial_probs, transition_matrix, np.log(likelihoods), 4, 20_000, seed=1)
    assert z.size == 16


def test_ffbs_on_a_padded_sequence_with_three_states():
    initial_probs = np.array([0.3, 0.3, 0.4])
    transition_matrix = np.array([[0.5, 0.25, 0.25], [0.2, 0.6, 0.2], [0.3, 0.3, 0.4]])
    likelihoods = np.random.default_rng(4).uniform(0.3, 1.0, size=(3, 3))
    padded = np.concatenate([np.log(likelihoods), np.full((2, 3), -30.0)])
    z = path_frequencies_match(initial_probs, transition_matrix, padded, 3, 20_000, seed=2)
    assert z.size == 27


def test_ffbs_never_takes_a_forbidden_transition():
    initial_probs, transition_matrix, likelihoods = random_chain(5, 2, 6, forbid_one_transition=True)
    draws = np.asarray(sample_paths(jax.random.split(jax.random.key(3), 2000), jnp.asarray(initial_probs),
                                    jnp.asarray(transition_matrix), jnp.log(likelihoods), 6))
    assert not np.any((draws[:, :-1] == 0) & (draws[:, 1:] == 1))


def test_long_sequence_does_not_underflow():
    """10,000 steps of very peaked emissions: probabilities far below 1e-308 in product form."""
    rng = np.random.default_rng(0)
    log_likelihoods = rng.normal(scale=30.0, size=(10_000, 3))
    transition_matrix = np.full((3, 3), 0.1) + 0.7 * np.eye(3)
    result = smoother(jnp.full(3, 1 / 3), jnp.asarray(transition_matrix),
                                    jnp.asarray(log_likelihoods))
    assert np.isfinite(result.log_likelihood)
    np.testing.assert_allclose(np.sum(result.state_probs, axis=-1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(np.sum(result.pair_probs.dense(), axis=(-2, -1)), 1.0, rtol=1e-12)
    # Summing the pairwise marginals over the next state gives the state marginals.
    np.testing.assert_allclose(np.sum(result.pair_probs.dense(), axis=-1), result.state_probs[:-1],
                               rtol=1e-9, atol=1e-12)


def test_a_zero_weight_state_is_never_drawn():
    """The inverse-CDF draw skips zero-weight states even at the ends u = 0 and u → 1."""
    weights = jnp.array([0.0, 0.3, 0.0, 0.7, 0.0])
    for uniform, expected in [(0.0, 1), (0.2999, 1), (0.3, 3), (1.0 - 1e-16, 3)]:
        assert int(hmm_inference._draw(jnp.asarray(uniform), weights)) == expected

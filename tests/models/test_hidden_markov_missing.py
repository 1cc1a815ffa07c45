"""HiddenMarkovModel(missing=True): unobserved steps and coordinates.

References share no code with stochem: enumeration of all hidden paths
(tests/models/hmm_brute_force.py) with emission likelihoods of the observed
entries from scipy (1 at a step with nothing observed); an independent scaled
Baum–Welch in numpy, written here, that skips missing emissions and completes
partly observed Gaussian steps by index selection; Monte Carlo results by
z-scores.
"""

import jax
import numpy as np
import pytest
from scipy import stats as scipy_stats

import stochem as se
from tests.mc_checks import assert_mean_matches, assert_sampled_stats_match_exact
from tests.models.hmm_brute_force import brute_force

REG_COVAR = 1e-6


def categorical_case(seed=0, lengths=(6, 4), missing_rate=0.3):
    rng = np.random.default_rng(seed)
    params = {"initial_probs": rng.dirichlet(np.ones(3)),
              "transition_matrix": rng.dirichlet(np.ones(3), size=3),
              "emission_probs": rng.dirichlet(np.ones(4), size=3)}
    sequences = [rng.integers(0, 4, size=length) for length in lengths]
    sequences = [np.where(rng.random(len(x)) < missing_rate, -1, x) for x in sequences]
    sequences[0][2] = -1
    return params, sequences


def gaussian_case(seed=0, lengths=(6, 3), missing_rate=0.3):
    rng = np.random.default_rng(seed)
    factors = rng.normal(size=(2, 3, 3))
    params = {"initial_probs": rng.dirichlet(np.ones(2)),
              "transition_matrix": rng.dirichlet(np.ones(2), size=2),
              "means": rng.normal(scale=1.5, size=(2, 3)),
              "covariances": factors @ np.swapaxes(factors, -1, -2) + 0.5 * np.eye(3)}
    sequences = [rng.normal(size=(length, 3)) for length in lengths]
    for x in sequences:
        x[rng.random(x.shape) < missing_rate] = np.nan
    sequences[0][1] = np.nan  # a whole step missing
    sequences[0][3, :2] = np.nan  # some coordinates of a step
    return params, sequences


# --- independent references -----------------------------------------------------------------------


def categorical_emissions(params, x):
    """p(x_t | z_t = k) ``[T, K]``, 1 where x_t = −1."""
    likelihood = params["emission_probs"][:, np.maximum(x, 0)].T
    return np.where((x >= 0)[:, None], likelihood, 1.0)


def gaussian_emissions(params, x):
    """p(x_{t,o} | z_t = k) ``[T, K]`` by scipy on the observed entries, 1 where nothing is observed."""
    likelihood = np.ones((len(x), len(params["means"])))
    for t, row in enumerate(x):
        obs = ~np.isnan(row)
        if obs.any():
            likelihood[t] = [scipy_stats.multivariate_normal(mean[obs], cov[np.ix_(obs, obs)]).pdf(row[obs])
                             for mean, cov in zip(params["means"], params["covariances"])]
    return likelihood


def gaussian_completion(params, row):
    """E[x | x_o, z = k] ``[K, D]`` and Cov[x | x_o, z = k] ``[K, D, D]`` by index selection."""
    obs, mis = ~np.isnan(row), np.isnan(row)
    filled, conditional = [], []
    for mean, cov in zip(params["means"], params["covariances"]):
        value, extra = np.where(obs, row, mean), np.zeros((len(row), len(row)))
        if mis.any() and obs.any():
            gain = cov[np.ix_(mis, obs)] @ np.linalg.inv(cov[np.ix_(obs, obs)])
            value[mis] = mean[mis] + gain @ (row[obs] - mean[obs])
            extra[np.ix_(mis, mis)] = cov[np.ix_(mis, mis)] - gain @ cov[np.ix_(obs, mis)]
        elif mis.any():
            extra = cov.copy()
        filled.append(value)
        conditional.append(extra)
    return np.array(filled), np.array(conditional)


def forward_backward(initial, transition, likelihood):
    """Scaled forward–backward in numpy: (log-likelihood, γ [T, K], Σ_t ξ_t [K, K])."""
    num_steps, num_states = likelihood.shape
    alpha, scale = np.zeros((num_steps, num_states)), np.zeros(num_steps)
    alpha[0] = initial * likelihood[0]
    scale[0] = alpha[0].sum()
    alpha[0] /= scale[0]
    for t in range(1, num_steps):
        alpha[t] = (alpha[t - 1] @ transition) * likelihood[t]
        scale[t] = alpha[t].sum()
        alpha[t] /= scale[t]
    beta = np.ones((num_steps, num_states))
    for t in range(num_steps - 2, -1, -1):
        beta[t] = transition @ (likelihood[t + 1] * beta[t + 1]) / scale[t + 1]
    gamma = alpha * beta
    pairs = np.zeros((num_states, num_states))
    for t in range(num_steps - 1):
        pairs += np.outer(alpha[t], likelihood[t + 1] * beta[t + 1]) * transition / scale[t + 1]
    return np.log(scale).sum(), gamma, pairs


def baum_welch_step(params, sequences, emission):
    """One EM step that skips missing emissions; returns (new params, log-likelihood at params)."""
    num_states = len(params["initial_probs"])
    initial, transitions, loglik = np.zeros(num_states), np.zeros((num_states, num_states)), 0.0
    if emission == "categorical":
        emissions = np.zeros_like(params["emission_probs"])
    else:
        dim = params["means"].shape[1]
        counts, first, second = np.zeros(num_states), np.zeros((num_states, dim)), np.zeros((num_states, dim, dim))
    for x in sequences:
        likelihood = categorical_emissions(params, x) if emission == "categorical" else gaussian_emissions(params, x)
        sequence_loglik, gamma, pairs = forward_backward(params["initial_probs"], params["transition_matrix"],
                                                         likelihood)
        loglik += sequence_loglik
        initial += gamma[0]
        transitions += pairs
        for t, value in enumerate(x):
            if emission == "categorical":
                if value >= 0:
                    emissions[:, value] += gamma[t]
            elif not np.isnan(value).all():
                filled, conditional = gaussian_completion(params, value)
                counts += gamma[t]
                first += gamma[t][:, None] * filled
                second += gamma[t][:, None, None] * (np.einsum("kd,ke->kde", filled, filled) + conditional)
    new = {"initial_probs": initial / initial.sum(),
           "transition_matrix": transitions / transitions.sum(axis=1, keepdims=True)}
    if emission == "categorical":
        new["emission_probs"] = emissions / emissions.sum(axis=1, keepdims=True)
    else:
        means = first / counts[:, None]
        new["means"] = means
        new["covariances"] = (second / counts[:, None, None] - np.einsum("kd,ke->kde", means, means)
                              + REG_COVAR * np.eye(dim))
    return new, loglik


def model_for(emission):
    if emission == "categorical":
        return se.models.HiddenMarkovModel(3, "categorical", num_categories=4, missing=True)
    return se.models.HiddenMarkovModel(2, "gaussian", reg_covar=REG_COVAR, missing=True)


def case_for(emission, **kwargs):
    return categorical_case(**kwargs) if emission == "categorical" else gaussian_case(**kwargs)


# --- exact inference against enumeration -------------------------------------------------------


@pytest.mark.parametrize("emission", ["categorical", "gaussian"])
def test_loglik_marginals_and_stats_equal_brute_force(emission):
    params, sequences = case_for(emission)
    model = model_for(emission)
    data = model.prepare_data(sequences)
    prepared = model.prepare_params(params, data)
    posterior = model.posterior(prepared, data)
    dense_pairs = np.asarray(posterior.transitions.dense())
    stats = model.expected_stats(prepared, data)
    total, initial, transitions = 0.0, 0.0, 0.0
    emissions = counts = first = second = 0.0
    for b, x in enumerate(sequences):
        likelihood = categorical_emissions(params, x) if emission == "categorical" else gaussian_emissions(params, x)
        loglik, states, pairs, _ = brute_force(params["initial_probs"], params["transition_matrix"], likelihood)
        total += loglik
        np.testing.assert_allclose(posterior.states[b, : len(x)], states, rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(dense_pairs[b, : len(x) - 1], pairs, rtol=1e-10, atol=1e-14)
        initial += states[0]
        transitions += pairs.sum(axis=0)
        for t, value in enumerate(x):
            if emission == "categorical":
                emissions += np.outer(states[t], np.eye(4)[value]) if value >= 0 else 0.0
            elif not np.isnan(value).all():
                filled, conditional = gaussian_completion(params, value)
                counts += states[t]
                first += states[t][:, None] * filled
                second += states[t][:, None, None] * (np.einsum("kd,ke->kde", filled, filled) + conditional)
    np.testing.assert_allclose(model.log_marginal(prepared, data), total, rtol=1e-12)
    np.testing.assert_allclose(stats.initial_counts, initial, rtol=1e-10)
    np.testing.assert_allclose(stats.transition_counts, transitions, rtol=1e-10, atol=1e-14)
    if emission == "categorical":
        np.testing.assert_allclose(stats.emission_counts, emissions, rtol=1e-10, atol=1e-14)
    else:
        np.testing.assert_allclose(stats.state_counts, counts, rtol=1e-10)
        np.testing.assert_allclose(stats.first_moments, first, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(stats.second_moments, second, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("emission", ["categorical", "gaussian"])
def test_em_follows_an_independent_baum_welch_that_skips_missing_emissions(emission):
    params, sequences = case_for(emission, seed=4, lengths=(30, 17, 22))
    model = model_for(emission)
    result = se.fit(model, sequences, init=params, num_iters=20)
    reference = {name: np.asarray(value) for name, value in params.items()}
    for iteration in range(21):
        for name, value in reference.items():
            np.testing.assert_allclose(getattr(result.trace.params, name)[iteration], value, rtol=1e-8, atol=1e-10)
        if iteration < 20:
            reference, loglik = baum_welch_step(reference, sequences, emission)
            np.testing.assert_allclose(result.trace.loglik[iteration], loglik, rtol=1e-10)


@pytest.mark.parametrize("emission", ["categorical", "gaussian"])
def test_with_nothing_missing_it_is_the_plain_model_step_for_step(emission):
    params, sequences = case_for(emission, seed=2, lengths=(20, 12), missing_rate=0.0)
    if emission == "categorical":
        sequences = [np.where(x < 0, 0, x) for x in sequences]
        plain = se.models.HiddenMarkovModel(3, "categorical", num_categories=4)
    else:
        sequences = [np.where(np.isnan(x), 0.5, x) for x in sequences]
        plain = se.models.HiddenMarkovModel(2, "gaussian", reg_covar=REG_COVAR)
    expected = se.fit(plain, sequences, init=params, num_iters=10)
    result = se.fit(model_for(emission), sequences, init=params, num_iters=10)
    np.testing.assert_allclose(result.trace.loglik, expected.trace.loglik, rtol=1e-12)
    for a, b in zip(result.trace.params, expected.trace.params):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


# --- sampled completion and imputation ----------------------------------------------------------


@pytest.mark.parametrize("emission", ["categorical", "gaussian"])
def test_sampled_statistics_agree_with_exact_ones(emission):
    params, sequences = case_for(emission)
    model = model_for(emission)
    data = model.prepare_data(sequences)
    assert_sampled_stats_match_exact(model, model.prepare_params(params, data), data, jax.random.key(3),
                                     num_samples=3000)


def test_imputed_symbols_follow_the_posterior_predictive():
    params, sequences = categorical_case()
    model = model_for("categorical")
    prepared = model.prepare_params(params, model.prepare_data(sequences))
    keys = jax.random.split(jax.random.key(0), 4000)
    _, imputed = jax.jit(jax.vmap(lambda key: model.impute(key, prepared, model.prepare_data(sequences))))(keys)
    imputed = np.asarray(imputed)
    for b, x in enumerate(sequences):
        _, states, _, _ = brute_force(params["initial_probs"], params["transition_matrix"],
                                      categorical_emissions(params, x))
        np.testing.assert_array_equal(imputed[:, b, : len(x)][:, x >= 0], np.broadcast_to(x[x >= 0], (4000, (x >= 0).sum())))
        for t in np.flatnonzero(x < 0):
            predictive = states[t] @ params["emission_probs"]
            assert_mean_matches(np.eye(4)[imputed[:, b, t]], predictive)


def test_imputed_gaussian_entries_have_the_posterior_mean():
    params, sequences = gaussian_case()
    model = model_for("gaussian")
    prepared = model.prepare_params(params, model.prepare_data(sequences))
    keys = jax.random.split(jax.random.key(1), 4000)
    _, imputed = jax.jit(jax.vmap(lambda key: model.impute(key, prepared, model.prepare_data(sequences))))(keys)
    imputed = np.asarray(imputed)
    x = sequences[0]
    _, states, _, _ = brute_force(params["initial_probs"], params["transition_matrix"], gaussian_emissions(params, x))
    for t, row in enumerate(x):
        missing = np.isnan(row)
        if missing.any():
            filled, _ = gaussian_completion(params, row)
            assert_mean_matches(imputed[:, 0, t][:, missing], (states[t] @ filled)[missing])
        np.testing.assert_array_equal(imputed[:, 0, t][:, ~missing], np.broadcast_to(row[~missing], (4000, (~missing).sum())))


# --- input ------------------------------------------------------------------------------------------


def test_missing_markers_without_missing_are_refused_with_the_fix():
    with pytest.raises(ValueError, match=r"missing=True"):
        se.models.HiddenMarkovModel(2, "categorical", num_categories=3).prepare_data([0, 1, -1, 2])
    with pytest.raises(ValueError, match=r"missing=True"):
        se.models.HiddenMarkovModel(2, "gaussian").prepare_data(np.array([0.0, np.nan, 1.0, 2.0]))
    with pytest.raises(ValueError, match=">= -1"):
        model_for("categorical").prepare_data([0, 1, -2, 2])
    with pytest.raises(TypeError, match="missing"):
        se.models.HiddenMarkovModel(2, "gaussian", missing=1)

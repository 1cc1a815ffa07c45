"""fit(..., sample_weight=w): whole-number weights are repeated rows (sequences), in every piece.

The reference is the same fit on the data with row n repeated w_n times (a
weight of 0 drops it): exact EM step for step, the log-likelihood, the
standard errors, to rounding. Sampled completions of weighted data are judged
against the exact weighted statistics by z-scores.
"""

import jax
import numpy as np
import pytest

import stochem as se
from stochem.completion import sampled_stats
from tests.mc_checks import assert_mean_matches
from tests.tracing import count_traces

RNG = np.random.default_rng(0)
WEIGHTS = RNG.integers(0, 4, 40).astype(float)
WEIGHTS[0] = 2.0
POINTS = np.concatenate([RNG.normal([0.0, 0.0], 1.0, (24, 2)), RNG.normal([3.0, 1.5], 0.7, (16, 2))])
WITH_NAN = POINTS.copy()
WITH_NAN[RNG.random(POINTS.shape) < 0.2] = np.nan
WITH_NAN[5] = np.nan
GMM_START = {"weights": [0.5, 0.5], "means": [[0.5, 0.0], [2.0, 1.0]],
             "covariances": [[[1.0, 0.2], [0.2, 1.0]], [[0.8, 0.0], [0.0, 0.6]]]}


def start_for(covariance_type):
    full = np.asarray(GMM_START["covariances"])
    covariances = {"full": full, "diag": np.diagonal(full, axis1=1, axis2=2),
                   "spherical": np.array([1.0, 0.7]), "tied": full[0]}[covariance_type]
    return dict(GMM_START, covariances=covariances)


def repeated(rows, weights):
    return np.repeat(rows, weights.astype(int), axis=0)


def assert_same_fit(weighted, expected, rtol=1e-8):
    np.testing.assert_allclose(weighted.trace.loglik, expected.trace.loglik, rtol=rtol)
    for a, b in zip(weighted.trace.params, expected.trace.params):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=1e-10)


@pytest.mark.parametrize("covariance_type", ["full", "diag", "spherical", "tied"])
@pytest.mark.parametrize("missing", [False, True])
def test_gaussian_mixture_weights_are_repeated_rows(covariance_type, missing):
    model = se.models.GaussianMixture(2, covariance_type, missing=missing)
    rows = WITH_NAN if missing else POINTS
    start = start_for(covariance_type)
    weighted = se.fit(model, rows, init=start, num_iters=12, sample_weight=WEIGHTS)
    assert_same_fit(weighted, se.fit(model, repeated(rows, WEIGHTS), init=start, num_iters=12))


def test_missing_gaussian_weights_are_repeated_rows_with_the_default_start():
    model = se.models.MissingGaussian()
    weighted = se.fit(model, WITH_NAN, num_iters=12, sample_weight=WEIGHTS)
    assert_same_fit(weighted, se.fit(model, repeated(WITH_NAN, WEIGHTS), num_iters=12))


@pytest.mark.parametrize("emission", ["categorical", "gaussian"])
def test_hmm_sequence_weights_are_repeated_sequences(emission):
    rng = np.random.default_rng(3)
    lengths = (12, 7, 9, 5)
    if emission == "categorical":
        model = se.models.HiddenMarkovModel(2, "categorical", num_categories=3, missing=True)
        sequences = [np.where(rng.random(n) < 0.2, -1, rng.integers(0, 3, n)) for n in lengths]
        start = {"initial_probs": [0.6, 0.4], "transition_matrix": [[0.8, 0.2], [0.3, 0.7]],
                 "emission_probs": [[0.5, 0.3, 0.2], [0.1, 0.3, 0.6]]}
    else:
        model = se.models.HiddenMarkovModel(2, "gaussian")
        sequences = [rng.normal(size=(n, 2)) + 2.0 * (np.arange(n) % 4 < 2)[:, None] for n in lengths]
        start = {"initial_probs": [0.6, 0.4], "transition_matrix": [[0.8, 0.2], [0.3, 0.7]],
                 "means": [[0.0, 0.0], [2.0, 2.0]], "covariances": [np.eye(2), np.eye(2)]}
    weights = np.array([2.0, 0.0, 1.0, 3.0])
    copies = [sequence for sequence, w in zip(sequences, weights) for _ in range(int(w))]
    weighted = se.fit(model, sequences, init=start, num_iters=10, sample_weight=weights)
    assert_same_fit(weighted, se.fit(model, copies, init=start, num_iters=10))


def test_exact_standard_errors_of_weights_are_those_of_repeated_rows():
    model = se.models.GaussianMixture(2, "diag")
    fitted = se.fit(model, POINTS, init=start_for("diag"), num_iters=500, tol=1e-12, sample_weight=WEIGHTS)
    weighted = se.standard_errors(model, fitted.params, POINTS, sample_weight=WEIGHTS)
    expected = se.standard_errors(model, fitted.params, repeated(POINTS, WEIGHTS))
    np.testing.assert_allclose(weighted.information, expected.information, rtol=1e-8)
    for a, b in zip(weighted.params, expected.params):
        np.testing.assert_allclose(a, b, rtol=1e-8)


def test_sampled_standard_errors_of_weights_agree_with_repeated_rows_within_monte_carlo_error():
    model = se.models.MissingGaussian()
    fitted = se.fit(model, WITH_NAN, num_iters=300, tol=1e-12, sample_weight=WEIGHTS)
    weighted = np.array([np.asarray(se.standard_errors(model, fitted.params, WITH_NAN, num_samples=500, key=seed,
                                                       sample_weight=WEIGHTS).information) for seed in range(8)])
    repeated_rows = np.array([np.asarray(se.standard_errors(model, fitted.params, repeated(WITH_NAN, WEIGHTS),
                                                            num_samples=500, key=100 + seed).information)
                              for seed in range(8)])
    # Two independent samples of 8 replicates: their difference has mean 0.
    assert_mean_matches((weighted - repeated_rows).reshape(8, -1), np.zeros(weighted[0].size))
    # Power: with the scores weighted by w instead of √w the missing information of row n
    # would count w_n² times; the rows with weight 2 and 3 make that far larger than these errors.


@pytest.mark.parametrize("missing", [False, True])
def test_sampled_statistics_of_weighted_data_agree_with_exact_ones(missing):
    model = se.models.GaussianMixture(2, "full", missing=missing)
    data = model.with_sample_weight(model.prepare_data(WITH_NAN if missing else POINTS), WEIGHTS)
    params = model.prepare_params(GMM_START, model.prepare_data(WITH_NAN if missing else POINTS))
    draws = jax.jit(sampled_stats, static_argnums=(0, 4))(model, jax.random.key(2), params, data, 2000)
    exact = jax.jit(model.expected_stats)(params, data)  # one program rather than op by op
    for name in exact._fields:
        assert_mean_matches(np.asarray(getattr(draws, name)), np.asarray(getattr(exact, name)))
    # The fused one-draw pass (stochastic EM) gives the same draw as the sampler.
    one, loglik = model.sampled_stats(jax.random.key(4), params, data)
    draw, sampler_loglik = model.stats_sampler(params, data)
    for a, b in zip(one, draw(jax.random.key(4))):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    np.testing.assert_allclose(loglik, model.log_marginal(params, data), rtol=1e-12)
    np.testing.assert_allclose(sampler_loglik, loglik, rtol=1e-12)


def test_weights_travel_with_their_rows_through_minibatches_and_blocks():
    model = se.models.GaussianMixture(2, "full")
    exact = se.fit(model, POINTS, init=GMM_START, num_iters=5, sample_weight=WEIGHTS)
    # A minibatch of every row is a permutation of the rows: the same statistics.
    everything = se.fit(model, POINTS, init=GMM_START, num_iters=5, sample_weight=WEIGHTS,
                        completion=se.minibatch(se.exact(), len(POINTS)))
    one_block = se.fit(model, POINTS, init=GMM_START, num_iters=5, sample_weight=WEIGHTS,
                       completion=se.incremental(num_blocks=1))
    for result in (everything, one_block):
        for a, b in zip(result.params, exact.params):
            np.testing.assert_allclose(a, b, rtol=1e-10)


def test_squarem_and_tolerance_use_the_weighted_loglik():
    model = se.models.GaussianMixture(2, "full")
    plain = se.fit(model, repeated(POINTS, WEIGHTS), init=GMM_START, num_iters=2000, tol=1e-12)
    fast = se.fit(model, POINTS, init=GMM_START, num_iters=300, tol=1e-12, sample_weight=WEIGHTS,
                  accelerator=se.squarem())
    assert fast.converged
    np.testing.assert_allclose(fast.trace.loglik[-1], plain.trace.loglik[-1], rtol=1e-10)


@pytest.mark.parametrize("weights, message", [
    (np.ones(39), r"shape \(40,\)"),
    (np.r_[np.ones(39), -1.0], "non-negative"),
    (np.r_[np.ones(39), np.nan], "finite"),
    (np.zeros(40), "zero everywhere"),
    (["a"] * 40, "numbers"),
])
def test_bad_weights_are_refused_before_tracing(weights, message):
    model = se.models.GaussianMixture(2, "full")
    with count_traces() as counted:
        with pytest.raises((ValueError, TypeError), match=message) as raised:
            se.fit(model, POINTS, init=GMM_START, num_iters=2, sample_weight=weights)
    assert raised.value.argument == "sample_weight"
    assert counted.traces == 0


def test_a_model_without_weights_is_refused_naming_sample_weight():
    with pytest.raises(TypeError, match="sample_weight"):
        se.fit(se.models.BinomialMixture(2, 10), [5, 9, 8, 4, 7], sample_weight=np.ones(5),
               init={"weights": [0.5, 0.5], "probs": [0.6, 0.5]})


def test_weighted_fit_does_not_retrace_for_other_weights():
    model = se.models.GaussianMixture(2, "tied")
    start = start_for("tied")
    se.fit(model, POINTS, init=start, num_iters=3, sample_weight=WEIGHTS)
    with count_traces() as counted:
        se.fit(model, POINTS, init=start, num_iters=3, sample_weight=WEIGHTS[::-1].copy())
    assert counted.traces == 0

"""Information criteria: free-parameter counts per model, AIC/BIC against scikit-learn and hmmlearn."""

import math

import jax
import numpy as np
import pytest
from hmmlearn import hmm
from sklearn.mixture import GaussianMixture as SklearnGaussianMixture

import stochem as se
from stochem._validation import ArgumentError
from tests.models import numpyro_examples

HEADS = np.array([5, 9, 8, 4, 7])
COINS = se.models.BinomialMixture(num_components=2, num_trials=10)
START = {"weights": [0.5, 0.5], "probs": [0.6, 0.5]}


def _params(model, data):
    """The shapes of the model's parameters for ``data`` (traced, not computed)."""
    return jax.eval_shape(model.init_params, jax.random.key(0), model.prepare_data(data))


@pytest.mark.parametrize("model, data, expected", [
    # weights K - 1, probs K
    (se.models.BinomialMixture(3, 10), [1, 5, 9, 2], {"weights": 2, "probs": 3}),
    # weights K - 1, each of K dice C - 1
    (se.models.CategoricalMixture(2, 6), [0, 1, 5, 3, 2], {"weights": 1, "probs": 10}),
    (se.models.ShiftedDie(6), [1, 4, 7, 2], {"p_heads": 1, "face_probs": 5}),
    (se.models.DiceSum(6), [2, 7, 12, 5], {"probs1": 5, "probs2": 5}),
    # mean D, covariance D (D + 1) / 2
    (se.models.MissingGaussian(), np.arange(12.0).reshape(4, 3) ** 1.5, {"mean": 3, "covariance": 6}),
    # start K - 1, transitions K (K - 1), emissions K (C - 1)
    (se.models.HiddenMarkovModel(2, emission="categorical", num_categories=6), [0, 1, 5, 2, 2, 3],
     {"initial_probs": 1, "transition_matrix": 2, "emission_probs": 10}),
])
def test_free_parameter_counts_by_hand(model, data, expected):
    assert model.free_parameter_counts(_params(model, data)) == expected


def test_numpyro_models_count_their_param_sites_through_their_constraints():
    model = se.models.from_numpyro(numpyro_examples.coins, HEADS, 10)
    params = model.prepare_params({}, None)
    assert model.free_parameter_counts(params) == {"weights": 1, "probs": 2}
    assert model.num_observations(model.prepare_data(None)) == 5
    normal = se.models.from_numpyro(numpyro_examples.normal_normal, np.arange(7.0), 1.0)
    assert normal.free_parameter_counts(normal.prepare_params({}, None)) == {"mu": 1, "tau": 1}
    assert normal.num_observations(None) == 7


def test_criteria_follow_their_formulas_and_fixed_parameters_are_not_free():
    result = se.fit(COINS, HEADS, init=START, num_iters=10, fixed=("weights",))
    loglik = float(COINS.log_marginal(result.params, COINS.prepare_data(HEADS)))
    criteria = se.information_criteria(COINS, result, HEADS, fixed=("weights",))
    assert criteria.num_free_params == 2 and criteria.num_observations == 5
    assert criteria.loglik == pytest.approx(loglik, rel=1e-12)
    assert criteria.aic == pytest.approx(-2 * loglik + 2 * 2, rel=1e-12)
    assert criteria.bic == pytest.approx(-2 * loglik + 2 * math.log(5), rel=1e-12)
    assert criteria.loglik_stderr == 0.0
    free = se.information_criteria(COINS, result, HEADS)
    assert free.num_free_params == 3
    assert free.bic - criteria.bic == pytest.approx(math.log(5), rel=1e-12)
    assert se.information_criteria(COINS, result, HEADS, num_observations=50).bic == pytest.approx(
        -2 * loglik + 3 * math.log(50), rel=1e-12)


def test_several_seeds_give_one_value_per_seed():
    runs = se.fit(COINS, HEADS, key=[0, 1, 2], num_iters=5)
    criteria = se.information_criteria(COINS, runs, HEADS)
    assert criteria.aic.shape == (3,)
    data = COINS.prepare_data(HEADS)
    for index in range(3):
        params = jax.tree_util.tree_map(lambda leaf: leaf[index], runs.params)
        loglik = float(COINS.log_marginal(params, data))
        assert criteria.bic[index] == pytest.approx(-2 * loglik + 3 * math.log(5), rel=1e-12)


@pytest.mark.parametrize("covariance_type", ["full", "diag", "spherical", "tied"])
def test_gaussian_mixture_criteria_equal_scikit_learns(covariance_type):
    rng = np.random.default_rng(3)
    data = np.concatenate([rng.normal(0.0, 1.0, (40, 2)), rng.normal(4.0, 0.5, (30, 2))])
    reference = SklearnGaussianMixture(2, covariance_type=covariance_type, random_state=0).fit(data)
    model = se.models.GaussianMixture(2, covariance_type=covariance_type)
    start = {"weights": reference.weights_, "means": reference.means_, "covariances": reference.covariances_}
    at_reference = se.fit(model, data, init=start, num_iters=0)
    criteria = se.information_criteria(model, at_reference, data)
    assert criteria.bic == pytest.approx(reference.bic(data), rel=1e-10)
    assert criteria.aic == pytest.approx(reference.aic(data), rel=1e-10)


def test_hidden_markov_criteria_equal_hmmlearns():
    rng = np.random.default_rng(4)
    sequences = [rng.integers(0, 4, 30), rng.integers(0, 4, 20)]
    reference = hmm.CategoricalHMM(2, n_features=4, random_state=0, n_iter=5)
    reference.fit(np.concatenate(sequences)[:, None], lengths=[30, 20])
    model = se.models.HiddenMarkovModel(2, emission="categorical", num_categories=4)
    start = {"initial_probs": reference.startprob_, "transition_matrix": reference.transmat_,
             "emission_probs": reference.emissionprob_}
    criteria = se.information_criteria(model, se.fit(model, sequences, init=start, num_iters=0), sequences)
    assert criteria.num_observations == 50
    expected = reference.bic(np.concatenate(sequences)[:, None], lengths=[30, 20])
    assert criteria.bic == pytest.approx(expected, rel=1e-10)


def test_bad_arguments_are_named():
    result = se.fit(COINS, HEADS, init=START, num_iters=2)
    with pytest.raises(ArgumentError) as error:
        se.information_criteria(COINS, result, HEADS, fixed=("nope",))
    assert error.value.argument == "fixed"
    with pytest.raises(ArgumentError) as error:
        se.information_criteria(COINS, result, HEADS, num_observations=0)
    assert error.value.argument == "num_observations"
    nan_trace = result._replace(trace=result.trace._replace(loglik=np.full(3, np.nan)))
    with pytest.raises(ArgumentError, match="importance_loglik") as error:
        se.information_criteria(COINS, nan_trace, HEADS)
    assert error.value.argument == "result"

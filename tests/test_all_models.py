"""Every model through the same checks, the way optax tests every transform alike.

For each model and each completion: the compiled loop gives finite results of
the right shapes, a second call does not retrace, ``complete_loglik`` is the
log joint through the statistics (up to a θ-free term), and seeded default
initializations are valid parameters.
"""

import jax
import numpy as np
import pytest

import stochem as se
from stochem import driver

RNG = np.random.default_rng(0)
MISSING = RNG.normal(size=(30, 3))
MISSING[RNG.random(MISSING.shape) < 0.2] = np.nan

CASES = {
    "binomial_mixture": (se.models.BinomialMixture(2, 10), RNG.integers(0, 11, 25)),
    "categorical_mixture": (se.models.CategoricalMixture(2, 4), RNG.integers(0, 4, (20, 4))),
    "gaussian_mixture_1d": (se.models.GaussianMixture(2), RNG.normal(size=40)),
    "gaussian_mixture_2d_diag": (se.models.GaussianMixture(3, covariance_type="diag"), RNG.normal(size=(40, 2))),
    "missing_gaussian": (se.models.MissingGaussian(), MISSING),
    "shifted_die": (se.models.ShiftedDie(4), RNG.integers(1, 6, 30)),
    "dice_sum": (se.models.DiceSum(4), RNG.integers(2, 9, 30)),
    "hmm_categorical": (se.models.HiddenMarkovModel(2, "categorical", num_categories=3),
                        [RNG.integers(0, 3, 20), RNG.integers(0, 3, 9)]),
    "hmm_gaussian": (se.models.HiddenMarkovModel(2, "gaussian"),
                     [RNG.normal(size=(20, 2)), RNG.normal(size=(7, 2))]),
}
COMPLETIONS = {"exact": se.exact(), "monte_carlo": se.monte_carlo(3)}


@pytest.fixture(params=sorted(CASES))
def case(request):
    return CASES[request.param]


@pytest.mark.parametrize("completion_name", sorted(COMPLETIONS))
def test_compiled_fit_is_finite_shaped_and_cached(case, completion_name):
    model, data = case
    completion = COMPLETIONS[completion_name]
    start = se.fit(model, data, num_iters=0, key=11).params
    result = se.fit(model, data, completion=completion, init=start, num_iters=4, key=[0, 1])
    for final, initial in zip(result.params, start):
        assert np.shape(final) == (2,) + np.shape(initial)
        assert np.isfinite(final).all()
    assert np.isfinite(result.trace.loglik).all()
    count = driver.trace_count
    se.fit(model, data, completion=completion, init=start, num_iters=4, key=[5, 6])
    assert driver.trace_count == count


def test_complete_loglik_is_the_log_joint_through_the_statistics(case):
    model, data = case
    prepared = model.prepare_data(data)
    first = se.fit(model, data, num_iters=0, key=1).params
    second = se.fit(model, data, num_iters=0, key=2).params
    latent = model.sample_latent(jax.random.key(3), first, prepared)
    stats = model.suff_stats(prepared, latent)
    joints = [float(model.log_joint(params, prepared, latent)) for params in (first, second)]
    gaps = [joint - float(model.complete_loglik(params, stats)) for joint, params in zip(joints, (first, second))]
    # Raw-moment statistics lose a few digits to cancellation; 1e-9 of the log joint is ample.
    np.testing.assert_allclose(gaps[0], gaps[1], atol=1e-9 * max(1.0, *map(abs, joints)))


def test_default_initializations_are_valid_parameters(case):
    model, data = case
    for seed in range(3):
        params = se.fit(model, data, num_iters=0, key=seed).params
        model.prepare_params(params, model.prepare_data(data))  # raises if invalid

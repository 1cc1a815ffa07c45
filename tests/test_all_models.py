"""Every model through the same checks, the way optax tests every transform alike.

For each model and each public completion it supports (the model's declared
capabilities decide, :mod:`stochem.capabilities`): the compiled loop gives
finite results of the right shapes, a second call with other seeds, another
start and another ``num_iters`` (0 included) does not retrace, nor does another
sample count of ``monte_carlo``;
``complete_loglik`` is the log joint through the statistics (up to a θ-free
term), and seeded default initializations are valid parameters.

Each pair compiles one program (seeds batched, start given); the starts come
from the model's own initialization, compiled once per model. At 2–20 s of
compilation a pair, the whole cross product is ``slow``; the default suite runs
``DEFAULT_PAIRS``, a cheap set in which every model and every completion
appears at least once.
"""

import functools

import jax
import numpy as np
import optax
import pytest

import stochem as se
from tests.models import numpyro_examples as examples
from tests.tracing import count_traces

RNG = np.random.default_rng(0)
MISSING = RNG.normal(size=(30, 3))
MISSING[RNG.random(MISSING.shape) < 0.2] = np.nan
OTHER_RNG = np.random.default_rng(1)  # for the cases added later, so the others keep their data

CASES = {
    "binomial_mixture": (se.models.BinomialMixture(2, 10), RNG.integers(0, 11, 26)),
    "categorical_mixture": (se.models.CategoricalMixture(2, 4), RNG.integers(0, 4, (20, 4))),
    "gaussian_mixture_1d": (se.models.GaussianMixture(2), RNG.normal(size=40)),
    "gaussian_mixture_2d_diag": (se.models.GaussianMixture(3, covariance_type="diag"), RNG.normal(size=(40, 2))),
    "missing_gaussian": (se.models.MissingGaussian(), MISSING),
    "gaussian_mixture_missing": (se.models.GaussianMixture(2, covariance_type="full", missing=True), MISSING),
    "shifted_die": (se.models.ShiftedDie(4), RNG.integers(1, 6, 30)),
    "dice_sum": (se.models.DiceSum(4), RNG.integers(2, 9, 30)),
    "hmm_categorical": (se.models.HiddenMarkovModel(2, "categorical", num_categories=3),
                        [RNG.integers(0, 3, length) for length in (20, 9, 12, 15, 6)]),
    "hmm_gaussian": (se.models.HiddenMarkovModel(2, "gaussian"),
                     [RNG.normal(size=(length, 2)) for length in (20, 7, 11, 9, 14)]),
    "hmm_gaussian_missing": (se.models.HiddenMarkovModel(2, "gaussian", missing=True),
                             [np.where(OTHER_RNG.random((length, 2)) < 0.2, np.nan, OTHER_RNG.normal(size=(length, 2)))
                              for length in (20, 7, 11, 9, 14)]),
}
NUMPYRO_CASES = {
    "numpyro_coins": (se.models.from_numpyro(examples.coins, RNG.integers(0, 11, 10), 10), None),
    "numpyro_normal_normal": (se.models.from_numpyro(examples.normal_normal, RNG.normal(size=6), 1.0), None),
}
ALL_CASES = {**CASES, **NUMPYRO_CASES}
# One M-step object per setting, shared by every fit (a new optimizer is a new program).
LBFGS = se.gradient(optax.lbfgs(), num_steps=5)

# Every completion stochem exports, with small settings; the second half of the
# pair is the M-step to use on a model without a closed form.
COMPLETIONS = {
    "exact": se.exact(),
    "monte_carlo": se.monte_carlo(3),
    "monte_carlo_schedule": se.monte_carlo(se.geometric_samples(2, 1.5), max_samples=20),
    "ascent_monte_carlo": se.ascent_monte_carlo(initial_samples=4, max_samples=50, tol=1e-3),
    "saem": se.saem(se.monte_carlo(1), se.saem_step_size(burn_in=1)),
    "online_em": se.online_em(batch_size=5),
    "incremental": se.incremental(num_blocks=2),
    "mcmc": se.mcmc(4, num_warmup=5, num_burnin=1),
}

# Every model and every completion at least once, each by its cheapest pair to compile
# (numpyro's coins by Monte Carlo: a numpyro model through a sampled completion).
DEFAULT_PAIRS = {
    ("binomial_mixture", "exact"), ("categorical_mixture", "incremental"), ("dice_sum", "incremental"),
    ("gaussian_mixture_1d", "exact"), ("gaussian_mixture_2d_diag", "incremental"),
    ("gaussian_mixture_missing", "saem"), ("hmm_categorical", "exact"), ("hmm_gaussian", "online_em"),
    ("hmm_gaussian_missing", "exact"), ("missing_gaussian", "ascent_monte_carlo"),
    ("numpyro_coins", "monte_carlo"), ("numpyro_normal_normal", "mcmc"),
    ("shifted_die", "monte_carlo_schedule"),
}


def supported_pairs():
    """(case, completion) for every completion the case's model accepts (capabilities and data)."""
    pairs = []
    for case_name, (model, data) in ALL_CASES.items():
        prepared = model.prepare_data(data)
        for completion_name, completion in COMPLETIONS.items():
            try:
                completion(model).check_data(prepared)
            except (TypeError, ValueError):
                continue
            marks = () if (case_name, completion_name) in DEFAULT_PAIRS else pytest.mark.slow
            pairs.append(pytest.param(case_name, completion_name, id=f"{case_name}-{completion_name}", marks=marks))
    return pairs


PAIRS = supported_pairs()


def test_every_model_accepts_some_completion_and_every_completion_some_model():
    completions_used = {param.values[1] for param in PAIRS}
    models_used = {param.values[0] for param in PAIRS}
    assert completions_used == set(COMPLETIONS)
    assert models_used == set(ALL_CASES)


def test_the_default_pairs_are_supported_and_cover_every_model_and_completion():
    assert DEFAULT_PAIRS <= {tuple(param.values) for param in PAIRS}
    assert {case for case, _ in DEFAULT_PAIRS} == set(ALL_CASES)
    assert {completion for _, completion in DEFAULT_PAIRS} == set(COMPLETIONS)


def _mstep(model):
    return None if isinstance(model, se.capabilities.ClosedFormMStep) else LBFGS


@functools.lru_cache(maxsize=None)
def default_start(case_name, seed):
    """The model's documented seeded start (its ``init_params``), compiled once per model."""
    model, data = ALL_CASES[case_name]
    init = jax.jit(type(model).init_params, static_argnums=0)
    return init(model, jax.random.key(seed), model.prepare_data(data))


@pytest.mark.parametrize("case_name, completion_name", PAIRS)
def test_compiled_fit_is_finite_shaped_and_cached(case_name, completion_name):
    model, data = ALL_CASES[case_name]
    completion = COMPLETIONS[completion_name]
    mstep = _mstep(model)
    start = default_start(case_name, 11)
    result = se.fit(model, data, completion=completion, mstep=mstep, init=start, num_iters=3, key=[0, 1])
    for final, initial in zip(result.params, start):
        assert np.shape(final) == (2,) + np.shape(initial)
        assert np.isfinite(final).all()
    assert np.shape(result.trace.loglik) == (2, 4)
    if isinstance(model, se.capabilities.TractableLikelihood):
        logliks = np.asarray(result.trace.loglik)
        assert np.isfinite(logliks[np.arange(2), np.asarray(result.num_iters)]).all()
    other_start = default_start(case_name, 12)
    with count_traces() as counted:
        again = se.fit(model, data, completion=completion, mstep=mstep, init=other_start, num_iters=2, key=[5, 6])
        unmoved = se.fit(model, data, completion=completion, mstep=mstep, init=other_start, num_iters=0,
                         key=[5, 6])
        if completion_name == "monte_carlo":
            se.fit(model, data, completion=se.monte_carlo(7), mstep=mstep, init=other_start, num_iters=3,
                   key=[5, 6])
    assert counted.traces == 0
    assert np.shape(again.trace.loglik) == (2, 3) and np.shape(unmoved.trace.loglik) == (2, 1)
    for kept, initial in zip(unmoved.params, other_start):
        np.testing.assert_array_equal(kept, np.broadcast_to(initial, (2,) + np.shape(initial)))


@pytest.fixture(params=sorted(CASES))
def case(request):
    return CASES[request.param]


def test_complete_loglik_is_the_log_joint_through_the_statistics(case):
    model, data = case
    prepared = model.prepare_data(data)
    first = se.fit(model, data, num_iters=0, key=1).params
    second = se.fit(model, data, num_iters=0, key=2).params

    @jax.jit  # one program rather than each operation compiled on its own
    def joints_and_gaps(first, second, prepared):
        latent = model.sample_latent(jax.random.key(3), first, prepared)
        stats = model.suff_stats(prepared, latent)
        joints = [model.log_joint(params, prepared, latent) for params in (first, second)]
        return joints, [joint - model.complete_loglik(params, prepared, stats)
                        for joint, params in zip(joints, (first, second))]

    joints, gaps = jax.tree_util.tree_map(float, joints_and_gaps(first, second, prepared))
    # Raw-moment statistics lose a few digits to cancellation; 1e-9 of the log joint is ample.
    np.testing.assert_allclose(gaps[0], gaps[1], atol=1e-9 * max(1.0, *map(abs, joints)))


def test_default_initializations_are_valid_parameters(case):
    model, data = case
    for seed in range(3):
        params = se.fit(model, data, num_iters=0, key=seed).params
        model.prepare_params(params, model.prepare_data(data))  # raises if invalid

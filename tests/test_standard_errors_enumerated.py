"""Exact standard errors of enumerated numpyro models (discrete latent sites summed out).

Two independent references:

* the same model written by hand (BinomialMixture, ShiftedDie, DiceSum): the
  observed information in the same unconstrained coordinates, at any θ;
* the inverse of a finite-difference Hessian of the closed-form two-coins ℓ in
  the natural coordinates (w₁, p₁, p₂), numpy only, at its scipy maximum —
  with a penalty site outside the plate, so the part of log p(o, m; θ) that does
  not depend on the latents is in the information too.
"""

import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
from numpyro.distributions import constraints
from scipy import optimize, special
from scipy import stats as scipy_stats

import stochem as se
from tests.hessians import finite_difference_hessian
from tests.models import numpyro_examples as examples

HEADS = np.array([5, 9, 8, 4, 7, 9, 2, 3, 8, 1, 6, 10])
NUM_TRIALS = 10
PENALTY = 0.3


def _shouts(num_rolls=60, seed=1):
    rng = np.random.default_rng(seed)
    return rng.choice(4, size=num_rolls, p=[0.1, 0.2, 0.3, 0.4]) + 1 + (rng.random(num_rolls) > 0.7)


def _sums(num_throws=80, seed=2):
    rng = np.random.default_rng(seed)
    return rng.choice(3, size=num_throws, p=[0.2, 0.3, 0.5]) + rng.choice(3, size=num_throws, p=[0.6, 0.3, 0.1]) + 2


# (numpyro model, its arguments, hand-written model, its data, θ)
CASES = {
    "two_coins": (examples.coins, (HEADS, NUM_TRIALS), se.models.BinomialMixture(2, NUM_TRIALS), HEADS,
                  {"weights": [0.35, 0.65], "probs": [0.75, 0.3]}),
    "shifted_die": (examples.shifted_die, (_shouts(), 4), se.models.ShiftedDie(4), _shouts(),
                    {"p_heads": 0.65, "face_probs": [0.12, 0.2, 0.3, 0.38]}),
    "dice_sum": (examples.dice_sum, (_sums(), 3), se.models.DiceSum(3), _sums(),
                 {"probs1": [0.25, 0.3, 0.45], "probs2": [0.5, 0.3, 0.2]}),
}


# Building a numpyro model and compiling its information take seconds each: the coins run in
# the default suite, the models with two latent sites per row (jointly enumerated, impossible
# configurations at −inf) with the slow checks.
@pytest.mark.parametrize("name", ["two_coins", pytest.param("shifted_die", marks=pytest.mark.slow),
                                  pytest.param("dice_sum", marks=pytest.mark.slow)])
def test_enumerated_numpyro_errors_equal_those_of_the_hand_written_model(name):
    """The information at a θ that is not stationary (Louis' identity holds at any θ, so every term
    counts), the errors at the hand-written model's EM fixed point (where the information is
    positive definite, so no error is clipped to 0)."""
    model_fn, args, hand, hand_data, params = CASES[name]
    model = se.models.from_numpyro(model_fn, *args)
    first_field = hand.params_type._fields[0]
    fixed_point = se.fit(hand, hand_data, init=params, num_iters=3000, tol=1e-13).params
    for fixed in [(), (first_field,)]:
        np.testing.assert_allclose(se.standard_errors(model, params, None, fixed=fixed).information,
                                   se.standard_errors(hand, params, hand_data, fixed=fixed).information,
                                   rtol=1e-9, atol=1e-9)
        numpyro_errors = se.standard_errors(model, fixed_point._asdict(), None, fixed=fixed)
        hand_errors = se.standard_errors(hand, fixed_point, hand_data, fixed=fixed)
        assert np.all(np.linalg.eigvalsh(np.asarray(numpyro_errors.information)) > 0)
        for field in hand.params_type._fields:
            np.testing.assert_allclose(getattr(numpyro_errors.params, field), getattr(hand_errors.params, field),
                                       rtol=1e-8, atol=1e-12)
            assert np.all((np.asarray(getattr(numpyro_errors.params, field)) == 0) == (field in fixed))


def penalised_coins(heads, num_trials):
    """The two coins with a ridge on the coins' logits: a site outside the plate that depends on θ."""
    weights = numpyro.param("weights", jnp.array([0.5, 0.5]), constraint=constraints.simplex)
    probs = numpyro.param("probs", jnp.array([0.6, 0.5]), constraint=constraints.unit_interval)
    numpyro.factor("ridge", -PENALTY * jnp.sum(jnp.log(probs / (1 - probs)) ** 2))
    with numpyro.plate("sets", heads.shape[0]):
        coin = numpyro.sample("coin", dist.Categorical(weights))
        numpyro.sample("heads", dist.Binomial(num_trials, probs[coin]), obs=heads)


def closed_form_loglik(natural, penalty, weight=None):
    """ℓ(w₁, p₁, p₂) (or ℓ(p₁, p₂) at a known ``weight``) of the two coins, plus the ridge, in numpy."""
    if weight is None:
        weight, probs = natural[0], natural[1:]
    else:
        probs = natural
    per_coin = scipy_stats.binom.logpmf(HEADS[:, None], NUM_TRIALS, probs[None, :])
    mixture = special.logsumexp(per_coin + np.log([weight, 1.0 - weight])[None, :], axis=1)
    return float(np.sum(mixture) - penalty * np.sum(special.logit(probs) ** 2))


@pytest.mark.parametrize("penalty, fixed", [
    (PENALTY, ()),
    pytest.param(PENALTY, ("weights",), marks=pytest.mark.slow),
    pytest.param(0.0, (), marks=pytest.mark.slow),
    pytest.param(0.0, ("weights",), marks=pytest.mark.slow),
])
def test_enumerated_numpyro_errors_invert_a_finite_difference_hessian_of_the_closed_form_loglik(penalty, fixed):
    """At the maximum, the delta-method errors equal the inverse Hessian of ℓ in any coordinates."""
    known_weight = 0.4 if fixed else None
    start = np.array([0.0, 1.0, -1.0]) if not fixed else np.array([1.0, -1.0])

    def negative(logits):
        return -closed_form_loglik(special.expit(logits), penalty, known_weight)

    found = optimize.minimize(negative, start, method="BFGS", options={"gtol": 1e-10})
    natural = special.expit(found.x)
    hessian = finite_difference_hessian(lambda point: closed_form_loglik(point, penalty, known_weight), natural)
    reference = np.sqrt(np.diag(np.linalg.inv(-hessian)))

    model_fn = penalised_coins if penalty else examples.coins
    model = se.models.from_numpyro(model_fn, HEADS, NUM_TRIALS)
    if fixed:
        params = {"weights": [known_weight, 1 - known_weight], "probs": natural}
    else:
        params = {"weights": [natural[0], 1 - natural[0]], "probs": natural[1:]}
    errors = se.standard_errors(model, params, None, fixed=fixed)
    if fixed:
        np.testing.assert_array_equal(errors.params.weights, 0.0)
        np.testing.assert_allclose(errors.params.probs, reference, rtol=1e-5)
    else:
        # The simplex has one free coordinate: w₂ = 1 − w₁ has the same error.
        np.testing.assert_allclose(errors.params.weights, [reference[0], reference[0]], rtol=1e-5)
        np.testing.assert_allclose(errors.params.probs, reference[1:], rtol=1e-5)


def test_a_continuous_model_is_pointed_to_mcmc_draws():
    model = se.models.from_numpyro(examples.normal_normal, np.array([0.4, -1.3, 2.2]), 0.7)
    with pytest.raises(ValueError, match=r"completion=stochem.mcmc") as caught:
        se.standard_errors(model, {"mu": 0.0, "tau": 1.0}, None)
    assert caught.value.argument == "completion"

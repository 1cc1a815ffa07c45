"""SAEM and its pieces: Robbins–Monro smoothing, step-size schedules, chaining."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import stochem as se
from tests.mc_checks import assert_mean_matches
from tests.models import numpyro_examples as examples

HEADS = [5, 9, 8, 4, 7, 2, 10, 6] * 4
MODEL = se.models.BinomialMixture(num_components=2, num_trials=10)
START = {"weights": [0.4, 0.6], "probs": [0.7, 0.35]}


def test_robbins_monro_with_one_over_k_is_the_running_mean():
    transform = se.robbins_monro(lambda count: 1.0 / (count + 1.0))(MODEL)
    sequence = np.random.default_rng(0).normal(size=(6, 3))
    state = transform.init(jax.ShapeDtypeStruct((3,), jnp.float64), None, None)
    for k, stats in enumerate(sequence):
        smoothed, state, _ = transform.update(jax.random.key(k), None, None, state, jnp.asarray(stats), se.CompletionInfo())
        np.testing.assert_allclose(smoothed, sequence[: k + 1].mean(axis=0), atol=1e-12)


def test_first_statistics_are_taken_whole_whatever_the_schedule():
    transform = se.robbins_monro(lambda count: 0.1)(MODEL)
    state = transform.init(jax.ShapeDtypeStruct((2,), jnp.float64), None, None)
    info = se.CompletionInfo()
    smoothed, state, _ = transform.update(jax.random.key(0), None, None, state, jnp.array([3.0, 4.0]), info)
    np.testing.assert_allclose(smoothed, [3.0, 4.0])
    smoothed, _, _ = transform.update(jax.random.key(1), None, None, state, jnp.array([13.0, 4.0]), info)
    np.testing.assert_allclose(smoothed, [4.0, 4.0])


def test_optax_schedules_are_accepted_as_they_are():
    import optax

    schedule = optax.polynomial_schedule(init_value=1.0, end_value=0.01, power=1.0, transition_steps=50)
    result = se.fit(MODEL, HEADS, completion=se.saem(se.monte_carlo(1), schedule), init=START, num_iters=60)
    assert np.isfinite(result.trace.loglik).all()


def test_saem_step_size_schedule():
    gamma = se.saem_step_size(burn_in=3, exponent=0.75)
    values = np.array([float(gamma(k)) for k in range(6)])
    np.testing.assert_allclose(values, [1, 1, 1, 1, 2**-0.75, 3**-0.75])
    with pytest.raises(ValueError, match="exponent"):
        se.saem_step_size(exponent=0.5)


def test_saem_reaches_the_exact_fixed_point():
    exact = se.fit(MODEL, HEADS, init=START, num_iters=1000, tol=1e-13)
    seeds = list(range(16))
    saem = se.fit(MODEL, HEADS, completion=se.saem(se.monte_carlo(1), se.saem_step_size(burn_in=30)),
                  init=START, num_iters=1500, key=seeds)
    final = np.asarray(saem.params.probs)
    # The seeds' mean agrees with exact EM's fixed point within its standard error...
    assert_mean_matches(final, np.asarray(exact.params.probs))
    # ...and the averaging removed most of stochastic EM's noise.
    stochastic = se.fit(MODEL, HEADS, completion=se.monte_carlo(1), init=START, num_iters=1500, key=seeds)
    assert final.std(axis=0).max() < 0.5 * np.asarray(stochastic.params.probs).std(axis=0).min()


def test_chain_validates_its_parts():
    with pytest.raises(TypeError, match="completion"):
        se.chain("monte_carlo")
    with pytest.raises(TypeError, match="statistics-transform"):
        se.chain(se.monte_carlo(1), 0.5)
    with pytest.raises(TypeError, match="step_size"):
        se.robbins_monro(0.5)


def test_saem_refuses_statistics_that_are_raw_draws():
    class DrawsModel:
        linear_statistics = False

    with pytest.raises(TypeError, match="not linear"):
        se.robbins_monro(se.saem_step_size())(DrawsModel())


@pytest.mark.parametrize("model, data", [
    (se.models.GaussianMixture(2), np.concatenate([np.linspace(-3.0, -1.0, 30), np.linspace(0.5, 2.5, 25)])),
    (MODEL, HEADS),
])
def test_saem_trace_holds_the_loglik_at_each_iterate(model, data):
    """ℓ(θ_t) in the trace, whether the sampler computed it on the way (GMM) or EM evaluated it (coins)."""
    result = se.fit(model, data, completion=se.saem(se.monte_carlo(1), se.saem_step_size(burn_in=3)),
                    num_iters=6, key=1)
    prepared = model.prepare_data(data)
    params = [jax.tree_util.tree_map(lambda leaf, t=t: leaf[t], result.trace.params) for t in range(7)]
    direct = [float(model.log_marginal(model.prepare_params(p._asdict(), prepared), prepared)) for p in params]
    np.testing.assert_allclose(result.trace.loglik, direct, rtol=1e-12)


def test_mcmc_saem_on_a_model_with_a_known_noise_scale_reaches_the_mle():
    """saem(mcmc(S)) on ``y_j ~ N(z_j, σ²)``, σ known: SAEM's state is built from the summaries' shapes
    (a regression: the summary was once traced on shape placeholders and failed on such a model)."""
    rng = np.random.default_rng(5)
    noise_sd = 0.8
    y = rng.normal(1.0, np.sqrt(1.5**2 + noise_sd**2), size=30)
    model = se.models.from_numpyro(examples.normal_normal, y, noise_sd)
    result = se.fit(model, None, num_iters=80, key=[0, 1, 2, 3],
                    completion=se.saem(se.mcmc(20, num_warmup=100), se.saem_step_size(burn_in=20)))
    final = np.stack([result.params.mu, result.params.tau], axis=-1)
    assert_mean_matches(final, np.array([np.mean(y), np.sqrt(np.var(y) - noise_sd**2)]))

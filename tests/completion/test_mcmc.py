"""The MCMC completion (``stochem.mcmc``) against a conjugate posterior and a closed-form MLE.

MCMC draws are autocorrelated, so their Monte Carlo standard errors come from
batch means: the chain is cut into batches much longer than its correlation
time, and the batch means are treated as independent.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest

import stochem as se
from tests.mc_checks import assert_mean_matches
from tests.models import numpyro_examples as examples
from tests.tracing import count_traces

Y = np.array([0.8, -1.5, 2.4])
NOISE_SD = 0.8
NUM_BATCHES = 40


def _batch_means(draws: np.ndarray) -> np.ndarray:
    """``[S, ...]`` -> ``[NUM_BATCHES, ...]`` means of consecutive batches."""
    draws = np.asarray(draws)
    return draws.reshape((NUM_BATCHES, -1) + draws.shape[1:]).mean(axis=1)


def _assert_matches_posterior(draws, mu, tau):
    mean, variance = examples.normal_normal_posterior(Y, NOISE_SD, mu, tau)
    draws = np.asarray(draws)
    # First and second moments, each judged by the spread of its batch means.
    moments = np.concatenate([_batch_means(draws), _batch_means((draws - mean) ** 2)], axis=1)
    return assert_mean_matches(moments, np.concatenate([mean, np.full_like(mean, variance)]))


@pytest.mark.parametrize("kernel, options", [
    ("nuts", {}),
    ("hmc", {"num_leapfrog_steps": 8}),
])
def test_draws_match_the_conjugate_posterior_and_chains_stay_warm(kernel, options):
    model = se.models.from_numpyro(examples.normal_normal, Y, NOISE_SD)
    completion = se.mcmc(4000, kernel, num_warmup=300, num_burnin=5, **options)(model)
    data = model.prepare_data(None)
    first_params = model.prepare_params({"mu": 0.5, "tau": 1.3}, data)
    second_params = model.prepare_params({"mu": -1.0, "tau": 0.6}, data)

    @jax.jit
    def two_iterations(key):
        first_key, second_key = jax.random.split(key)
        state = completion.init(first_params, data)
        first, state_after_first, first_info = completion.update(first_key, first_params, data, state)
        second, state_after_second, second_info = completion.update(second_key, second_params, data,
                                                                    state_after_first)
        return first, second, (state_after_first, first_info), (state_after_second, second_info)

    first, second, (after_first, first_info), (after_second, second_info) = two_iterations(jax.random.key(0))
    _assert_matches_posterior(first.draws["z"], 0.5, 1.3)
    # After θ changed, the warm chain targets the new posterior (its energy was recomputed).
    _assert_matches_posterior(second.draws["z"], -1.0, 0.6)
    # Warm-up ran once, in the first iteration; later iterations only burn in.
    assert int(after_first.kernel.i) == 300 + 5 + 4000
    assert int(after_second.kernel.i) == 300 + 2 * (5 + 4000)
    assert float(first_info.diagnostics.step_size) == float(second_info.diagnostics.step_size)
    assert 0.5 < float(second_info.diagnostics.accept_prob) <= 1.0
    assert int(second_info.diagnostics.num_divergent) == 0


def test_thinning_keeps_every_kth_transition():
    model = se.models.from_numpyro(examples.normal_normal, Y, NOISE_SD)
    completion = se.mcmc(3, num_warmup=10, num_burnin=2, thin=4)(model)
    data = model.prepare_data(None)
    params = model.prepare_params({}, data)
    stats, state, _ = jax.jit(lambda key: completion.update(key, params, data, completion.init(params, data)))(
        jax.random.key(1))
    assert stats.draws["z"].shape == (3, 3)
    assert int(state.kernel.i) == 10 + 2 + 3 * 4


def test_mcmc_em_reaches_the_closed_form_mle():
    """y_j ~ N(mu, tau² + σ²): the MLE is mu = mean(y), tau² = var(y) − σ² (when positive)."""
    rng = np.random.default_rng(5)
    y = rng.normal(1.0, np.sqrt(1.5**2 + NOISE_SD**2), size=30)
    tau_mle = np.sqrt(np.var(y) - NOISE_SD**2)
    model = se.models.from_numpyro(examples.normal_normal, y, NOISE_SD)
    together = se.fit(model, None, completion=se.mcmc(100, num_warmup=100), num_iters=60, key=[0, 1])
    results = [se.fit(model, None, completion=se.mcmc(100, num_warmup=100), num_iters=60, key=seed)
               for seed in (0, 1)]
    # num_iters is a run-time value: a shorter run reuses the program and is the start of the longer one.
    with count_traces() as counted:
        shorter = se.fit(model, None, completion=se.mcmc(100, num_warmup=100), num_iters=45, key=0)
    assert counted.traces == 0
    np.testing.assert_array_equal(shorter.trace.params.mu, results[0].trace.params.mu[:46])
    # Several seeds in one fit (one compiled program, seeds in sequence) equal the per-seed fits,
    # and run all 60 iterations (this once stalled under vmap with L-BFGS).
    for seed, result in enumerate(results):
        for field in ("mu", "tau"):
            np.testing.assert_allclose(getattr(together.trace.params, field)[seed],
                                       getattr(result.trace.params, field), rtol=1e-10, atol=1e-12)
    assert all(np.all(np.isnan(result.trace.loglik)) for result in results)  # no closed-form ℓ
    tail = np.stack([np.stack([r.trace.params.mu, r.trace.params.tau], axis=-1)[-40:] for r in results])
    batch_means = tail.reshape(len(results) * 4, 10, 2).mean(axis=1)  # [seeds · 4 batches, 2]
    assert_mean_matches(batch_means, np.array([np.mean(y), tau_mle]))
    assert np.all(np.abs(batch_means.mean(axis=0) - [np.mean(y), tau_mle]) < 0.05)


def test_mcmc_saem_by_stochastic_newton_converges_to_the_closed_form_mle_with_shrinking_noise():
    """MCMC-SAEM (score stochastic approximation) on y_j ~ N(mu, tau² + σ²), whose MLE is known exactly.

    After the γ = 1 burn-in the iterates wander with the Monte Carlo noise of
    50 draws; with γ_k = 1/k afterwards that noise shrinks, so the spread over
    seeds at the end is a fraction of the spread at the end of the burn-in,
    and the final iterates centre on the MLE (z-score over seeds).
    """
    rng = np.random.default_rng(5)
    y = rng.normal(1.0, np.sqrt(1.5**2 + NOISE_SD**2), size=30)
    mle = np.array([np.mean(y), np.sqrt(np.var(y) - NOISE_SD**2)])
    model = se.models.from_numpyro(examples.normal_normal, y, NOISE_SD)
    burn_in = 20
    result = se.fit(model, None, completion=se.mcmc(50, num_warmup=100),
                    mstep=se.stochastic_newton(se.saem_step_size(burn_in=burn_in)), num_iters=200,
                    key=list(range(8)))
    iterates = np.stack([result.trace.params.mu, result.trace.params.tau], axis=-1)  # [seeds, T + 1, 2]
    assert_mean_matches(iterates[:, -1], mle)
    assert np.all(iterates[:, -1].std(axis=0) < 0.4 * iterates[:, burn_in].std(axis=0))
    assert np.all(np.abs(iterates[:, -1] - mle) < 0.03)
    with pytest.raises(TypeError, match="step_size must be a schedule"):
        se.stochastic_newton(0.1)


def test_bad_options_and_models_raise_clearly():
    with pytest.raises(ValueError, match="num_samples must be an integer >= 1"):
        se.mcmc(0)
    with pytest.raises(ValueError, match="kernel must be 'nuts' or 'hmc'"):
        se.mcmc(10, "gibbs")
    with pytest.raises(ValueError, match="thin must be an integer >= 1"):
        se.mcmc(10, thin=0)
    with pytest.raises(ValueError, match="target_accept_prob must lie in \\(0, 1\\)"):
        se.mcmc(10, target_accept_prob=1.0)
    with pytest.raises(ValueError, match="for kernel='hmc'"):
        se.mcmc(10, num_leapfrog_steps=5)
    with pytest.raises(ValueError, match="step_size must be a positive number"):
        se.mcmc(10, step_size=-0.1)
    assert se.mcmc(10) == se.mcmc(10) and hash(se.mcmc(10, "HMC")) == hash(se.mcmc(10, "hmc"))

    discrete = se.models.from_numpyro(examples.coins, np.array([5, 9, 8, 4, 7]), 10)
    with pytest.raises(TypeError, match="latent sites \\['coin'\\] are discrete.*exact\\(\\)"):
        se.mcmc(10)(discrete)
    with pytest.raises(TypeError, match=r"completion=mcmc\(\.\.\.\) needs a model with init_position.*BinomialMixture has none"):
        se.mcmc(10)(se.models.BinomialMixture(2, 10))

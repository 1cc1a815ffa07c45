"""Louis' standard errors against the autodiff Hessian of the exact log-likelihood, and coverage."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats as scipy_stats

import stochem as se
from stochem.unconstrained import flat_unconstrained

COINS = se.models.BinomialMixture(num_components=2, num_trials=10)
HEADS = [5, 9, 8, 4, 7, 9, 2, 3, 8, 1, 6, 10]


def autodiff_information(model, params, data, fixed=()):
    """−∇² ℓ(u) of the exact observed-data log-likelihood, in the same coordinates as Louis'."""
    fields = tuple(name for name in model.constraints if name not in fixed)
    u, unflatten = flat_unconstrained(model, params, fields)
    return -jax.jit(jax.hessian(lambda flat: model.log_marginal(unflatten(flat), data)))(u)


@pytest.mark.parametrize("fixed", [(), ("weights",)])
@pytest.mark.parametrize("where", ["start", "fixed point"])
def test_exact_louis_information_equals_the_hessian_of_the_loglik(fixed, where):
    init = {"weights": [0.35, 0.65], "probs": [0.75, 0.3]}
    params = COINS.prepare_params(init, None)
    if where == "fixed point":
        params = se.fit(COINS, HEADS, init=init, num_iters=2000, tol=1e-14, fixed=fixed).params
    data = COINS.prepare_data(HEADS)
    louis = se.standard_errors(COINS, params, HEADS, fixed=fixed)
    # Louis' identity holds at any θ, not only at the maximum.
    np.testing.assert_allclose(louis.information, autodiff_information(COINS, params, data, fixed),
                               rtol=1e-8, atol=1e-8)


def test_sampled_louis_information_agrees_within_monte_carlo_error():
    params = COINS.prepare_params({"weights": [0.35, 0.65], "probs": [0.75, 0.3]}, None)
    exact = np.asarray(se.standard_errors(COINS, params, HEADS).information)
    replicates = np.array([np.asarray(se.standard_errors(COINS, params, HEADS, num_samples=2000, key=seed).information)
                           for seed in range(8)])
    from tests.mc_checks import assert_mean_matches
    assert_mean_matches(replicates.reshape(8, -1), exact.ravel())


@pytest.mark.slow
def test_95_percent_intervals_cover_the_truth_at_the_nominal_rate():
    truth = {"weights": np.array([0.4, 0.6]), "probs": np.array([0.8, 0.3])}
    rng = np.random.default_rng(2024)
    num_sets, replicates = 150, 200
    covered = np.zeros(2)
    for _ in range(replicates):
        coins = rng.random(num_sets) < truth["weights"][1]
        heads = rng.binomial(10, np.where(coins, truth["probs"][1], truth["probs"][0]))
        fitted = se.fit(COINS, heads, init=truth, num_iters=500, tol=1e-12)
        errors = se.standard_errors(COINS, fitted.params, heads).params.probs
        covered += np.abs(np.asarray(fitted.params.probs) - truth["probs"]) <= 1.96 * np.asarray(errors)
    coverage = covered / replicates
    # Binomial standard error of a 95% coverage over 200 replicates is 1.5%; allow 4 of them.
    tolerance = 4 * np.sqrt(0.95 * 0.05 / replicates)
    assert np.all(np.abs(coverage - 0.95) < tolerance), coverage


def test_standard_errors_check_their_arguments():
    params = {"weights": [0.5, 0.5], "probs": [0.6, 0.4]}
    with pytest.raises(ValueError, match="fixed names unknown"):
        se.standard_errors(COINS, params, HEADS, fixed=("weight",))
    with pytest.raises(ValueError, match="num_samples"):
        se.standard_errors(COINS, params, HEADS, num_samples=1)


# Each case compiles the Hessian of the mixture's log-likelihood (tens of seconds): one runs in
# the default suite, the other three with the slow checks.
@pytest.mark.parametrize("covariance_type", [
    pytest.param("full", marks=pytest.mark.slow),
    pytest.param("diag", marks=pytest.mark.slow),
    "spherical",
    pytest.param("tied", marks=pytest.mark.slow),
])
def test_gmm_louis_information_equals_the_hessian_of_the_loglik(covariance_type):
    rng = np.random.default_rng(7)
    points = np.concatenate([rng.normal([0.0, 0.0], 1.0, (40, 2)), rng.normal([2.5, 1.0], 0.7, (30, 2))])
    model = se.models.GaussianMixture(2, covariance_type=covariance_type)
    fitted = se.fit(model, points, num_iters=300, tol=1e-12, key=3)
    data = model.prepare_data(points)
    louis = se.standard_errors(model, fitted.params, points)
    autodiff = autodiff_information(model, fitted.params, data)
    scale = np.abs(autodiff).max()
    np.testing.assert_allclose(louis.information / scale, autodiff / scale, atol=1e-6)
    assert np.all(np.asarray(louis.params.means) > 0)


def test_mcmc_louis_errors_match_the_exact_hessian_within_their_monte_carlo_error():
    """Normal–normal numpyro model (y_j ~ N(μ, τ² + 0.7²) after integrating the latent means), at its MLE.

    Louis' formula from 2000 NUTS draws at θ̂ against the inverse Hessian of the
    closed-form ℓ; the differences, over their jackknife Monte Carlo errors, are
    z-scores.
    """
    from tests.mc_checks import z_threshold
    from tests.models import numpyro_examples as examples

    y = np.array([0.4, -1.3, 2.2, 0.9, 1.5, -0.2, 3.1, -2.0])
    noise_sd = 0.7
    model = se.models.from_numpyro(examples.normal_normal, y, noise_sd)
    mle = {"mu": float(y.mean()), "tau": float(np.sqrt(y.var() - noise_sd**2))}

    def loglik(vector):
        return jnp.sum(jax.scipy.stats.norm.logpdf(y, vector[0], jnp.sqrt(vector[1] ** 2 + noise_sd**2)))

    exact = np.sqrt(np.diag(np.linalg.inv(-jax.jit(jax.hessian(loglik))(jnp.array([mle["mu"], mle["tau"]])))))
    errors = se.standard_errors(model, mle, None, completion=se.mcmc(2000, num_warmup=300), key=1)
    estimate = np.array([float(errors.params.mu), float(errors.params.tau)])
    mc_stderr = np.array([float(errors.params_mc_stderr.mu), float(errors.params_mc_stderr.tau)])
    assert np.all((mc_stderr > 0) & (mc_stderr < 0.1 * exact))  # the Monte Carlo error is small and reported
    z = (estimate - exact) / mc_stderr
    assert np.all(np.abs(z) < z_threshold(2)), (estimate, exact, mc_stderr)
    with pytest.raises(ValueError, match="not both") as caught:
        se.standard_errors(model, mle, None, completion=se.mcmc(100), num_samples=10)
    assert caught.value.argument == "num_samples"
    with pytest.raises(ValueError, match="at least 2 per batch") as caught:
        se.standard_errors(model, mle, None, completion=se.mcmc(10))
    assert caught.value.argument == "completion"

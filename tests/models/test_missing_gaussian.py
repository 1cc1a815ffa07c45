"""MissingGaussian: checked against numpy/scipy computations by index selection.

References used here never touch the model's masking trick: conditional
moments and log-densities are computed row by row on the observed
sub-vectors (``np.ix_``), the maximum-likelihood estimate by BFGS (scipy) on
a log-likelihood and gradient written in numpy per missingness pattern.
"""

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import optimize
from scipy import stats as scipy_stats

import stochem as se
from tests.tracing import count_traces
from stochem.completion import sampled_stats
from stochem.models.missing_gaussian import MissingGaussianCompletion
from tests.mc_checks import z_scores, z_threshold

MODEL = se.models.MissingGaussian()
# Compiled once per shape: much faster than running the methods op by op.
conditional_moments = jax.jit(MODEL.conditional_moments)
expected_stats = jax.jit(MODEL.expected_stats)
observed_log_density = jax.jit(MODEL.observed_log_density)
log_marginal = jax.jit(MODEL.log_marginal)
# The airquality data ship with the package (see stochem/data/README.md).
AIRQUALITY_PATH = Path(se.__file__).parent / "data" / "airquality.csv"
AIRQUALITY_COLUMNS = ["Ozone", "Solar.R", "Wind", "Temp"]


def synthetic_data(seed=0, num_rows=40, missing_rate=0.25):
    """D = 3 correlated Gaussian rows, entries missing completely at random, plus
    one row with everything missing (allowed: it must contribute nothing)."""
    rng = np.random.default_rng(seed)
    true_cov = np.array([[2.0, 0.8, -0.5], [0.8, 1.0, 0.3], [-0.5, 0.3, 1.5]])
    values = rng.multivariate_normal([1.0, -2.0, 0.5], true_cov, size=num_rows)
    values[rng.random(values.shape) < missing_rate] = np.nan
    values[-1] = np.nan
    return values


def airquality():
    return pd.read_csv(AIRQUALITY_PATH)[AIRQUALITY_COLUMNS].to_numpy(dtype=float)


# Not the MLE of either data set: a generic point where every formula is exercised.
SYNTHETIC_PARAMS = {"mean": [0.5, -1.0, 1.0],
                    "covariance": [[1.5, 0.6, -0.4], [0.6, 1.2, 0.2], [-0.4, 0.2, 2.0]]}


def generic_params(which, data):
    """A generic non-MLE point with correlated Σ for the named data set."""
    if which == "synthetic":
        return MODEL.prepare_params(SYNTHETIC_PARAMS, data)
    diagonal = MODEL.init_params(None, data)  # observed means and variances
    scale = np.sqrt(np.diag(diagonal.covariance))
    return diagonal._replace(covariance=diagonal.covariance + 0.3 * np.outer(scale, scale))


def load(which):
    return synthetic_data() if which == "synthetic" else airquality()


# ---------------------------------------------------------------- references
def reference_conditional(mean, cov, row):
    """E[x_m | x_o] and Cov[x_m | x_o] of one row, by index selection."""
    obs, mis = ~np.isnan(row), np.isnan(row)
    filled, cond_cov = row.copy(), np.zeros((row.size, row.size))
    if not mis.any():
        return filled, cond_cov
    if not obs.any():
        return mean.copy(), cov.copy()
    gain = cov[np.ix_(mis, obs)] @ np.linalg.inv(cov[np.ix_(obs, obs)])
    filled[mis] = mean[mis] + gain @ (row[obs] - mean[obs])
    cond_cov[np.ix_(mis, mis)] = cov[np.ix_(mis, mis)] - gain @ cov[np.ix_(obs, mis)]
    return filled, cond_cov


def reference_row_logliks(mean, cov, values):
    """log N(x_o; μ_o, Σ_oo) per row with scipy (0 for a row with nothing observed)."""
    out = []
    for row in values:
        obs = ~np.isnan(row)
        out.append(scipy_stats.multivariate_normal(mean[obs], cov[np.ix_(obs, obs)]).logpdf(row[obs])
                   if obs.any() else 0.0)
    return np.array(out)


def direct_mle(values):
    """Maximize Σ_n log N(x_o; μ_o, Σ_oo) directly with BFGS and an analytic gradient.

    Parameters: μ and a Cholesky factor L of Σ with log diagonal. Per
    missingness pattern (observed index set I, rows X, residuals R = X − μ_I),
    with S = Σ_II and scatter W = RᵀR::

        ℓ_I     = −½ [n log det S + tr(S⁻¹ W) + n |I| log 2π]
        ∂ℓ/∂μ_I = S⁻¹ Σ_rows r,      ∂ℓ/∂S = ½ (S⁻¹ W S⁻¹ − n S⁻¹)

    and ∂ℓ/∂L = 2 G L for the symmetric gradient G = ∂ℓ/∂Σ.

    Returns:
        ``(mean, covariance, max log-likelihood, largest |gradient| at the end)``;
        the gradient is taken on standardized columns, so it is scale free.
    """
    dim = values.shape[1]
    observed = ~np.isnan(values)
    # Optimize on standardized columns, which keeps BFGS well conditioned.
    center, scale = np.nanmean(values, axis=0), np.nanstd(values, axis=0)
    values = (values - center) / scale
    groups = [(np.flatnonzero(pattern), values[(observed == pattern).all(axis=1)][:, pattern])
              for pattern in np.unique(observed, axis=0) if pattern.any()]
    lower = np.tril_indices(dim)

    def unpack(theta):
        factor = np.zeros((dim, dim))
        factor[lower] = theta[dim:]
        factor[np.diag_indices(dim)] = np.exp(np.diag(factor))
        return theta[:dim], factor

    def negative_loglik_and_gradient(theta):
        mean, factor = unpack(theta)
        cov = factor @ factor.T
        loglik, grad_mean, grad_cov = 0.0, np.zeros(dim), np.zeros((dim, dim))
        for index, rows in groups:
            sub_inv = np.linalg.inv(cov[np.ix_(index, index)])
            residuals = rows - mean[index]
            scatter = residuals.T @ residuals
            count = rows.shape[0]
            loglik -= 0.5 * (count * np.linalg.slogdet(cov[np.ix_(index, index)])[1]
                             + np.trace(sub_inv @ scatter) + count * index.size * np.log(2 * np.pi))
            grad_mean[index] += sub_inv @ residuals.sum(axis=0)
            grad_cov[np.ix_(index, index)] += 0.5 * (sub_inv @ scatter @ sub_inv - count * sub_inv)
        grad_factor = 2.0 * grad_cov @ factor
        grad_factor[np.diag_indices(dim)] *= np.diag(factor)  # d L_ii / d log L_ii
        return -loglik, -np.concatenate([grad_mean, grad_factor[lower]])

    start = np.concatenate([np.zeros(dim), np.zeros(lower[0].size)])  # μ = 0, Σ = I
    result = optimize.minimize(negative_loglik_and_gradient, start, jac=True, method="BFGS",
                               options={"gtol": 1e-9, "maxiter": 5000})
    mean, factor = unpack(result.x)
    # Back to the data's units (the MLE is affine equivariant; the Jacobian only shifts ℓ).
    mean, cov = center + scale * mean, np.outer(scale, scale) * (factor @ factor.T)
    max_loglik = -result.fun - np.sum(observed * np.log(scale))  # log |Jacobian| per observed entry
    return mean, cov, max_loglik, np.abs(result.jac).max()


def standardized_errors(params, mean, cov):
    """Parameter differences in units of the reference standard deviations."""
    scale = np.sqrt(np.diag(cov))
    return (np.abs(np.asarray(params.mean) - mean) / scale).max(), \
        (np.abs(np.asarray(params.covariance) - cov) / np.outer(scale, scale)).max()


# ------------------------------------------------------- exact computations
@pytest.mark.parametrize("which", ["synthetic", "airquality"])
def test_conditional_moments_and_expected_stats_match_index_selection(which):
    values = load(which)
    data = MODEL.prepare_data(values)
    params = generic_params(which, data)
    mean, cov = np.asarray(params.mean), np.asarray(params.covariance)
    completion = conditional_moments(params, data)
    reference = [reference_conditional(mean, cov, row) for row in values]
    filled = np.array([f for f, _ in reference])
    cond_cov = np.array([c for _, c in reference])
    informative = ~np.isnan(values).all(axis=1)
    np.testing.assert_allclose(completion.filled[informative], filled[informative], rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(completion.extra_cov[informative], cond_cov[informative],
                               rtol=1e-9, atol=1e-9 * cov.max())
    stats = expected_stats(params, data)
    w = informative.astype(float)
    np.testing.assert_allclose(stats.count, w.sum())
    np.testing.assert_allclose(stats.sum_x, w @ filled, rtol=1e-12)
    second_moment = np.einsum("n,ni,nj->ij", w, filled, filled) + np.einsum("n,nij->ij", w, cond_cov)
    np.testing.assert_allclose(stats.sum_outer, second_moment, rtol=1e-10)


@pytest.mark.parametrize("which", ["synthetic", "airquality"])
def test_log_marginal_equals_scipy_on_observed_subvectors(which):
    values = load(which)
    data = MODEL.prepare_data(values)
    params = generic_params(which, data)
    reference = reference_row_logliks(np.asarray(params.mean), np.asarray(params.covariance), values)
    per_row = np.asarray(observed_log_density(params, data))
    np.testing.assert_allclose(per_row, reference, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(log_marginal(params, data), reference.sum(), rtol=1e-12)


def test_rows_with_nothing_observed_contribute_nothing():
    values = synthetic_data()
    assert np.isnan(values[-1]).all()
    with_row, without_row = MODEL.prepare_data(values), MODEL.prepare_data(values[:-1])
    params = MODEL.prepare_params(SYNTHETIC_PARAMS, with_row)
    np.testing.assert_allclose(log_marginal(params, with_row), log_marginal(params, without_row),
                               rtol=1e-13)
    for a, b in zip(expected_stats(params, with_row), expected_stats(params, without_row)):
        np.testing.assert_allclose(a, b, rtol=1e-13)


def test_log_joint_of_a_draw_is_the_complete_data_density():
    values = synthetic_data()
    data = MODEL.prepare_data(values)
    params = MODEL.prepare_params(SYNTHETIC_PARAMS, data)
    latent = jax.jit(MODEL.sample_latent)(jax.random.key(3), params, data)
    observed = ~np.isnan(values)
    # A draw keeps the observed entries and fills every missing one.
    np.testing.assert_array_equal(np.asarray(latent.filled)[observed], values[observed])
    assert np.isfinite(np.asarray(latent.filled)).all()
    np.testing.assert_array_equal(latent.extra_cov, 0.0)
    informative = observed.any(axis=1)
    reference = scipy_stats.multivariate_normal(SYNTHETIC_PARAMS["mean"], SYNTHETIC_PARAMS["covariance"]) \
        .logpdf(np.asarray(latent.filled)[informative]).sum()
    np.testing.assert_allclose(jax.jit(MODEL.log_joint)(params, data, latent), reference, rtol=1e-12)


def test_no_missing_data_one_step_gives_sample_mean_and_biased_covariance():
    rng = np.random.default_rng(1)
    values = rng.normal(size=(30, 3)) @ np.array([[1.0, 0.5, 0.0], [0.0, 1.0, 0.3], [0.0, 0.0, 2.0]])
    start = {"mean": [5.0, -5.0, 0.0], "covariance": np.diag([10.0, 0.1, 3.0])}
    result = se.fit(MODEL, values, init=start, num_iters=1)
    np.testing.assert_allclose(result.params.mean, values.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(result.params.covariance, np.cov(values.T, bias=True), rtol=1e-11)


# --------------------------------------------------- EM against direct MLE
@pytest.mark.parametrize("which", ["synthetic", "airquality"])
def test_em_fixed_point_is_the_direct_maximum_likelihood_estimate(which):
    values = load(which)
    result = se.fit(MODEL, values, num_iters=3000, tol=1e-11)
    assert result.converged
    mean, cov, max_loglik, max_gradient = direct_mle(values)
    # The reference converged: a scale-free gradient of 1e-5 with curvature ~ n (rows)
    # moves the parameters by far less than the 1e-4 compared below.
    assert max_gradient < 1e-5
    # The direct maximum also agrees with scipy.stats row by row.
    np.testing.assert_allclose(reference_row_logliks(mean, cov, values).sum(), max_loglik, rtol=1e-12)
    em_loglik = float(result.trace.loglik[-1])
    assert abs(em_loglik - max_loglik) < 1e-6
    mean_error, cov_error = standardized_errors(result.params, mean, cov)
    assert mean_error < 1e-4 and cov_error < 1e-4, (mean_error, cov_error)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), missing_rate=st.floats(0.05, 0.6))
def test_exact_em_never_decreases_the_log_likelihood(seed, missing_rate):
    rng = np.random.default_rng(seed)
    dim, num_rows = 3, 15
    values = rng.normal(size=(num_rows, dim)) @ rng.normal(size=(dim, dim))
    mask = rng.random(values.shape) < missing_rate
    mask[: dim + 1] = False  # D + 1 complete rows keep every M-step covariance positive definite
    values[mask] = np.nan
    spread = rng.normal(size=(dim, dim))
    start = {"mean": rng.normal(scale=3.0, size=dim), "covariance": spread @ spread.T + 0.5 * np.eye(dim)}
    loglik = np.asarray(se.fit(MODEL, values, init=start, num_iters=20).trace.loglik)
    assert np.isfinite(loglik).all()
    assert np.all(np.diff(loglik) >= -1e-10 * np.maximum(1.0, np.abs(loglik[1:]))), np.diff(loglik).min()


# ----------------------------------------------------------- Monte Carlo
def test_sampled_stats_average_to_the_exact_expected_stats():
    """z-scores of S per-draw statistics against the exact expectation.

    9 free entries (Σx: 3, upper triangle of Σ(xxᵀ + C): 6) share a Bonferroni
    threshold at family-wise level 1e-4 (|z| < 4.4). Dropping the conditional
    covariance from the exact statistics must push z far beyond it.
    """
    values = synthetic_data()
    data = MODEL.prepare_data(values)
    params = MODEL.prepare_params(SYNTHETIC_PARAMS, data)
    per_draw = sampled_stats(MODEL, jax.random.key(7), params, data, 4000)
    exact = expected_stats(params, data)
    np.testing.assert_array_equal(per_draw.count, exact.count)  # n does not depend on the draw
    upper = np.triu_indices(3)
    draws = np.concatenate([np.asarray(per_draw.sum_x), np.asarray(per_draw.sum_outer)[:, *upper]], axis=1)
    expected = np.concatenate([np.asarray(exact.sum_x), np.asarray(exact.sum_outer)[upper]])
    z = z_scores(draws, expected)
    threshold = z_threshold(z.size)
    assert np.abs(z).max() < threshold, z
    # Power: the exact statistics without the conditional covariance term.
    without_cov = MODEL.suff_stats(data, MissingGaussianCompletion(
        conditional_moments(params, data).filled, jnp.zeros((values.shape[0], 3, 3))))
    z_wrong = z_scores(draws[:, 3:], np.asarray(without_cov.sum_outer)[upper])
    assert np.abs(z_wrong).max() > 10 * threshold, z_wrong


def test_mcem_ends_at_the_exact_fixed_point_within_its_seed_spread():
    """32 seeds of MCEM (100 draws, 30 iterations) scatter around the exact EM fixed point.

    For each of the 9 free parameters, the mean over seeds is compared with the
    exact fixed point in units of its standard error (spread / √32); threshold
    as for z-scores at family-wise level 1e-4. Exact EM from the same start is
    within ~1e-5 of its fixed point after 30 iterations, and the O(1/S) bias of
    the covariance is ~0.05 standard errors, both negligible against the
    standard error (~2e-3).
    """
    values = synthetic_data()
    exact = se.fit(MODEL, values, num_iters=500, tol=1e-12)
    assert exact.converged
    sampled = se.fit(MODEL, values, completion=se.monte_carlo(100), num_iters=30, key=list(range(32)))
    upper = np.triu_indices(3)
    per_seed = np.concatenate([np.asarray(sampled.params.mean),
                               np.asarray(sampled.params.covariance)[:, *upper]], axis=1)
    target = np.concatenate([np.asarray(exact.params.mean), np.asarray(exact.params.covariance)[upper]])
    z = z_scores(per_seed, target)
    assert np.abs(z).max() < z_threshold(z.size), z
    # The seeds do move (a sampler that ignored its key would give zero spread).
    assert per_seed.std(axis=0).min() > 0


# ------------------------------------------------------- gradient M-step
def test_closed_form_mstep_is_a_stationary_point_and_lbfgs_finds_it():
    values = synthetic_data()
    data = MODEL.prepare_data(values)
    params = MODEL.prepare_params(SYNTHETIC_PARAMS, data)
    stats = expected_stats(params, data)
    closed = MODEL.m_step(stats)
    grads = jax.jit(jax.grad(MODEL.complete_loglik))(closed, data, stats)
    # Q is a sum over n rows of O(1) terms: its gradient at the maximizer is rounding error.
    assert np.abs(np.asarray(grads.mean)).max() < 1e-10 * float(stats.count)
    assert np.abs(np.asarray(grads.covariance)).max() < 1e-10 * float(stats.count)
    transform = se.gradient(optax.lbfgs(), num_steps=60)(MODEL)
    ascended, _ = jax.jit(transform.update)(stats, transform.init(params, data), params, data)
    assert float(MODEL.complete_loglik(ascended, data, stats)) <= float(MODEL.complete_loglik(closed, data, stats)) + 1e-9
    # Q is concave in (μ, Σ⁻¹) with a unique maximizer; L-BFGS solves it to near rounding error.
    np.testing.assert_allclose(ascended.mean, closed.mean, atol=1e-7)
    np.testing.assert_allclose(ascended.covariance, closed.covariance, atol=1e-7)


def test_second_fit_with_same_shapes_does_not_retrace():
    values = synthetic_data()
    se.fit(MODEL, values, num_iters=3)
    with count_traces() as counted:
        se.fit(MODEL, values * 2.0, num_iters=3)
    assert counted.traces == 0


# ------------------------------------------------------------- bad input
GOOD = synthetic_data()
column_missing = GOOD.copy()
column_missing[:, 1] = np.nan
column_constant = GOOD.copy()
column_constant[:, 2] = np.where(np.isnan(column_constant[:, 2]), np.nan, 4.0)
with_inf = GOOD.copy()
with_inf[0, 0] = np.inf
one_informative_row = np.array([[1.0, 2.0], [np.nan, np.nan]])


@pytest.mark.parametrize(
    "data, error, message",
    [
        (GOOD[:, 0], ValueError, "2-D array"),
        (GOOD[None], ValueError, "2-D array"),
        (np.zeros((5, 0)), ValueError, "at least one column"),
        (with_inf, ValueError, "inf"),
        (column_missing, ValueError, "column 1 has no observed values"),
        (column_constant, ValueError, "column 2 has a single distinct observed value"),
        (GOOD[:1], ValueError, "at least 2 rows"),
        (one_informative_row, ValueError, "at least 2 rows with an observed entry"),
        ([["a", "b"], ["c", "d"]], TypeError, "array of numbers"),
    ],
)
def test_bad_data_is_rejected_before_tracing(data, error, message):
    with count_traces() as counted:
        with pytest.raises(error, match=message):
            se.fit(MODEL, data, num_iters=2)
    assert counted.traces == 0


@pytest.mark.parametrize(
    "init, message",
    [
        ({"mean": [0.0, 0.0], "covariance": np.eye(3)}, r"init.mean must have shape \(3,\)"),
        ({"mean": [0.0, 0.0, 0.0], "covariance": np.eye(2)}, r"init.covariance must have shape \(3, 3\)"),
        ({"mean": [0.0, 0.0, 0.0], "covariance": [[1, 0.5, 0], [0, 1, 0], [0, 0, 1]]}, "symmetric"),
        ({"mean": [0.0, 0.0, 0.0], "covariance": [[1, 2, 0], [2, 1, 0], [0, 0, 1]]}, "positive definite"),
        ({"mean": [0.0, np.nan, 0.0], "covariance": np.eye(3)}, "NaN"),
        ({"mean": [0.0, 0.0, 0.0]}, "missing"),
    ],
)
def test_bad_init_is_rejected_before_tracing(init, message):
    MODEL.prepare_data(GOOD)  # JAX compiles the eager operations of data preparation once per process
    with count_traces() as counted:
        with pytest.raises(ValueError, match=message):
            se.fit(MODEL, GOOD, init=init, num_iters=2)
    assert counted.traces == 0


@pytest.mark.parametrize("reg_covar, error", [(-1.0, ValueError), (np.nan, ValueError), ("small", TypeError),
                                              (True, TypeError)])
def test_bad_reg_covar_is_rejected(reg_covar, error):
    with pytest.raises(error, match="reg_covar"):
        se.models.MissingGaussian(reg_covar=reg_covar)


def test_reg_covar_is_added_to_the_mstep_covariance():
    values = synthetic_data()
    data = MODEL.prepare_data(values)
    stats = expected_stats(MODEL.prepare_params(SYNTHETIC_PARAMS, data), data)
    regularized = se.models.MissingGaussian(reg_covar=0.1).m_step(stats)
    np.testing.assert_allclose(regularized.covariance, MODEL.m_step(stats).covariance + 0.1 * np.eye(3),
                               rtol=1e-14)

"""GaussianMixture(missing=True): labels and missing entries completed together.

References share no code with stochem: the observed-data log-likelihood, the
posterior and the conditional moments are computed row by row on the observed
sub-vectors with numpy/scipy (``np.ix_``); the maximum likelihood estimate by
direct maximization of that log-likelihood with scipy from several starts; the
reductions to the complete-data mixture (nothing missing) and to
``MissingGaussian`` (one component); Monte Carlo results by z-scores.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import optimize
from scipy import stats as scipy_stats
from scipy.special import logsumexp

import stochem as se
from stochem.completion import sampled_stats
from tests.mc_checks import FAMILY_ALPHA, assert_mean_matches, z_scores

COVARIANCE_TYPES = ["full", "diag", "spherical", "tied"]


def two_clusters(num_rows=60, missing_rate=0.25, seed=0, num_features=3):
    """Two separated 3-D clusters, entries missing completely at random, one row missing entirely."""
    rng = np.random.default_rng(seed)
    labels = rng.random(num_rows) < 0.4
    centres = np.array([[0.0, 0.0, 0.0], [3.0, 2.0, -1.0]])[:, :num_features]
    shapes = np.array([[[1.0, 0.0, 0.0], [0.5, 0.8, 0.0], [-0.3, 0.2, 0.6]],
                       [[0.7, 0.0, 0.0], [-0.3, 1.1, 0.0], [0.1, 0.4, 0.9]]])[:, :num_features, :num_features]
    noise = rng.standard_normal((num_rows, num_features))
    values = centres[labels.astype(int)] + np.einsum("nde,ne->nd", shapes[labels.astype(int)], noise)
    values[rng.random(values.shape) < missing_rate] = np.nan
    values[3] = np.nan
    return values


def generic_params(covariance_type, num_features=3):
    """A point that is not a fixed point, with correlated full covariances."""
    full = np.array([[[1.4, 0.4, -0.3], [0.4, 1.0, 0.2], [-0.3, 0.2, 0.8]],
                     [[0.9, -0.2, 0.1], [-0.2, 1.5, 0.3], [0.1, 0.3, 1.1]]])[:, :num_features, :num_features]
    covariances = {"full": full, "diag": np.diagonal(full, axis1=1, axis2=2).copy(),
                   "spherical": np.array([1.1, 0.8]), "tied": full[0]}[covariance_type]
    return {"weights": np.array([0.55, 0.45]), "means": np.array([[0.3, -0.2, 0.1], [2.5, 1.5, -0.5]])[:, :num_features],
            "covariances": covariances}


def full_matrices(covariance_type, covariances, num_components, num_features):
    covariances = np.asarray(covariances)
    if covariance_type == "full":
        return covariances
    if covariance_type == "diag":
        return np.stack([np.diag(row) for row in covariances])
    if covariance_type == "spherical":
        return np.stack([variance * np.eye(num_features) for variance in covariances])
    return np.stack([covariances] * num_components)


# --- references, row by row ---------------------------------------------------------------------


def reference_e_step(values, weights, means, covariances):
    """Per row: ℓ_n, r_nk, m_nk, C_nk by index selection (rows with nothing observed: ℓ = 0, no stats)."""
    num_rows, num_features = values.shape
    num_components = len(weights)
    logliks, posteriors = np.zeros(num_rows), np.zeros((num_rows, num_components))
    filled = np.zeros((num_rows, num_components, num_features))
    conditional = np.zeros((num_rows, num_components, num_features, num_features))
    for n, row in enumerate(values):
        obs, mis = ~np.isnan(row), np.isnan(row)
        if not obs.any():
            continue
        log_joint = np.array([np.log(weights[k]) + scipy_stats.multivariate_normal(
            means[k][obs], covariances[k][np.ix_(obs, obs)]).logpdf(row[obs]) for k in range(num_components)])
        logliks[n] = logsumexp(log_joint)
        posteriors[n] = np.exp(log_joint - logliks[n])
        for k in range(num_components):
            filled[n, k] = row
            if mis.any():
                gain = covariances[k][np.ix_(mis, obs)] @ np.linalg.inv(covariances[k][np.ix_(obs, obs)])
                filled[n, k, mis] = means[k][mis] + gain @ (row[obs] - means[k][obs])
                conditional[n, k][np.ix_(mis, mis)] = (covariances[k][np.ix_(mis, mis)]
                                                       - gain @ covariances[k][np.ix_(obs, mis)])
    return logliks, posteriors, filled, conditional


def reference_stats(covariance_type, posteriors, filled, conditional):
    counts = posteriors.sum(axis=0)
    first = np.einsum("nk,nkd->kd", posteriors, filled)
    second = (np.einsum("nk,nkd,nke->kde", posteriors, filled, filled)
              + np.einsum("nk,nkde->kde", posteriors, conditional))
    second = {"full": second, "diag": np.diagonal(second, axis1=1, axis2=2),
              "spherical": np.trace(second, axis1=1, axis2=2), "tied": second.sum(axis=0)}[covariance_type]
    return counts, first, second


def observed_loglik(values, weights, means, full, xp=np):
    """Σ_n log Σ_k w_k N(x_{n,o}; μ_{k,o}, Σ_{k,oo}), grouped by missingness pattern, by Cholesky factors.

    ``xp`` is numpy, or jax.numpy for the gradient the direct maximization uses.
    """
    observed = ~np.isnan(values)
    total = 0.0
    for pattern in np.unique(observed, axis=0):
        if not pattern.any():
            continue
        rows = values[(observed == pattern).all(axis=1)][:, pattern]
        index = np.flatnonzero(pattern)
        per_component = []
        for k in range(len(weights)):
            factor = xp.linalg.cholesky(full[k][index][:, index])
            whitened = xp.linalg.solve(factor, (rows - means[k][index]).T)
            per_component.append(xp.log(weights[k]) - 0.5 * xp.sum(whitened**2, axis=0)
                                 - xp.sum(xp.log(xp.diag(factor))) - 0.5 * pattern.sum() * np.log(2 * np.pi))
        stacked = xp.stack(per_component)
        peak = xp.max(stacked, axis=0)
        total = total + xp.sum(peak + xp.log(xp.sum(xp.exp(stacked - peak), axis=0)))
    return total


class Parameterization:
    """Unconstrained coordinates of a K-component mixture of a covariance type (for scipy), in jax.numpy."""

    def __init__(self, covariance_type, num_components, num_features):
        self.type, self.k, self.d = covariance_type, num_components, num_features
        self.lower = np.tril_indices(num_features)

    def _cholesky(self, theta):
        factor = jnp.zeros((self.d, self.d)).at[self.lower].set(theta)
        diagonal = jnp.diag(factor)
        return factor + jnp.diag(jnp.exp(diagonal) - diagonal)

    def unpack(self, theta):
        k, d = self.k, self.d
        logits = jnp.append(theta[: k - 1], 0.0)
        weights = jnp.exp(logits - jax.scipy.special.logsumexp(logits))
        means = theta[k - 1: k - 1 + k * d].reshape(k, d)
        rest = theta[k - 1 + k * d:]
        size = len(self.lower[0])
        if self.type == "full":
            factors = [self._cholesky(rest[i * size: (i + 1) * size]) for i in range(k)]
            covariances = jnp.stack([f @ f.T for f in factors])
        elif self.type == "tied":
            factor = self._cholesky(rest)
            covariances = factor @ factor.T
        else:
            covariances = jnp.exp(rest).reshape((k, d) if self.type == "diag" else (k,))
        return weights, means, covariances

    def start(self, rng, values):
        k, d = self.k, self.d
        imputed = np.where(np.isnan(values), np.nanmean(values, axis=0), values)
        means = imputed[rng.choice(len(values), k, replace=False)] + 0.1 * rng.standard_normal((k, d))
        covariance = {"full": np.zeros(k * len(self.lower[0])), "tied": np.zeros(len(self.lower[0])),
                      "diag": np.zeros(k * d), "spherical": np.zeros(k)}[self.type]
        return np.concatenate([np.zeros(k - 1), means.ravel(), covariance])


def jnp_full_matrices(covariance_type, covariances, num_components, num_features):
    if covariance_type == "full":
        return covariances
    if covariance_type == "diag":
        return jax.vmap(jnp.diag)(covariances)
    if covariance_type == "spherical":
        return covariances[:, None, None] * jnp.eye(num_features)
    return jnp.broadcast_to(covariances, (num_components, num_features, num_features))


def direct_maximum(values, covariance_type, num_components=2, num_starts=6, seed=0):
    """max over several random starts of ℓ maximized directly by BFGS (scipy; gradient by jax), and the maximizer."""
    rng = np.random.default_rng(seed)
    param = Parameterization(covariance_type, num_components, values.shape[1])

    def negative_loglik(theta):
        weights, means, covariances = param.unpack(theta)
        full = jnp_full_matrices(covariance_type, covariances, num_components, values.shape[1])
        return -observed_loglik(values, weights, means, full, xp=jnp)

    value_and_grad = jax.jit(jax.value_and_grad(negative_loglik))

    def objective(theta):
        value, grad = value_and_grad(theta)
        return float(value), np.asarray(grad)

    best = None
    for _ in range(num_starts):
        result = optimize.minimize(objective, param.start(rng, values), jac=True, method="BFGS",
                                   options={"gtol": 1e-8, "maxiter": 5000})
        if np.isfinite(result.fun) and (best is None or result.fun < best.fun):
            best = result
    assert np.abs(best.jac).max() < 1e-5  # the reference converged
    return -best.fun, [np.asarray(leaf) for leaf in param.unpack(best.x)]


def sorted_by_first_mean(weights, means, covariances, covariance_type):
    order = np.argsort(np.asarray(means)[:, 0])
    covariances = np.asarray(covariances) if covariance_type == "tied" else np.asarray(covariances)[order]
    return np.asarray(weights)[order], np.asarray(means)[order], covariances


# --- exact E-step against index selection ----------------------------------------------------


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_loglik_posterior_and_expected_stats_equal_index_selection(covariance_type):
    values = two_clusters(num_rows=30)
    model = se.models.GaussianMixture(2, covariance_type, missing=True)
    data = model.prepare_data(values)
    params = model.prepare_params(generic_params(covariance_type), data)
    full = full_matrices(covariance_type, params.covariances, 2, 3)
    logliks, posteriors, filled, conditional = reference_e_step(values, np.asarray(params.weights),
                                                                np.asarray(params.means), full)
    stats, loglik = jax.jit(model.expected_stats_and_loglik)(params, data)
    np.testing.assert_allclose(loglik, logliks.sum(), rtol=1e-12)
    np.testing.assert_allclose(jax.jit(model.log_marginal)(params, data), logliks.sum(), rtol=1e-12)
    informative = ~np.isnan(values).all(axis=1)
    np.testing.assert_allclose(np.asarray(model.posterior(params, data))[informative], posteriors[informative],
                               rtol=1e-10, atol=1e-14)
    for value, reference in zip(stats, reference_stats(covariance_type, posteriors, filled, conditional)):
        np.testing.assert_allclose(value, reference, rtol=1e-10, atol=1e-12)


def test_a_row_with_nothing_observed_adds_nothing():
    values = two_clusters(num_rows=30)
    assert np.isnan(values[3]).all()
    model = se.models.GaussianMixture(2, "full", missing=True)
    with_row, without_row = model.prepare_data(values), model.prepare_data(np.delete(values, 3, axis=0))
    params = model.prepare_params(generic_params("full"), with_row)
    expected_stats_and_loglik = jax.jit(model.expected_stats_and_loglik)  # one program, not op by op
    stats_with, loglik_with = expected_stats_and_loglik(params, with_row)
    stats_without, loglik_without = expected_stats_and_loglik(params, without_row)
    np.testing.assert_allclose(loglik_with, loglik_without, rtol=1e-13)
    for a, b in zip(stats_with, stats_without):
        np.testing.assert_allclose(a, b, rtol=1e-13)


# --- reductions to the existing models ------------------------------------------------------


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_with_nothing_missing_it_is_the_plain_mixture_step_for_step(covariance_type):
    values = two_clusters(num_rows=50, missing_rate=0.0)[np.arange(50) != 3]
    start = generic_params(covariance_type)
    plain = se.fit(se.models.GaussianMixture(2, covariance_type), values, init=start, num_iters=15)
    missing = se.fit(se.models.GaussianMixture(2, covariance_type, missing=True), values, init=start, num_iters=15)
    np.testing.assert_allclose(missing.trace.loglik, plain.trace.loglik, rtol=1e-12)
    for a, b in zip(missing.trace.params, plain.trace.params):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def test_with_one_component_it_is_missing_gaussian_step_for_step():
    values = two_clusters(num_rows=40)
    start = {"mean": [0.5, 0.5, -0.2], "covariance": generic_params("full")["covariances"][0]}
    single = se.fit(se.models.MissingGaussian(), values, init=start, num_iters=25)
    mixture = se.fit(se.models.GaussianMixture(1, "full", reg_covar=0.0, missing=True), values, num_iters=25,
                     init={"weights": [1.0], "means": [start["mean"]], "covariances": [start["covariance"]]})
    np.testing.assert_allclose(mixture.trace.loglik, single.trace.loglik, rtol=1e-12)
    np.testing.assert_allclose(mixture.trace.params.means[:, 0], single.trace.params.mean, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(mixture.trace.params.covariances[:, 0], single.trace.params.covariance,
                               rtol=1e-10, atol=1e-12)


# --- the maximum likelihood estimate ------------------------------------------------------------


# Each case compiles EM for eight seeds and the gradient of the reference: one runs in the default
# suite, the others with the slow checks.
@pytest.mark.parametrize("covariance_type", [
    "full",
    pytest.param("diag", marks=pytest.mark.slow),
    pytest.param("spherical", marks=pytest.mark.slow),
    pytest.param("tied", marks=pytest.mark.slow),
])
def test_em_reaches_the_direct_maximum_of_the_observed_loglik(covariance_type):
    values = two_clusters(num_rows=100, seed=1)
    model = se.models.GaussianMixture(2, covariance_type, reg_covar=0.0, missing=True)
    seeds = list(range(8))
    fits = se.fit(model, values, num_iters=3000, tol=1e-12, key=seeds)
    final = np.asarray(fits.trace.loglik)[np.arange(len(seeds)), np.asarray(fits.num_iters)]
    best = int(np.nanargmax(final))
    assert bool(fits.converged[best])
    em_loglik = float(final[best])
    direct_loglik, direct_params = direct_maximum(values, covariance_type)
    # The stochem log-likelihood at the EM estimate, recomputed by the independent numpy code.
    em_params = [np.asarray(leaf)[best] for leaf in fits.params]
    full = full_matrices(covariance_type, em_params[2], 2, 3)
    np.testing.assert_allclose(observed_loglik(values, em_params[0], em_params[1], full), em_loglik, rtol=1e-12)
    assert abs(em_loglik - direct_loglik) < 1e-6, (em_loglik, direct_loglik)
    for em, direct in zip(sorted_by_first_mean(*em_params, covariance_type),
                          sorted_by_first_mean(*direct_params, covariance_type)):
        np.testing.assert_allclose(em, direct, rtol=1e-4, atol=1e-5)


# --- Monte Carlo completion ---------------------------------------------------------------------


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_sampled_statistics_agree_with_exact_ones(covariance_type):
    values = two_clusters(num_rows=30)
    model = se.models.GaussianMixture(2, covariance_type, missing=True)
    data = model.prepare_data(values)
    params = model.prepare_params(generic_params(covariance_type), data)
    draws = jax.jit(sampled_stats, static_argnums=(0, 4))(model, jax.random.key(5), params, data, 2000)
    exact = model.expected_stats(params, data)
    for name in exact._fields:
        assert_mean_matches(np.asarray(getattr(draws, name)), np.asarray(getattr(exact, name)))
    # Power: a shifted θ gives statistics far outside the draws' errors.
    shifted = model.expected_stats(params._replace(means=params.means + 0.3), data)
    assert np.abs(z_scores(np.asarray(draws.first_moments), np.asarray(shifted.first_moments))).max() > 10


def test_a_draw_keeps_the_observed_entries_and_fills_the_missing_ones():
    values = two_clusters(num_rows=30)
    model = se.models.GaussianMixture(2, "full", missing=True)
    data = model.prepare_data(values)
    params = model.prepare_params(generic_params("full"), data)
    latent = jax.jit(model.sample_latent)(jax.random.key(2), params, data)
    observed = ~np.isnan(values)
    filled = np.asarray(latent.filled)
    np.testing.assert_array_equal(np.asarray(latent.labels).sum(axis=1), 1.0)
    for k in range(2):
        np.testing.assert_array_equal(filled[:, k][observed], values[observed])
    assert np.isfinite(filled).all()
    # log p(o, m) of the draw, from scipy densities of the completed rows.
    labels = np.asarray(latent.labels).argmax(axis=1)
    informative = observed.any(axis=1)
    reference = sum(np.log(params.weights[k]) + scipy_stats.multivariate_normal(
        params.means[k], params.covariances[k]).logpdf(filled[n, k])
        for n, k in enumerate(labels) if informative[n])
    np.testing.assert_allclose(model.log_joint(params, data, latent), reference, rtol=1e-12)
    stats = model.suff_stats(data, latent)
    np.testing.assert_allclose(model.complete_loglik(params, data, stats), reference, rtol=1e-10)


@pytest.mark.parametrize("covariance_type", [
    "full",
    pytest.param("diag", marks=pytest.mark.slow),
    pytest.param("spherical", marks=pytest.mark.slow),
    pytest.param("tied", marks=pytest.mark.slow),
])
def test_mcem_ends_at_the_exact_fixed_point_within_monte_carlo_error(covariance_type):
    from scipy import stats as t_stats

    values = two_clusters(num_rows=60, seed=1)
    model = se.models.GaussianMixture(2, covariance_type, missing=True)
    start = generic_params(covariance_type)
    exact = se.fit(model, values, init=start, num_iters=2000, tol=1e-12)
    assert exact.converged
    seeds = list(range(16))
    sampled = se.fit(model, values, completion=se.monte_carlo(100), init=start, num_iters=40, key=seeds)
    # Each seed's last iterate is one draw around the MCEM fixed point: the seeds' mean
    # against the exact fixed point, Student t with 15 degrees of freedom, Bonferroni over
    # all free entries at family-wise level 1e-4.
    draws = np.concatenate([np.asarray(leaf).reshape(len(seeds), -1) for leaf in sampled.params], axis=1)
    target = np.concatenate([np.asarray(leaf).ravel() for leaf in exact.params])
    varying = draws.std(axis=0) > 0
    assert varying.sum() >= draws.shape[1] - 1  # only the weights' sum is fixed
    z = (draws.mean(axis=0) - target)[varying] / (draws.std(axis=0, ddof=1)[varying] / np.sqrt(len(seeds)))
    threshold = t_stats.t.isf(FAMILY_ALPHA / (2 * z.size), df=len(seeds) - 1)
    assert np.abs(z).max() < threshold, (np.abs(z).max(), threshold)
    assert draws.std(axis=0).max() < 0.1


# --- standard errors, SQUAREM, online EM ---------------------------------------------------


def test_exact_standard_errors_are_refused_and_sampled_ones_match_the_hessian():
    from stochem.unconstrained import flat_unconstrained

    values = two_clusters(num_rows=60, seed=1)
    model = se.models.GaussianMixture(2, "spherical", missing=True)
    fitted = se.fit(model, values, init=generic_params("spherical"), num_iters=2000, tol=1e-12)
    with pytest.raises(ValueError, match="num_samples"):
        se.standard_errors(model, fitted.params, values)
    data = model.prepare_data(values)
    fields = tuple(model.constraints)
    u, unflatten = flat_unconstrained(model, fitted.params, fields)
    hessian = -np.asarray(jax.jit(jax.hessian(lambda flat: model.log_marginal(unflatten(flat), data)))(u))
    replicates = np.array([np.asarray(se.standard_errors(model, fitted.params, values, num_samples=1000,
                                                         key=seed).information) for seed in range(8)])
    # Louis' identity: the sampled information is unbiased for −∇²ℓ (up to the O(1/S)
    # bias of a sample covariance, far below the error of 8 replicates).
    assert_mean_matches(replicates.reshape(8, -1), hessian.ravel())


def test_squarem_reaches_the_em_fixed_point_and_never_lowers_the_loglik():
    values = two_clusters(num_rows=60, seed=1)
    # reg_covar = 0: the M-step maximizes Q exactly, so EM (and SQUAREM) never lower ℓ.
    model = se.models.GaussianMixture(2, "full", reg_covar=0.0, missing=True)
    start = generic_params("full")
    plain = se.fit(model, values, init=start, num_iters=3000, tol=1e-13)
    fast = se.fit(model, values, init=start, num_iters=200, tol=1e-13, accelerator=se.squarem())
    assert fast.converged
    assert fast.num_iters * 3 < plain.num_iters
    loglik = np.asarray(fast.trace.loglik)
    assert np.all(np.diff(loglik) >= -1e-12 * np.abs(loglik).max())
    for a, b in zip(fast.params, plain.params):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_online_em_reaches_the_exact_fixed_point():
    values = two_clusters(num_rows=200, seed=3, missing_rate=0.2)
    model = se.models.GaussianMixture(2, "diag", missing=True)
    start = generic_params("diag")
    exact = se.fit(model, values, init=start, num_iters=2000, tol=1e-12)
    seeds = list(range(12))
    online = se.fit(model, values, init=start, num_iters=600, key=seeds,
                    completion=se.online_em(batch_size=20, step_size=se.saem_step_size(burn_in=20, exponent=0.6)))
    averaged = se.polyak_average(online, burn_in=300)
    final = np.asarray(averaged.means)[:, -1].reshape(len(seeds), -1)
    assert_mean_matches(final, np.asarray(exact.params.means).ravel())
    assert np.abs(final - np.asarray(exact.params.means).ravel()).max() < 0.1


# --- input ----------------------------------------------------------------------------------------


def test_nan_without_missing_is_refused_and_names_the_option():
    values = two_clusters(num_rows=20)
    with pytest.raises(ValueError, match=r"missing=True"):
        se.fit(se.models.GaussianMixture(2), values)


@pytest.mark.parametrize("data, message", [
    (np.full((6, 2), np.nan), "2 rows with an observed entry|rows with an observed entry"),
    (np.column_stack([np.arange(6.0), np.full(6, np.nan)]), "column 1"),
    (np.zeros((3, 2, 2)), r"\[N, D\]"),
])
def test_bad_missing_data_is_rejected(data, message):
    with pytest.raises(ValueError, match=message):
        se.models.GaussianMixture(2, missing=True).prepare_data(data)


def test_missing_must_be_a_bool():
    with pytest.raises(TypeError, match="missing"):
        se.models.GaussianMixture(2, missing="yes")

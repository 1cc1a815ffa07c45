"""SAEM on sufficient statistics for numpyro models: which sites are recognised, and that the summary is exact.

Checks:
* recognition of each supported form, and refusal (fallback to the surrogate)
  of the forms that are not closed-form;
* Q through the summary of one draw: the recognised sites' log density exactly
  (up to nothing: the statistics carry the whole density) and the surrogate's
  gradient and Hessian equal to those of the draws' Q at the expansion point;
* the closed-form M-step is the maximizer of Q (scipy on the draws' Q);
* saemix's annealing floor;
* ``saem(mcmc(S))`` with the default M-step on a model whose MLE is closed
  form (balanced one-way random effects).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
from numpyro.distributions import constraints
from scipy import optimize

import stochem as se
from stochem.unconstrained import flat_unconstrained
from tests.models import numpyro_examples as examples


def _random_effects(y):
    """Balanced one-way random effects: ``z_g ~ N(mu, tau²)``, ``y_gr ~ N(z_g, sigma²)``."""
    mu = numpyro.param("mu", 0.0)
    tau = numpyro.param("tau", 1.0, constraint=constraints.positive)
    sigma = numpyro.param("sigma", 1.0, constraint=constraints.positive)
    with numpyro.plate("groups", y.shape[0]):
        z = numpyro.sample("z", dist.Normal(mu, tau))
    numpyro.sample("y", dist.Normal(z[:, None], sigma).to_event(2), obs=y)


def _variance_parameterised(y):
    """``z ~ N(mu, sqrt(omega2))`` per group and coordinate, shared variance across coordinates."""
    mu = numpyro.param("mu", jnp.zeros(2))
    omega2 = numpyro.param("omega2", 1.0, constraint=constraints.positive)
    with numpyro.plate("groups", y.shape[0]):
        z = numpyro.sample("z", dist.Normal(mu, jnp.sqrt(omega2)).to_event(1))
        numpyro.sample("y", dist.Normal(z, 0.5).to_event(1), obs=y)


def _multivariate(y, scale_tril: bool):
    mu = numpyro.param("mu", jnp.zeros(2))
    if scale_tril:
        factor = numpyro.param("factor", jnp.eye(2), constraint=constraints.lower_cholesky)
        prior = dist.MultivariateNormal(mu, scale_tril=factor)
    else:
        covariance = numpyro.param("covariance", jnp.eye(2), constraint=constraints.positive_definite)
        prior = dist.MultivariateNormal(mu, covariance_matrix=covariance)
    noise = numpyro.param("noise", 1.0, constraint=constraints.positive)
    with numpyro.plate("groups", y.shape[0]):
        z = numpyro.sample("z", prior)
        numpyro.sample("y", dist.Normal(z, noise).to_event(1), obs=y)


def _shared_location(y):
    """``mu`` is both the prior mean and a fixed effect in the observation: not closed form."""
    mu = numpyro.param("mu", 0.0)
    tau = numpyro.param("tau", 1.0, constraint=constraints.positive)
    with numpyro.plate("groups", y.shape[0]):
        z = numpyro.sample("z", dist.Normal(mu, tau))
        numpyro.sample("y", dist.Normal(z + mu, 1.0), obs=y)


def _nonlinear_location(y):
    """loc = exp(mu): a function of a param, not the param itself."""
    mu = numpyro.param("mu", 0.0)
    with numpyro.plate("groups", y.shape[0]):
        z = numpyro.sample("z", dist.Normal(jnp.exp(mu), 1.0))
        numpyro.sample("y", dist.Normal(z, 1.0), obs=y)


RNG = np.random.default_rng(3)
Y_MATRIX = 1.0 + 2.0 * RNG.standard_normal((12, 1)) + 0.5 * RNG.standard_normal((12, 4))
Y_PAIRS = RNG.standard_normal((10, 2)) @ np.array([[1.0, 0.3], [0.0, 0.7]]) + np.array([0.5, -1.0])
Y_VECTOR = RNG.standard_normal(10) + 0.3


def _plan(model_fn, *args):
    return se.models.from_numpyro(model_fn, *args).sufficient_plan


def test_plan_recognises_location_scale_and_theta_free_residual_sites():
    plan = _plan(_random_effects, Y_MATRIX)
    (z, y) = plan.sites
    assert (z.name, z.loc_field, z.scale_field, z.kind) == ("z", "mu", "tau", "scale")
    assert (y.name, y.loc_field, y.scale_field, y.kind) == ("y", None, "sigma", "scale")
    assert plan.surrogate_fields == ()


def test_plan_recognises_a_variance_param_shared_across_coordinates():
    plan = _plan(_variance_parameterised, Y_PAIRS)
    (z,) = plan.sites
    assert (z.loc_field, z.loc_shape, z.scale_field, z.scale_shape, z.kind) == ("mu", (2,), "omega2", (), "variance")


@pytest.mark.parametrize("scale_tril, field, kind", [(False, "covariance", "covariance"),
                                                     (True, "factor", "scale_tril")])
def test_plan_recognises_multivariate_normal_sites(scale_tril, field, kind):
    plan = _plan(_multivariate, Y_PAIRS, scale_tril)
    z = next(site for site in plan.sites if site.name == "z")
    assert (z.loc_field, z.cov_field, z.kind) == ("mu", field, kind)
    assert plan.surrogate_fields == ()


@pytest.mark.parametrize("model_fn, surrogate", [(_shared_location, ("mu", "tau")), (_nonlinear_location, ("mu",))])
def test_params_that_are_not_closed_form_go_to_the_surrogate(model_fn, surrogate):
    plan = _plan(model_fn, Y_VECTOR)
    assert plan.surrogate_fields == surrogate
    assert "z" not in {site.name for site in plan.sites}
    assert "z" in plan.remainder_sites


def _draws(model, params, num_draws, key=0):
    """Draws of the latent sites near their posterior (any values serve the identities checked here)."""
    shapes = model.unconstrained_shapes()
    keys = jax.random.split(jax.random.key(key), len(shapes))
    return se.models.numpyro_model.LatentDraws(
        {name: jax.random.normal(k, (num_draws,) + shape) for (name, shape), k in zip(shapes.items(), keys)})


@pytest.mark.parametrize("model_fn, args", [
    (_random_effects, (Y_MATRIX,)),
    (examples.cbpp_glmm, examples.cbpp_arguments()),
    pytest.param(_variance_parameterised, (Y_PAIRS,), marks=pytest.mark.slow),
    pytest.param(_multivariate, (Y_PAIRS, False), marks=pytest.mark.slow),
    pytest.param(_multivariate, (Y_PAIRS, True), marks=pytest.mark.slow),
    pytest.param(_shared_location, (Y_VECTOR,), marks=pytest.mark.slow),
])
def test_q_through_the_summary_matches_the_draws_q_to_second_order(model_fn, args):
    """Value (recognised part), gradient and Hessian in every unconstrained coordinate, at θ_k."""
    model = se.models.from_numpyro(model_fn, *args)
    data = model.prepare_data(None)
    params = model.init_params(jax.random.key(1), data)
    draws = _draws(model, params, 7)
    summary = jax.jit(model.summarize_draws)(params, data, draws)
    vector, unflatten = flat_unconstrained(model, params)

    def through_summary(flat):
        return model.complete_loglik(unflatten(flat), data, summary)

    def through_draws(flat):
        return model.complete_loglik(unflatten(flat), data, draws)

    @jax.jit
    def derivatives(flat):
        return [(jax.grad(q)(flat), jax.hessian(q)(flat)) for q in (through_summary, through_draws)]

    (summary_grad, summary_hessian), (draws_grad, draws_hessian) = derivatives(vector)
    np.testing.assert_allclose(summary_grad, draws_grad, rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(summary_hessian, draws_hessian, rtol=1e-8, atol=1e-8)
    if not model.sufficient_plan.surrogate_fields:
        # The statistics carry every θ-dependent term: Q changes alike far from θ_k (θ-free terms drop out).
        shifted = vector + 0.3
        summary_change = through_summary(shifted) - through_summary(vector)
        draws_change = through_draws(shifted) - through_draws(vector)
        np.testing.assert_allclose(summary_change, draws_change, rtol=1e-9)


@pytest.mark.parametrize("model_fn, args", [
    (_random_effects, (Y_MATRIX,)),
    pytest.param(_variance_parameterised, (Y_PAIRS,), marks=pytest.mark.slow),
    pytest.param(_multivariate, (Y_PAIRS, False), marks=pytest.mark.slow),
])
def test_closed_form_m_step_maximizes_the_draws_q(model_fn, args):
    model = se.models.from_numpyro(model_fn, *args)
    data = model.prepare_data(None)
    params = model.init_params(jax.random.key(2), data)
    draws = _draws(model, params, 20, key=5)
    updated = jax.jit(lambda: model.summary_m_step(model.summarize_draws(params, data, draws), params, 0.0))()
    vector, unflatten = flat_unconstrained(model, params)
    negative = jax.jit(lambda flat: -model.complete_loglik(unflatten(flat), data, draws))
    best = optimize.minimize(negative, np.asarray(vector), jac=jax.jit(jax.grad(negative)), method="BFGS",
                             options={"gtol": 1e-9}).x
    closed, _ = flat_unconstrained(model, updated)
    np.testing.assert_allclose(closed, best, atol=1e-5)


def test_annealing_keeps_variances_from_shrinking_faster_than_the_factor():
    model = se.models.from_numpyro(_random_effects, Y_MATRIX)
    data = model.prepare_data(None)
    params = model.prepare_params({"mu": 1.0, "tau": 5.0, "sigma": 6.0}, data)
    summary = model.summarize_draws(params, data, _draws(model, params, 5))
    free = model.summary_m_step(summary, params, 0.0)
    annealed = model.summary_m_step(summary, params, 0.9)
    assert float(free.tau) ** 2 < 0.9 * 25.0 and float(free.sigma) ** 2 < 0.9 * 36.0
    np.testing.assert_allclose([annealed.tau**2, annealed.sigma**2], [0.9 * 25.0, 0.9 * 36.0])
    np.testing.assert_allclose(annealed.mu, free.mu)


def test_saem_m_step_refuses_models_without_summaries():
    with pytest.raises(TypeError, match="summarize_draws"):
        se.saem_mstep()(se.models.BinomialMixture(2, 10))
    with pytest.raises(ValueError, match="annealing_factor"):
        se.saem_mstep(annealing_factor=1.5)


@pytest.fixture(scope="module")
def random_effects_fit():
    model = se.models.from_numpyro(_random_effects, Y_MATRIX)
    completion = se.saem(se.mcmc(5, num_warmup=100, num_burnin=2), se.saem_step_size(burn_in=30))
    # Three replications from the model's own start (init={}; init=None would move each seed's start).
    return model, se.fit(model, None, completion=completion, num_iters=150, key=[0, 1, 2], init={})


def test_saem_on_statistics_reaches_the_closed_form_mle(random_effects_fit):
    """Balanced one-way random effects: the MLE is closed form (ANOVA), within 0.1 standard errors."""
    model, result = random_effects_fit
    groups, replicates = Y_MATRIX.shape
    means = Y_MATRIX.mean(axis=1)
    within = np.sum((Y_MATRIX - means[:, None]) ** 2) / (groups * (replicates - 1))
    mu = means.mean()
    between = np.mean((means - mu) ** 2)
    tau2 = between - within / replicates
    # Standard errors of the MLE: mu's is sqrt(between / G); the variances' from the
    # ANOVA mean squares (chi-square), enough to scale the tolerance.
    mu_se = np.sqrt(between / groups)
    tau2_se = np.sqrt(2 * between**2 / groups)
    sigma2_se = np.sqrt(2 * within**2 / (groups * (replicates - 1)))
    estimates = result.params
    assert np.all(np.abs(np.asarray(estimates.mu) - mu) < 0.1 * mu_se)
    assert np.all(np.abs(np.asarray(estimates.tau) ** 2 - tau2) < 0.1 * tau2_se)
    assert np.all(np.abs(np.asarray(estimates.sigma) ** 2 - within) < 0.1 * sigma2_se)


def test_saem_picks_the_summary_m_step_by_itself(random_effects_fit):
    model, _ = random_effects_fit
    completion = se.saem(se.mcmc(5))(model)
    assert completion.default_mstep == se.saem_mstep()
    assert se.mcmc(5)(model).default_mstep is None

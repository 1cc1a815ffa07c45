"""ℓ(θ) of a continuous numpyro model by importance sampling, group by group, with proposals fitted to the MCMC draws.

The log joint splits into independent groups of latent values
(:mod:`._factorization`), so ℓ(θ) is a constant plus one log integral per
group, each estimated by importance sampling in the group's own few
dimensions::

    ℓ̂(θ) = Σ_{constant e} t_e + Σ_g log Î_g,     Î_g = (1/S) Σ_s exp(f_g(z_g^s)) / q_g(z_g^s),
    se²  = Σ_g Var(w_g) / (S mean(w_g)²)          (independent groups: variances add).

Each ``log Î_g`` has the Jensen bias ``−se_g²/2`` added back
(:func:`stochem.importance.log_mean_weight`). Because the groups are
independent, the variance of ℓ̂ grows with the number of groups, not
exponentially with the dimension of all latents together.

The proposal ``q_g`` is a defensive mixture (Hesterberg 1995) of two
multivariate Student-t distributions with ν = 2 degrees of freedom (much
heavier tailed than the posterior it covers, so that the weights stay
bounded even where the integrand decays only exponentially, as a censored
value's does in its unconstrained coordinate; with ν = 5 the Pareto
diagnostic flagged such groups):

* one fitted to the MCMC draws at θ that the E-step already made (their mean
  and covariance in the group's coordinates);
* one at the mode of the group's integrand, with scale the inverse of its
  negative Hessian there (a Laplace approximation; the mode is found by
  Newton steps from the draws' mean, the Hessian blocks of all groups of one
  size by one Hessian–vector product per dimension).

Half the importance draws come from each component; the weights use the
mixture density, so each is at most twice the weight under either
component: a poor component costs at most a factor two in variance. With
fewer MCMC draws than needed for a covariance (``S < 5 d + 5``) the first
component takes the Laplace scale.

Reliability: the Pareto-smoothed importance sampling shape ``k̂`` of every
group's weights (:func:`stochem.importance.pareto_k`); the largest is
reported. Above :data:`stochem.importance.PARETO_K_THRESHOLD` the estimate is
not trusted: its standard error is reported as ``inf``.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree
from jax.scipy.special import gammaln

from stochem.importance import PARETO_K_THRESHOLD, log_mean_weight
from stochem.models.numpyro_model._factorization import LatentGroups, term_log_densities

DEGREES_OF_FREEDOM = 2.0
NEWTON_STEPS = 4


def _student_t_log_density(x, location, cholesky):
    """log t_ν(x; location, L Lᵀ), for ``[..., d]`` points, ``[d]`` location and ``[d, d]`` factor."""
    d = location.shape[-1]
    nu = DEGREES_OF_FREEDOM
    whitened = jax.scipy.linalg.solve_triangular(cholesky, (x - location).T, lower=True).T
    mahalanobis = jnp.sum(whitened**2, axis=-1)
    log_det = jnp.sum(jnp.log(jnp.diag(cholesky)))
    return (gammaln((nu + d) / 2) - gammaln(nu / 2) - 0.5 * d * jnp.log(nu * jnp.pi) - log_det
            - 0.5 * (nu + d) * jnp.log1p(mahalanobis / nu))


def _student_t_draws(key, location, cholesky, num_samples):
    """``[S, d]`` draws of t_ν(location, L Lᵀ)."""
    normal_key, chi2_key = jax.random.split(key)
    d = location.shape[-1]
    normal = jax.random.normal(normal_key, (num_samples, d), dtype=location.dtype)
    scale = jnp.sqrt(jax.random.chisquare(chi2_key, DEGREES_OF_FREEDOM, (num_samples, 1), dtype=location.dtype)
                     / DEGREES_OF_FREEDOM)
    return location + (normal @ cholesky.T) / scale


def _safe_cholesky(matrix, fallback):
    """Cholesky factor of a symmetric ``matrix``, or of ``fallback`` where it is not positive definite."""
    symmetric = 0.5 * (matrix + jnp.swapaxes(matrix, -1, -2))
    factor = jnp.linalg.cholesky(symmetric)
    good = jnp.all(jnp.isfinite(factor), axis=(-2, -1), keepdims=True)
    return jnp.where(good, factor, jnp.linalg.cholesky(fallback))


class _Integrand:
    """``f(z) = Σ_e t_e(z)`` over the non-constant terms, its gradient and per-group Hessian blocks."""

    def __init__(self, model, groups: LatentGroups, params, data):
        term_groups = np.asarray(groups.term_groups)
        self._varying = jnp.asarray(term_groups >= 0)
        self._terms = lambda z: term_log_densities(model, params, data, z)
        self.groups = groups

    def value(self, z):
        return jnp.sum(jnp.where(self._varying, self._terms(z), 0.0))

    def gradient(self, z):
        return jax.grad(self.value)(z)

    def hessian_blocks(self, z, coordinates):
        """``[G, d, d]`` Hessian blocks of ``f`` for groups with coordinates ``[G, d]`` (disjoint groups).

        Column ``j`` of every block comes from one Hessian–vector product whose
        tangent is 1 at coordinate ``j`` of every group of the class.
        """
        size = coordinates.shape[1]

        def column(j):
            tangent = jnp.zeros_like(z).at[coordinates[:, j]].set(1.0)
            product = jax.jvp(self.gradient, (z,), (tangent,))[1]
            return product[coordinates]  # [G, d]: row i of the block's column j

        columns = jax.vmap(column)(jnp.arange(size))  # [d(j), G, d(i)]
        return jnp.transpose(columns, (1, 2, 0))


def _laplace(integrand: _Integrand, start, class_coordinates):
    """Per class: ``(mode [G, d], cholesky of the negative inverse Hessian [G, d, d])``, by Newton steps from ``start``."""
    z = start
    for _ in range(NEWTON_STEPS):
        gradient = integrand.gradient(z)
        update = jnp.zeros_like(z)
        for coordinates in class_coordinates:
            blocks = -integrand.hessian_blocks(z, coordinates)
            step = jax.vmap(lambda block, g: jnp.linalg.solve(block, g))(blocks, gradient[coordinates])
            finite = jnp.all(jnp.isfinite(step), axis=-1, keepdims=True) & (jnp.linalg.norm(step, axis=-1,
                                                                                           keepdims=True) < 10.0)
            update = update.at[coordinates].set(jnp.where(finite, step, 0.0))
        z = z + update
    results = []
    for coordinates in class_coordinates:
        precision = -integrand.hessian_blocks(z, coordinates)
        identity = jnp.broadcast_to(jnp.eye(coordinates.shape[1], dtype=z.dtype), precision.shape)
        cholesky_precision = _safe_cholesky(precision, identity)
        covariance = jax.vmap(lambda factor: jax.scipy.linalg.cho_solve((factor, True), jnp.eye(factor.shape[0],
                                                                                            dtype=z.dtype)))(
            cholesky_precision)
        results.append((z[coordinates], _safe_cholesky(covariance, identity)))
    return results


def group_importance_loglik(model, groups: LatentGroups, key, params, data, positions, num_samples: int):
    """``(ℓ̂, se, k̂)`` from MCMC positions at θ (see the module docstring).

    Args:
        model: a continuous numpyro model.
        groups: its :class:`LatentGroups`.
        key: PRNG key for the importance draws.
        params: θ.
        data: the model's prepared data.
        positions: ``{site: [S_mcmc, ...]}`` unconstrained draws at θ (the MCMC completion's).
        num_samples: importance draws per group (split between the two proposal components).
    """
    flat_draws = jax.vmap(lambda position: ravel_pytree(position)[0])(positions)  # [S_mcmc, D]
    num_draws = flat_draws.shape[0]
    class_coordinates = [jnp.asarray(np.array(coordinates)) for coordinates in groups.classes]
    integrand = _Integrand(model, groups, params, data)
    mean = jnp.mean(flat_draws, axis=0)
    laplace = _laplace(integrand, mean, class_coordinates)

    half = num_samples // 2
    full_draws = jnp.zeros((num_samples, groups.dimension), dtype=mean.dtype)
    log_proposals = []
    class_keys = jax.random.split(key, len(class_coordinates))
    for coordinates, (mode, laplace_factor), class_key in zip(class_coordinates, laplace, class_keys):
        size = coordinates.shape[1]
        draws = flat_draws[:, coordinates]  # [S_mcmc, G, d]
        draws_mean = jnp.mean(draws, axis=0)
        if num_draws >= 5 * size + 5:
            centred = draws - draws_mean
            covariance = jnp.einsum("sgi,sgj->gij", centred, centred) / (num_draws - 1)
            covariance = covariance + 1e-9 * jnp.eye(size, dtype=mean.dtype)
            laplace_covariance = laplace_factor @ jnp.swapaxes(laplace_factor, -1, -2)
            draws_factor = _safe_cholesky(covariance, laplace_covariance)
        else:
            draws_factor = laplace_factor
        first_key, second_key = jax.random.split(class_key)
        num_groups = coordinates.shape[0]
        first = jax.vmap(_student_t_draws, in_axes=(0, 0, 0, None))(
            jax.random.split(first_key, num_groups), draws_mean, draws_factor, half)
        second = jax.vmap(_student_t_draws, in_axes=(0, 0, 0, None))(
            jax.random.split(second_key, num_groups), mode, laplace_factor, num_samples - half)
        proposal_draws = jnp.concatenate([first, second], axis=1)  # [G, S, d]
        log_q = jnp.logaddexp(
            jax.vmap(_student_t_log_density)(proposal_draws, draws_mean, draws_factor),
            jax.vmap(_student_t_log_density)(proposal_draws, mode, laplace_factor)) - math.log(2.0)
        log_proposals.append(log_q)  # [G, S]
        full_draws = full_draws.at[:, coordinates].set(jnp.transpose(proposal_draws, (1, 0, 2)))

    terms = jax.vmap(lambda z: term_log_densities(model, params, data, z))(full_draws)  # [S, E]
    term_groups = np.asarray(groups.term_groups)
    constant = jnp.sum(terms[0, np.flatnonzero(term_groups < 0)])
    by_group = jax.ops.segment_sum(terms[:, term_groups >= 0].T, jnp.asarray(term_groups[term_groups >= 0]),
                                   num_segments=groups.num_groups)  # [G_total, S]
    log_weights = by_group - jnp.concatenate(log_proposals, axis=0)
    # A draw far in a proposal's tail can overflow the model's arithmetic (a scale of exp(1e4)):
    # there the integrand is 0, so a NaN log weight is a weight of 0.
    log_weights = jnp.where(jnp.isnan(log_weights), -jnp.inf, log_weights)
    summary = jax.vmap(log_mean_weight)(log_weights)
    loglik = constant + jnp.sum(summary.log_mean)
    pareto_k = jnp.max(summary.pareto_k)
    stderr = jnp.where(pareto_k < PARETO_K_THRESHOLD, jnp.sqrt(jnp.sum(summary.variance)), jnp.inf)
    return loglik, stderr, pareto_k

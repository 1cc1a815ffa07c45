"""Standard errors of θ by Louis' (1982) formula, from exact or sampled completions.

The observed information is the complete-data information minus the missing
information::

    I(θ) = E[−∇² log p(o, m; θ) | o] − Cov[∇ log p(o, m; θ) | o].

Both terms come from the model's ``complete_loglik(params, stats)``, which is
log p(o, m; θ) up to a θ-free term when ``stats = T(o, m)``:

* exact completion (finite-latent models): the statistics are linear in the
  one-hot latent encoding φ, so the complete-data score is linear in φ and its
  posterior covariance is ``Σ_n G_n (diag(p_n) − p_n p_nᵀ) G_nᵀ`` with
  ``G_n = ∂score/∂φ_n`` and ``p_n`` the posterior of observation n;
* sampled completion: the sample mean of the complete-data Hessians and the
  sample covariance of the complete-data scores over ``num_samples`` draws;
* MCMC completion (``completion=stochem.mcmc(...)``, continuous latents): the
  same moments over one chain's draws at θ, with the Monte Carlo error of the
  standard errors by a jackknife over B contiguous batches of the chain.

Exact completion covers every model with one categorical latent per row
(``CategoricalLatents``), enumerated numpyro models included: there a row is a
plate element and its category a joint configuration of the discrete sites.

How far to trust the MCMC errors (measured on a normal–normal model with a
closed-form ℓ, 200–300 chains per setting, and on lme4's cbpp GLMM against the
Hessian of its quadrature ℓ, 60 chains; ``tests/test_standard_errors_mcmc.py``):
with S = 2000 draws and B = 20 batches the z-scores ``(se − se_exact) / mc``
covered ±2 in 92–97% of chains (Student-t with 19 degrees of freedom: 94%)
and the mean error was not distinguishable from 0. The plug-in errors carry a
bias of order 1/S (inverting a noisy information): +0.7% and +1.5% at S = 50,
invisible at S ≥ 200; the jackknife estimates it (``params_bias``;
``params − params_bias`` removed it at S = 50). With fewer draws the jackknife
underestimates the Monte Carlo error (±2 covered 85–87% at S = 50, 89–93% at
S = 200 to 1000): use thousands of draws.

Derivatives are taken in the unconstrained coordinates u of
:mod:`stochem.unconstrained` (where the simplex has K − 1 free coordinates);
the covariance of θ follows by the delta method, ``J Cov(u) Jᵀ`` with
``J = ∂θ/∂u``. Fields named in ``fixed`` are treated as known.

Sample weights are frequency weights: row n counts as ``w_n`` rows, each with
its own missing data, so ``I(θ) = Σ_n w_n I_n(θ)``. The complete-data term is
linear in the weights and comes from the weighted statistics; the missing
information ``Σ_n w_n Cov[s_n]`` is the covariance of ``Σ_n √w_n s_n`` (the
scores of independent rows add up), so it is computed exactly as above from
statistics weighted by ``√w`` (the score is linear in the statistics). Integer
weights therefore give the standard errors of the repeated rows.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from stochem import _validation
from stochem import weights as sample_weights
from stochem.capabilities import (CategoricalLatents, CompleteLikelihood, LatentDensity, LinearStatistics,
                                  PosteriorSampler, offers, require)
from stochem.completion.sampling import draw_stats
from stochem.keys import keys_from_user
from stochem.unconstrained import flat_unconstrained


class StandardErrors(NamedTuple):
    """Result of :func:`standard_errors`.

    Attributes:
        params: standard error of every parameter entry, shaped like the
            parameters (0 for fixed fields).
        covariance: covariance of the free parameters, flattened in field order.
        information: observed information in unconstrained coordinates.
        unconstrained_covariance: its inverse.
        params_mc_stderr: with ``completion=``, the Monte Carlo standard error
            of ``params`` (batch jackknife over the chain's draws), shaped like
            the parameters; ``None`` otherwise.
        params_bias: with ``completion=``, the jackknife estimate of the
            Monte Carlo bias of ``params`` (of order 1/S for S draws),
            ``(B − 1)(mean_b se_(b) − se)``; ``params − params_bias`` is the
            bias-corrected error. ``None`` otherwise.
    """

    params: Any
    covariance: Any
    information: Any
    unconstrained_covariance: Any
    params_mc_stderr: Any = None
    params_bias: Any = None


def _free_fields(model, fixed):
    return tuple(name for name in model.constraints if name not in fixed)


def _exact_missing_information(model, params, data, score_at):
    """Posterior covariance of the complete-data score, by linearity in the one-hot encoding."""
    posterior = model.categorical_posterior(params, data)
    jacobian = jax.jacrev(lambda features: score_at(model.weighted_stats(data, features)))(posterior)
    weighted = jnp.einsum("pnl,nl->pn", jacobian, posterior)
    second_moment = jnp.einsum("pnl,nl,qnl->pq", jacobian, posterior, jacobian)
    return model.weighted_stats(data, posterior), second_moment - weighted @ weighted.T


@functools.lru_cache(maxsize=32)
def _louis(model, fixed, num_samples, weighted: bool):
    fields = _free_fields(model, fixed)

    def compute(params, data, root_weighted_data, key):
        """With weights, ``root_weighted_data`` has weights ``√w``: the covariance of its statistics'
        scores is the missing information (see the module docstring)."""
        missing_data = root_weighted_data if weighted else data
        u, unflatten = flat_unconstrained(model, params, fields)

        def complete_loglik(flat, stats):
            return model.complete_loglik(unflatten(flat), data, stats)

        def score_at(stats):
            return jax.grad(complete_loglik)(u, stats)

        if num_samples is None:
            stats, missing = _exact_missing_information(model, params, missing_data, score_at)
            if weighted:
                stats = model.weighted_stats(data, model.categorical_posterior(params, data))
            complete = -jax.hessian(complete_loglik)(u, stats)
            information = complete - missing
        else:
            per_draw = draw_stats(model, key, params, missing_data, num_samples, num_samples).per_draw
            scores = jax.vmap(score_at)(per_draw).reshape(num_samples, u.size)
            if weighted:  # the complete information comes from draws of the w-weighted statistics
                per_draw = draw_stats(model, jax.random.fold_in(key, 1), params, data, num_samples,
                                      num_samples).per_draw
            hessians = jax.vmap(lambda s: jax.hessian(complete_loglik)(u, s))(per_draw)
            information = _information_from_draws(scores, hessians.reshape(num_samples, u.size, u.size))
        return _errors_from_information(model, fields, fixed, params, u, unflatten, information)

    return jax.jit(compute)


def _draw_derivatives(model, fields, params, data, per_draw):
    """``(u, unflatten, scores [S, p], hessians [S, p, p])`` of log p(o, m_s; θ) in u, one per draw."""
    u, unflatten = flat_unconstrained(model, params, fields)

    def complete_loglik(flat, stats):
        return model.complete_loglik(unflatten(flat), data, stats)

    scores = jax.vmap(lambda stats: jax.grad(complete_loglik)(u, stats))(per_draw)
    hessians = jax.vmap(lambda stats: jax.hessian(complete_loglik)(u, stats))(per_draw)
    return u, unflatten, scores.reshape(-1, u.size), hessians.reshape(-1, u.size, u.size)


def _information_from_draws(scores, hessians):
    """Louis' moments over draws: ``−mean_s ∇²log p(o, m_s) − Cov_s ∇log p(o, m_s)``."""
    return -jnp.mean(hessians, axis=0) - jnp.cov(scores, rowvar=False).reshape(hessians.shape[1:])


def _errors_from_information(model, fields, fixed, params, u, unflatten, information):
    unconstrained_covariance = jnp.linalg.inv(information)

    def free_values(flat):
        values = unflatten(flat)._asdict()
        return ravel_pytree({name: values[name] for name in fields})[0]

    jacobian = jax.jacfwd(free_values)(u)
    covariance = jacobian @ unconstrained_covariance @ jacobian.T
    values = params._asdict()
    _, unravel_free = ravel_pytree({name: values[name] for name in fields})
    free_errors = unravel_free(jnp.sqrt(jnp.clip(jnp.diag(covariance), 0.0)))
    errors = params._replace(**{name: jnp.zeros_like(values[name]) for name in fixed}, **free_errors)
    return StandardErrors(errors, covariance, information, unconstrained_covariance)


@functools.lru_cache(maxsize=32)
def _louis_with_completion(model, completion, fixed, num_batches):
    fields = _free_fields(model, fixed)
    transform = completion(model)

    def compute(params, data, key):
        _, _, info = transform.update(key, params, data, transform.init(params, data))
        per_draw = jax.vmap(lambda position: model.stats_from_positions(
            params, data, jax.tree_util.tree_map(lambda leaf: leaf[None], position)))(info.draws)
        u, unflatten, scores, hessians = _draw_derivatives(model, fields, params, data, per_draw)

        def errors(information):
            return _errors_from_information(model, fields, fixed, params, u, unflatten, information)

        result = errors(_information_from_draws(scores, hessians))
        # Batch jackknife: drop one contiguous batch of draws at a time (contiguous, so the
        # chain's autocorrelation stays inside batches); se_MC² = (B − 1)/B Σ_b (se_(b) − mean)²,
        # bias = (B − 1)(mean − se) (removes the 1/S term of a smooth function of the moments).
        size = scores.shape[0] // num_batches
        indices = jnp.arange(num_batches * size).reshape(num_batches, size)

        def leave_out(batch):
            kept = jnp.delete(indices, batch, axis=0, assume_unique_indices=True).reshape(-1)
            return errors(_information_from_draws(scores[kept], hessians[kept])).params

        replicates = jax.lax.map(leave_out, jnp.arange(num_batches))
        mc_stderr = jax.tree_util.tree_map(
            lambda leaf: jnp.sqrt((num_batches - 1) / num_batches
                                  * jnp.sum((leaf - jnp.mean(leaf, axis=0)) ** 2, axis=0)), replicates)
        bias = jax.tree_util.tree_map(lambda leaf, full: (num_batches - 1) * (jnp.mean(leaf, axis=0) - full),
                                      replicates, result.params)
        return result._replace(params_mc_stderr=mc_stderr, params_bias=bias)

    return jax.jit(compute)


def standard_errors(model, params, data, *, num_samples: int | None = None, key=0, fixed=(),
                    completion=None, num_batches: int = 20, sample_weight=None):
    """Standard errors of θ from the observed information (Louis 1982).

    Args:
        model: a stochem model with ``complete_loglik`` and ``constraints``:
            exact errors for one categorical latent per row (the mixtures, an
            enumerated ``from_numpyro`` model), ``num_samples`` for models
            with exact posterior draws, ``completion`` for continuous latents.
        params: where to evaluate the information, typically the EM fixed point.
        data: the observed data (as given to ``fit``).
        num_samples: ``None`` for the exact missing information (finite-latent
            models), or the number of posterior draws for the Monte Carlo one.
        completion: for continuous latents, an MCMC completion, e.g.
            ``stochem.mcmc(2000, num_warmup=500)``: one chain at ``params``
            supplies the draws of Louis' moments (Monte Carlo; the result's
            ``params_mc_stderr`` is their Monte Carlo error and
            ``params_bias`` their bias, by a jackknife over ``num_batches``
            contiguous batches of the draws). Use thousands of draws (see
            the module docstring).
        num_batches: batches of the jackknife (with ``completion``); with B
            batches, ``(se − truth) / params_mc_stderr`` is roughly Student-t
            with B − 1 degrees of freedom.
        key: seed or PRNG key for the draws.
        fixed: parameter fields treated as known.
        sample_weight: ``None``, or the weights the fit used (``fit(...,
            sample_weight=...)``): frequency weights, so integer weights give
            the standard errors of the repeated rows.

    Returns:
        :class:`StandardErrors`.

    Example:
        >>> import stochem as se
        >>> model = se.models.BinomialMixture(2, 10)
        >>> fitted = se.fit(model, [5, 9, 8, 4, 7, 9, 2, 3], init={"weights": [0.5, 0.5],
        ...                 "probs": [0.7, 0.4]}, num_iters=200)
        >>> errors = se.standard_errors(model, fitted.params, [5, 9, 8, 4, 7, 9, 2, 3])
        >>> errors.params.probs.shape
        (2,)
    """
    fixed = _validation.check_fixed(model.params_type, fixed, model_name=type(model).__name__)
    require(model, CompleteLikelihood, "standard_errors(...)")
    if completion is not None:
        if num_samples is not None:
            raise _validation.ArgumentError(
                "num_samples", "give either num_samples (exact posterior draws) or completion (MCMC), not both.")
        if not callable(completion) or not completion(model).keeps_draws:
            raise _validation.ArgumentError(
                "completion", f"completion must keep its draws, e.g. stochem.mcmc(2000); got {completion!r}.")
        num_batches = _validation.as_int("num_batches", num_batches, minimum=2)
        if completion.num_samples < 2 * num_batches:
            raise _validation.ArgumentError(
                "completion", f"completion keeps {completion.num_samples} draws; the jackknife needs at least "
                              f"2 per batch ({2 * num_batches}).")
        if sample_weight is not None:
            raise _validation.ArgumentError(
                "sample_weight", "standard errors from MCMC draws take no sample weights yet; drop sample_weight "
                                  "or use num_samples= with a model that draws exact posterior samples.")
        data = model.prepare_data(data)
        params = model.prepare_params(params, data)
        prng_key, batched = keys_from_user(key)
        if batched:
            raise ValueError("key must be a single seed or key for standard_errors.")
        return _louis_with_completion(model, completion, fixed, num_batches)(params, data, prng_key)
    if num_samples is None and not offers(model, CategoricalLatents) and offers(model, LatentDensity):
        raise _validation.ArgumentError(
            "completion", f"{type(model).__name__} has continuous latents: its standard errors come from MCMC "
                          "draws; pass completion=stochem.mcmc(2000, num_warmup=500).")
    if num_samples is None and not offers(model, CategoricalLatents):
        raise _validation.ArgumentError(
            "num_samples", f"exact standard errors need a model with one categorical latent per observation; "
                           f"for {type(model).__name__} pass num_samples= to use sampled completions.")
    if num_samples is not None:
        num_samples = _validation.as_int("num_samples", num_samples, minimum=2)
        require(model, PosteriorSampler, "standard_errors(..., num_samples=...)")
    data = model.prepare_data(data)
    params = model.prepare_params(params, data)
    prng_key, batched = keys_from_user(key)
    if batched:
        raise ValueError("key must be a single seed or key for standard_errors.")
    if sample_weight is None:
        return _louis(model, fixed, num_samples, False)(params, data, None, prng_key)
    require(model, LinearStatistics, "standard_errors(..., sample_weight=...)")
    weighted = sample_weights.attach(model, data, sample_weight)
    root_weighted = model.with_sample_weight(data, jnp.sqrt(weighted.weights))
    return _louis(model, fixed, num_samples, True)(params, weighted, root_weighted, prng_key)

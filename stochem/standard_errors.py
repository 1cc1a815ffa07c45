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
  sample covariance of the complete-data scores over ``num_samples`` draws.

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
from stochem.capabilities import (CategoricalLatents, CompleteLikelihood, LinearStatistics, PosteriorSampler,
                                  offers, require)
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
    """

    params: Any
    covariance: Any
    information: Any
    unconstrained_covariance: Any


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
        else:
            per_draw = draw_stats(model, key, params, missing_data, num_samples, num_samples).per_draw
            scores = jax.vmap(score_at)(per_draw)
            missing = jnp.cov(scores, rowvar=False).reshape(u.size, u.size)
            if weighted:  # the complete information comes from draws of the w-weighted statistics
                per_draw = draw_stats(model, jax.random.fold_in(key, 1), params, data, num_samples,
                                      num_samples).per_draw
            complete = -jnp.mean(jax.vmap(lambda s: jax.hessian(complete_loglik)(u, s))(per_draw), axis=0)
        information = complete - missing
        unconstrained_covariance = jnp.linalg.inv(information)

        def free_values(flat):
            constrained = unflatten(flat)
            values = constrained._asdict()
            return ravel_pytree({name: values[name] for name in fields})[0]

        jacobian = jax.jacfwd(free_values)(u)
        covariance = jacobian @ unconstrained_covariance @ jacobian.T
        values = params._asdict()
        _, unravel_free = ravel_pytree({name: values[name] for name in fields})
        free_errors = unravel_free(jnp.sqrt(jnp.clip(jnp.diag(covariance), 0.0)))
        errors = params._replace(**{name: jnp.zeros_like(values[name]) for name in fixed},
                                 **free_errors)
        return StandardErrors(errors, covariance, information, unconstrained_covariance)

    return jax.jit(compute)


def standard_errors(model, params, data, *, num_samples: int | None = None, key=0, fixed=(),
                    sample_weight=None):
    """Standard errors of θ from the observed information (Louis 1982).

    Args:
        model: a stochem model with ``complete_loglik`` and ``constraints``.
        params: where to evaluate the information, typically the EM fixed point.
        data: the observed data (as given to ``fit``).
        num_samples: ``None`` for the exact missing information (finite-latent
            models), or the number of posterior draws for the Monte Carlo one.
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

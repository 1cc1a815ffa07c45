"""SAEM on sufficient statistics for numpyro models with continuous latent sites.

The draws ``m_1..m_S`` of one MCMC iteration are summarised into statistics
that Q is *linear* in, so that SAEM may average them (Robbins–Monro) across
iterations. With the plan of :mod:`._recognise`, the complete-data log
likelihood splits into two parts that share no parameter::

    log p(o, m; θ) = Σ_{recognised sites} log p_site(x; θ_site)  +  R(θ_rest; o, m).

* Recognised Gaussian sites: their statistics ``T_site(x)`` (:mod:`._gaussian_sites`),
  averaged over the draws. Their params are updated in closed form.
* The rest, in the unconstrained coordinates ``u`` of ``θ_rest``: a quadratic
  surrogate of the Monte Carlo ``R̂_k(u) = (1/S) Σ_s R(u; o, m_s)`` at this
  iteration's ``u_k``, written as ``q_k(u) = b_kᵀ u − ½ uᵀ C_k u`` with::

      C_k = −∇²R̂_k(u_k),     b_k = ∇R̂_k(u_k) + C_k u_k.

  ``(b_k, C_k)`` are averaged like any statistic, and the M-step maximizes the
  averaged quadratic, ``u = C̄⁻¹ b̄``.

Why a quadratic surrogate rather than a bounded memory of past draws: with
SAEM's γ_k = 1/k every past iteration keeps the same weight 1/k in the
stochastic-approximation Q, so a memory of the last K iterations drops a
growing share of it and leaves a noise floor of an MCEM with K·S draws. The
averaged quadratic keeps every iteration at the cost of ``P + P²`` numbers
(P = size of θ_rest), and its maximizer is exactly the stochastic-approximation
Newton recursion of Gu & Kong (1998) (``stochem.stochastic_newton``): if
``u_k = C̄_{k−1}⁻¹ b̄_{k−1}``, then ``b̄_k = C̄_k u_k + γ_k ∇R̂_k(u_k)`` and
``u_{k+1} = u_k + γ_k C̄_k⁻¹ ∇R̂_k(u_k)``. Its fixed points are those of SAEM:
the averaged score vanishes. When C̄ is not positive definite (far from the
maximum of a non-concave R̂) the step falls back to the score scaled by C̄'s
largest diagonal entry, as ``stochastic_newton`` does.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from numpyro.infer.util import compute_log_probs

from stochem.unconstrained import flat_unconstrained


class QuadraticSurrogate(NamedTuple):
    """``q(u) = linearᵀ u − ½ uᵀ curvature u`` over the unconstrained numerical params."""

    linear: Any  # b [P]
    curvature: Any  # C [P, P]


class SufficientSummary(NamedTuple):
    """Averageable statistics of sampled completions of a numpyro model (see the module docstring).

    Attributes:
        sites: one statistics NamedTuple per recognised site, averaged over draws.
        surrogate: :class:`QuadraticSurrogate` of the rest of Q.
    """

    sites: tuple
    surrogate: QuadraticSurrogate


def _site_stats(plan, trace) -> tuple:
    stats = []
    for site in plan.sites:
        entry = trace[site.name]
        stats.append(site.statistics(entry["value"], entry["fn"].mean if site.loc_field is None else None))
    return tuple(stats)


def summarize_draws(model, plan, params, data, draws: dict) -> SufficientSummary:
    """The :class:`SufficientSummary` of the draws ``{latent site: [S, ...]}`` at θ = ``params``."""
    args, kwargs = model.arguments.rebuild(data)

    def trace_of(values, draw):
        return compute_log_probs(model.model_fn, args, kwargs, {**values, **draw})

    def one_draw(draw):
        return _site_stats(plan, trace_of(model.site_values(params), draw)[1])

    site_stats = jax.tree_util.tree_map(lambda leaf: jnp.mean(leaf, axis=0), jax.vmap(one_draw)(draws))
    vector, unflatten = flat_unconstrained(model, params, plan.surrogate_fields)
    if vector.size == 0:
        return SufficientSummary(site_stats, QuadraticSurrogate(vector, jnp.zeros((0, 0), vector.dtype)))

    def remainder(flat):
        values = model.site_values(unflatten(flat))

        def per_draw(draw):
            log_probs, _ = trace_of(values, draw)
            return sum(jnp.sum(log_probs[name]) for name in plan.remainder_sites)

        return jnp.mean(jax.vmap(per_draw)(draws))

    score = jax.grad(remainder)(vector)
    curvature = -jax.hessian(remainder)(vector)
    curvature = 0.5 * (curvature + curvature.T)
    return SufficientSummary(site_stats, QuadraticSurrogate(score + curvature @ vector, curvature))


def summary_loglik(model, plan, params, summary: SufficientSummary):
    """Q(θ) through the summary: the recognised sites' log density plus the surrogate ``q(u)``."""
    values = params._asdict()
    total = sum((site.loglik(stats, values) for site, stats in zip(plan.sites, summary.sites)),
                jnp.zeros((), jnp.result_type(float)))
    vector, _ = flat_unconstrained(model, params, plan.surrogate_fields)
    surrogate = summary.surrogate
    return total + surrogate.linear @ vector - 0.5 * vector @ surrogate.curvature @ vector


def summary_m_step(model, plan, summary: SufficientSummary, params, variance_floor):
    """argmax of :func:`summary_loglik`: closed forms, then ``u = C̄⁻¹ b̄`` for the rest.

    Args:
        variance_floor: simulated annealing (saemix): each recognised variance
            is kept at least ``variance_floor`` times its value in ``params``
            (0 switches it off).
    """
    old = params._asdict()
    new = {}
    for site, stats in zip(plan.sites, summary.sites):
        update = site.maximize(stats)
        new.update(site.anneal(update, old, variance_floor))
    new = {field: jnp.reshape(value, jnp.shape(old[field])).astype(jnp.result_type(old[field]))
           for field, value in new.items()}
    params = params._replace(**new)
    vector, unflatten = flat_unconstrained(model, params, plan.surrogate_fields)
    if vector.size == 0:
        return params
    surrogate = summary.surrogate
    cholesky = jnp.linalg.cholesky(surrogate.curvature)
    maximizer = jax.scipy.linalg.cho_solve((cholesky, True), surrogate.linear)
    score = surrogate.linear - surrogate.curvature @ vector
    scale = jnp.maximum(jnp.max(jnp.abs(jnp.diag(surrogate.curvature))), 1e-8)
    return unflatten(jnp.where(jnp.all(jnp.isfinite(maximizer)), maximizer, vector + score / scale))

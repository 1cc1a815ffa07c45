"""Importance sampling estimates of a log normalizing constant, with honest errors and a reliability check.

For draws ``x_s ~ q`` and log weights ``a_s = log f(x_s) − log q(x_s)``, the
importance sampling estimate of ``log Z = log ∫ f`` and its Monte Carlo error
are (delta method)::

    log Ẑ = log (1/S) Σ_s w_s,    w_s = exp(a_s),
    se²   = Var(w) / (S · mean(w)²).

``log Ẑ`` is biased downwards by about ``se²/2`` (Jensen), a bias of order
``1/S``; :func:`log_mean_weight` removes it by a split-half jackknife,
``2 log Ẑ − (log Ẑ_even + log Ẑ_odd)/2`` over the draws of even and odd index
(which removes every term of order ``1/S``, where adding ``se²/2`` back would
only remove the leading one). Draws laid out as equal strata (half from each
component of a mixture proposal) keep both halves stratified alike.

The estimate is only trustworthy when the weights have a finite variance.
Pareto-smoothed importance sampling (Vehtari, Simpson, Gelman, Yao & Gabry
2024, "Pareto smoothed importance sampling", JMLR 25) diagnoses this: fit a
generalized Pareto distribution to the largest weights; its shape ``k̂``
estimates how heavy their tail is. ``k̂ < 0.5``: finite variance;
``0.5 ≤ k̂ < 0.7``: finite mean, slow but usable; ``k̂ ≥ 0.7``: the estimate
and its standard error cannot be trusted (:data:`PARETO_K_THRESHOLD`).
Weights constant to rounding (an exact proposal) get ``k̂ = −inf``.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.scipy.special import logsumexp

PARETO_K_THRESHOLD = 0.7


class LogWeightSummary(NamedTuple):
    """What a set of log importance weights says about ``log Z``.

    Attributes:
        log_mean: ``log Ẑ``, its ``1/S`` bias removed by a split-half jackknife.
        variance: ``se²``, the Monte Carlo variance of ``log Ẑ`` (delta method).
        pareto_k: the PSIS shape ``k̂`` of the largest weights' tail.
    """

    log_mean: Any
    variance: Any
    pareto_k: Any


def tail_size(num_samples: int) -> int:
    """How many of the largest weights the Pareto fit uses: ``min(S/5, 3√S)`` (Vehtari et al.)."""
    return max(5, min(int(math.ceil(0.2 * num_samples)), int(math.ceil(3.0 * math.sqrt(num_samples)))))


def generalized_pareto_shape(exceedances):
    """The shape ``k`` of a generalized Pareto distribution fitted to positive ``exceedances``.

    Zhang & Stephens (2009, Technometrics 51) empirical Bayes estimate, as PSIS
    uses it: with the GPD written through ``θ = k / σ``, the profile
    log-likelihood of ``θ`` is ``L(θ) = n (log(θ / k(θ)) − k(θ) − 1)`` with
    ``k(θ) = mean(log(1 + θ x))``; ``θ̂`` is the posterior mean of ``θ`` over
    a grid of ``m = 30 + ⌊√n⌋`` points placed by the data, and ``k̂ = k(θ̂)``,
    finally shrunk towards 0.5 by a weak prior worth 10 observations.

    Args:
        exceedances: ``[n]`` positive values (the tail above a threshold), any order.

    Returns:
        ``k̂`` (a scalar array).
    """
    x = jnp.sort(exceedances)
    n = x.shape[0]
    grid_size = 30 + int(math.isqrt(n))
    quartile = x[max(int(math.floor(n / 4 + 0.5)) - 1, 0)]
    j = jnp.arange(1, grid_size + 1, dtype=x.dtype)
    theta = -(1.0 / x[-1] + (1.0 - jnp.sqrt(grid_size / (j - 0.5))) / (3.0 * quartile))  # θ > −1/max x

    def profile(theta_j):
        k = jnp.mean(jnp.log1p(theta_j * x))
        return n * (jnp.log(theta_j / k) - k - 1.0)

    log_likelihood = jax.vmap(profile)(theta)
    weights = jax.nn.softmax(jnp.where(jnp.isfinite(log_likelihood), log_likelihood, -jnp.inf))
    theta_hat = jnp.sum(weights * theta)
    k_hat = jnp.mean(jnp.log1p(theta_hat * x))
    return (n * k_hat + 10 * 0.5) / (n + 10)


@jax.jit  # one program when called outside jit (op by op, each operation would compile on its own)
def pareto_k(log_weights):
    """The PSIS diagnostic ``k̂`` of a vector of log importance weights (``S`` static)."""
    num_samples = log_weights.shape[0]
    size = tail_size(num_samples)
    largest = jax.lax.top_k(log_weights, size + 1)[0]  # descending; the last one is the threshold
    shift = largest[0]
    tail = jnp.exp(largest[:size] - shift)
    threshold = jnp.exp(largest[size] - shift)
    exceedances = jnp.maximum(tail - threshold, jnp.finfo(log_weights.dtype).tiny)
    # Weights equal to rounding (an exact proposal) have no tail to fit: the
    # exceedances are noise, and their fit is meaningless. Such weights are
    # bounded, the lightest tail there is: k̂ = −inf.
    spread = largest[0] - largest[size]
    flat = spread < jnp.sqrt(jnp.finfo(log_weights.dtype).eps)
    return jnp.where(flat, -jnp.inf, generalized_pareto_shape(exceedances))


def _log_mean_exp(log_weights):
    return logsumexp(log_weights) - jnp.log(log_weights.shape[0])


@jax.jit  # as pareto_k
def log_mean_weight(log_weights) -> LogWeightSummary:
    """``log mean(w)`` with its bias removed, its Monte Carlo variance and the Pareto ``k̂`` (``S`` even)."""
    num_samples = log_weights.shape[0]
    log_mean = _log_mean_exp(log_weights)
    halves = 0.5 * (_log_mean_exp(log_weights[0::2]) + _log_mean_exp(log_weights[1::2]))
    relative = jnp.exp(log_weights - log_mean)  # w_s / mean(w), mean 1
    variance = jnp.var(relative, ddof=1) / num_samples
    return LogWeightSummary(2.0 * log_mean - halves, variance, pareto_k(log_weights))

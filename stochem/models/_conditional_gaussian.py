"""A Gaussian vector conditioned on its observed entries, one vector at a time, with fixed shapes.

For ``x ~ N(μ, Σ)`` with observed entries ``o`` (a 0/1 mask) and missing
entries ``m``, the Schur complement gives::

    log p(x_o)     = log N(x_o; μ_o, Σ_oo)
    E[x_m | x_o]   = μ_m + Σ_mo Σ_oo⁻¹ (x_o − μ_o)
    Cov[x_m | x_o] = Σ_mm − Σ_mo Σ_oo⁻¹ Σ_om

Every vector has its own pattern of missing entries, yet all are handled by
the same fixed-shape computation: the observed block is kept inside the full
D × D matrix and the missing rows and columns are replaced by the identity,
``A = Σ ∘ (o oᵀ) + diag(1 − o)``. A is block diagonal up to a permutation,
with blocks Σ_oo and I, so its Cholesky factor ``L`` is too; a residual that is
zero on the missing entries solves to ``Σ_oo⁻¹ (x_o − μ_o)`` on the observed
entries and zero elsewhere, and the identity block adds 0 to the
log-determinant. A vector with nothing observed has ``A = I``: log-density 0,
conditional mean μ and covariance Σ.

Each function takes one vector (``values [D]`` with anything at its missing
entries, ``observed [D]`` booleans); ``jax.vmap`` batches them over rows,
and over the components of a mixture or the states of a hidden Markov model.
``cholesky`` is :func:`padded_cholesky` of the same ``covariance`` and
``observed``, computed once and shared.
"""

from __future__ import annotations

import math

import jax.numpy as jnp
from jax.scipy.linalg import solve_triangular

_LOG_2PI = math.log(2.0 * math.pi)


def padded_cholesky(covariance, observed):
    """The Cholesky factor of ``A = Σ ∘ (o oᵀ) + diag(1 − o)``, ``[D, D]``."""
    mask = observed.astype(covariance.dtype)
    padded = covariance * jnp.outer(mask, mask) + jnp.diag(1.0 - mask)
    return jnp.linalg.cholesky(padded)


def observed_log_density(mean, cholesky, values, observed):
    """``log N(x_o; μ_o, Σ_oo)`` (0 when nothing is observed).

    With ``r = o ∘ (x − μ)``: ``−½ |L⁻¹ r|² − Σ_i log L_ii − ½ |o| log 2π``.
    """
    mask = observed.astype(cholesky.dtype)
    whitened = solve_triangular(cholesky, mask * (values - mean), lower=True)
    log_det_half = jnp.sum(jnp.log(jnp.diagonal(cholesky)))
    return -0.5 * jnp.sum(whitened**2) - log_det_half - 0.5 * jnp.sum(mask) * _LOG_2PI


def regress_on_observed(covariance, cholesky, observed, residual):
    """``Σ_mo Σ_oo⁻¹ r_o`` placed on the missing entries (0 on the observed ones); only ``r_o`` is read."""
    mask = observed.astype(covariance.dtype)
    whitened = solve_triangular(cholesky, mask * residual, lower=True)
    solved = solve_triangular(cholesky, whitened, lower=True, trans=1)  # A⁻¹ r
    return (1.0 - mask) * (covariance @ solved)


def conditional_moments(mean, covariance, cholesky, values, observed):
    """``(filled [D], conditional covariance [D, D])``: E[x | x_o] and Cov[x | x_o].

    ``filled`` is the data on the observed entries and E[x_m | x_o] on the
    missing ones; the covariance is Cov[x_m | x_o] in the missing rows and
    columns and zero elsewhere: with ``P = Σ ∘ (o (1 − o)ᵀ)`` (the Σ_om block
    in place) and ``U = L⁻¹ P``, it is ``Σ ∘ ((1 − o)(1 − o)ᵀ) − UᵀU``,
    symmetric by construction.
    """
    mask = observed.astype(covariance.dtype)
    missing = 1.0 - mask
    filled = (jnp.where(observed, values, mean)
              + regress_on_observed(covariance, cholesky, observed, values - mean))
    whitened_cross = solve_triangular(cholesky, covariance * jnp.outer(mask, missing), lower=True)
    conditional_cov = covariance * jnp.outer(missing, missing) - whitened_cross.T @ whitened_cross
    return filled, conditional_cov


def complete_from_joint_draw(joint_draw, covariance, cholesky, values, observed):
    """A draw of ``x_m | x_o`` from a joint draw ``y ~ N(μ, Σ)`` (Matheron's rule), observed entries kept.

    ``x_m = y_m + Σ_mo Σ_oo⁻¹ (x_o − y_o)`` has mean E[x_m | x_o] and
    covariance Cov[x_m | x_o]; it never uses the conditional covariance
    formula, so comparing sampled and exact statistics checks that formula.
    """
    return (jnp.where(observed, values, joint_draw)
            + regress_on_observed(covariance, cholesky, observed, values - joint_draw))

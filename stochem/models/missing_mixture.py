"""Gaussian mixtures with missing entries: the label and the missing coordinates completed together.

Row ``x_n`` has observed entries ``o_n`` (NaN in the user's data marks the
others) and an unseen label ``z_n``; both the label and the missing entries
are the missing data of EM, and the complete-data statistics are those of the
plain mixture (:mod:`stochem.models.gaussian_mixture`). Missing at random is
assumed (whether an entry is missing may depend on observed entries, not on
the missing values; see :mod:`stochem.models.missing_gaussian`).

Exact completion, per row and component, through the observed coordinates'
marginal and the conditional Gaussian of the missing ones
(:mod:`stochem.models._conditional_gaussian`)::

    t_nk = log w_k + log N(x_{n,o}; μ_{k,o}, Σ_{k,oo}),   ℓ_n = logsumexp_k t_nk,   r_nk = exp(t_nk − ℓ_n)
    m_nk = E[x_n | x_{n,o}, z_n = k],                      C_nk = Cov[x_n | x_{n,o}, z_n = k]

and, with row weights ``v_n``, the expected statistics::

    N_k = Σ_n v_n r_nk,   S1_k = Σ_n v_n r_nk m_nk,   S2_k = Σ_n v_n r_nk (m_nk m_nkᵀ + C_nk)

(S2 reduced to the covariance structure). Monte Carlo completion draws
``z_n ~ r_n``, then ``x_{n,m}`` from its conditional Gaussian given ``z_n`` by
Matheron's rule; its statistics are the same formula with ``r`` one-hot and
``C = 0`` (:func:`moments`, written once).

``v_n`` is the row's sample weight (1 by default) when at least one entry of
the row is observed, and 0 for a row with every entry missing: such a row
carries no information (``ℓ_n = log Σ_k w_k = 0``) and adds nothing to the
statistics, as in :class:`~stochem.models.missing_gaussian.MissingGaussian`.

All four covariance types go through per-component matrices: the structure
turns its covariances into ``[K, D, D]`` (``matrices``: diagonal for diag and
spherical, the shared one for tied), and second moments accumulated as
``[K, D, D]`` matrices are reduced to its own form (``from_matrices``: the
diagonals, the traces, the sum over components). One E-step costs
``O(N K D³)``; this path does not use the blocked column-layout passes of the
complete-data mixture, whose speed it leaves untouched.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from stochem.models import _conditional_gaussian as conditional


class MixtureCompletion(NamedTuple):
    """A completion of the labels and missing entries: the latent encoding of the mixture with missing data.

    Attributes:
        labels: ``[N, K]``: the posterior ``r_nk`` (exact) or a one-hot draw (sampled).
        filled: ``[N, K, D]``: each row completed under each component, ``m_nk``
            (exact), or the drawn row repeated for every component (sampled).
            Observed entries are the data.
        extra_cov: ``[N, K, D, D]``: ``C_nk`` (exact), or ``None`` for a draw
            (whose ``filled filledᵀ`` is the whole second moment).
    """

    labels: jax.Array
    filled: jax.Array
    extra_cov: Any = None


class ComponentFactors(NamedTuple):
    """What the E-step computes once from θ and the missing-entry patterns.

    Attributes:
        covariances: ``[K, D, D]``, each component's covariance matrix.
        padded_choleskies: ``[N, K, D, D]``, the Cholesky factor of component k's
            covariance restricted to row n's observed entries (identity elsewhere).
    """

    covariances: jax.Array
    padded_choleskies: jax.Array


def component_factors(covariances, observed) -> ComponentFactors:
    """The factors of components with ``covariances [K, D, D]`` for rows observed where ``observed [N, D]``."""
    per_row = jax.vmap(jax.vmap(conditional.padded_cholesky, in_axes=(0, None)), in_axes=(None, 0))
    return ComponentFactors(covariances, per_row(covariances, observed))


def observed_log_densities(means, factors: ComponentFactors, values, observed):
    """``log N(x_{n,o}; μ_{k,o}, Σ_{k,oo})``, ``[N, K]`` (0 for a row with nothing observed)."""
    per_component = jax.vmap(conditional.observed_log_density, in_axes=(0, 0, None, None))
    return jax.vmap(per_component, in_axes=(None, 0, 0, 0))(means, factors.padded_choleskies, values, observed)


def conditional_completion(means, factors: ComponentFactors, values, observed, labels) -> MixtureCompletion:
    """The exact completion: ``labels`` (the posterior), ``m_nk`` and ``C_nk`` for every row and component."""
    per_component = jax.vmap(conditional.conditional_moments, in_axes=(0, 0, 0, None, None))
    filled, extra_cov = jax.vmap(per_component, in_axes=(None, None, 0, 0, 0))(
        means, factors.covariances, factors.padded_choleskies, values, observed)
    return MixtureCompletion(labels, filled, extra_cov)


def draw_completion(key, means, factors: ComponentFactors, values, observed, log_posterior) -> MixtureCompletion:
    """One draw: ``z_n ~ P(z_n | x_{n,o})``, then ``x_{n,m} | x_{n,o}, z_n`` (:func:`draw_missing`).

    Args:
        log_posterior: ``[N, K]``, ``log P(z_n = k | x_{n,o})`` (any constant per row may be added).
    """
    label_key, entries_key = jax.random.split(key)
    labels = jax.random.categorical(label_key, log_posterior, axis=-1)
    filled = draw_missing(entries_key, means, factors, values, observed, labels)
    num_components = log_posterior.shape[-1]
    one_hot = jax.nn.one_hot(labels, num_components, dtype=values.dtype)
    return MixtureCompletion(one_hot, jnp.broadcast_to(filled[:, None, :], filled.shape[:1] + (num_components,)
                                                       + filled.shape[1:]))


def draw_missing(key, means, factors: ComponentFactors, values, observed, labels):
    """The rows ``[N, D]`` with their missing entries drawn from ``x_{n,m} | x_{n,o}, z_n = labels_n``.

    Matheron's rule: a joint draw ``y_n = μ_z + L_z ε_n`` (``Σ_z = L_z L_zᵀ``,
    ``ε_n`` standard normal) is conditioned on the observed entries with
    component ``z_n``'s padded factor
    (:func:`~stochem.models._conditional_gaussian.complete_from_joint_draw`).
    """
    num_rows = values.shape[0]
    scale_trils = jnp.linalg.cholesky(factors.covariances)
    noise = jax.random.normal(key, values.shape, dtype=values.dtype)
    joint_draw = means[labels] + jnp.einsum("nde,ne->nd", scale_trils[labels], noise)
    padded = factors.padded_choleskies[jnp.arange(num_rows), labels]
    return jax.vmap(conditional.complete_from_joint_draw)(
        joint_draw, factors.covariances[labels], padded, values, observed)


def informative_rows(observed, dtype):
    """``[N]``: 1 for a row with at least one observed entry, 0 for a row with none."""
    return jnp.any(observed, axis=-1).astype(dtype)


def moments(structure, completion: MixtureCompletion, row_weights):
    """``(N_k, S1_k, S2_k)`` of a completion (the one definition of the statistics; see the module docstring).

    Args:
        structure: a covariance structure of :mod:`stochem.models._gaussian`.
        completion: a :class:`MixtureCompletion`, exact or drawn.
        row_weights: ``[N]``, ``v_n``.
    """
    phi = completion.labels * row_weights[:, None]
    filled = completion.filled
    counts = jnp.sum(phi, axis=0)
    first_moments = jnp.einsum("nk,nkd->kd", phi, filled)
    second_moments = jnp.einsum("nk,nkd,nke->kde", phi, filled, filled)
    if completion.extra_cov is not None:
        second_moments = second_moments + jnp.einsum("nk,nkde->kde", phi, completion.extra_cov)
    return counts, first_moments, structure.from_matrices(second_moments)

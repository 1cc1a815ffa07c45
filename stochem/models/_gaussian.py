"""Gaussian components under the four covariance structures of scikit-learn.

A *structure* is the one place that knows how the K covariance matrices of a
Gaussian mixture are parameterized. For data ``x`` of shape ``[N, D]`` and
soft or one-hot assignments ``φ`` of shape ``[N, K]``, with ``N_k = Σ_n φ_nk``
and ``ñ_k = N_k + 10 ε`` (scikit-learn's floor against empty components):

==========  ===========  ==================================  ==========================================
type        covariances  second moments ``S2``               M-step (``μ_k = S1_k / ñ_k``, ``r`` = reg_covar)
==========  ===========  ==================================  ==========================================
full        [K, D, D]    Σ_n φ_nk x_n x_nᵀ        [K, D, D]  Σ_k = S2_k / ñ_k − μ_k μ_kᵀ + r I
diag        [K, D]       Σ_n φ_nk x_nd²           [K, D]     σ²_kd = S2_kd / ñ_k − μ_kd² + r
spherical   [K]          Σ_n φ_nk ‖x_n‖²          [K]        σ²_k = (S2_k / ñ_k − ‖μ_k‖²) / D + r
tied        [D, D]       Σ_n (Σ_k φ_nk) x_n x_nᵀ  [D, D]     Σ = (S2 − Σ_k ñ_k μ_k μ_kᵀ) / Σ_k ñ_k + r I
==========  ===========  ==================================  ==========================================

The second moments are *raw* (not centred), so statistics of separate blocks
of data add up. The second moments have the same shape as the covariances.

Densities and Q(θ) go through Cholesky factors ``Σ = L Lᵀ``:
``log |Σ| = 2 Σ_d log L_dd`` and ``(x − μ)ᵀ Σ⁻¹ (x − μ) = ‖L⁻¹ (x − μ)‖²`` by a
triangular solve; for the diagonal structures ``L = diag(σ)``.
"""

from __future__ import annotations

import math

import jax.numpy as jnp
from jax.scipy.linalg import solve_triangular
from numpyro.distributions import constraints

from stochem import _validation

_LOG_2PI = math.log(2.0 * math.pi)


# --- Cholesky-based Gaussian helpers -------------------------------------------------------


def log_det_from_cholesky(scale_tril):
    """``log |Σ|`` from ``L`` with ``Σ = L Lᵀ`` (batched over leading axes)."""
    return 2.0 * jnp.sum(jnp.log(jnp.diagonal(scale_tril, axis1=-2, axis2=-1)), axis=-1)


def log_density_cholesky(x, means, scale_tril):
    """``log N(x_n; μ_k, L_k L_kᵀ)`` for every pair, shape ``[N, K]``.

    Args:
        x: data ``[N, D]``.
        means: ``[K, D]``.
        scale_tril: lower Cholesky factors ``[K, D, D]``.
    """
    num_features = x.shape[-1]
    diffs = x[None, :, :] - means[:, None, :]  # [K, N, D]
    whitened = solve_triangular(scale_tril, jnp.swapaxes(diffs, -1, -2), lower=True)  # [K, D, N]
    mahalanobis = jnp.sum(whitened**2, axis=-2)  # [K, N]
    log_det = log_det_from_cholesky(scale_tril)  # [K]
    return -0.5 * (num_features * _LOG_2PI + log_det[:, None] + mahalanobis).T


def log_density_diagonal(x, means, variances):
    """``log N(x_n; μ_k, diag(σ²_k))`` for every pair, shape ``[N, K]``; variances ``[K, D]``."""
    num_features = x.shape[-1]
    whitened = (x[:, None, :] - means[None, :, :]) / jnp.sqrt(variances)[None, :, :]  # [N, K, D]
    log_det = jnp.sum(jnp.log(variances), axis=-1)  # [K]
    return -0.5 * (num_features * _LOG_2PI + log_det[None, :] + jnp.sum(whitened**2, axis=-1))


def trace_of_solve_cholesky(scale_tril, matrix):
    """``tr(Σ⁻¹ M) = tr(L⁻¹ M L⁻ᵀ)`` for symmetric ``M`` (batched), by two triangular solves."""
    half = solve_triangular(scale_tril, matrix, lower=True)  # L⁻¹ M
    full = solve_triangular(scale_tril, jnp.swapaxes(half, -1, -2), lower=True)  # L⁻¹ M L⁻ᵀ
    return jnp.trace(full, axis1=-2, axis2=-1)


def _symmetrize(matrices):
    return 0.5 * (matrices + jnp.swapaxes(matrices, -1, -2))


def _outer(vectors):
    """``v vᵀ`` for each row ``v`` of ``[K, D]``, shape ``[K, D, D]``."""
    return vectors[:, :, None] * vectors[:, None, :]


def centering_terms(counts, first_moments, means):
    """``N_k μ_k μ_kᵀ − S1_k μ_kᵀ − μ_k S1_kᵀ``, shape ``[K, D, D]``.

    Added to the raw second moment ``S2_k`` it gives the scatter about ``μ_k``:
    ``C_k = Σ_n φ_nk (x_n − μ_k)(x_n − μ_k)ᵀ = S2_k + centering_k``.
    """
    cross = first_moments[:, :, None] * means[:, None, :]
    return counts[:, None, None] * _outer(means) - cross - jnp.swapaxes(cross, -1, -2)


def _check_positive(name, array):
    if array.size and array.min() <= 0:
        raise ValueError(f"{name} must be positive (variances); found {array.min():g}.")


# --- the four structures ---------------------------------------------------------------------


class Full:
    """Each component has its own covariance matrix, ``[K, D, D]``."""

    constraint = constraints.positive_definite
    num_feature_axes = 2

    def shape(self, num_components, num_features):
        return (num_components, num_features, num_features)

    def check(self, name, covariances):
        _validation.check_positive_definite(name, covariances)

    def second_moments(self, x, phi):
        return jnp.einsum("nk,nd,ne->kde", phi, x, x)

    def m_step(self, padded_counts, means, second_moments, reg_covar):
        covariances = second_moments / padded_counts[:, None, None] - _outer(means)
        return _symmetrize(covariances) + reg_covar * jnp.eye(means.shape[-1])

    def log_density(self, x, means, covariances):
        return log_density_cholesky(x, means, jnp.linalg.cholesky(covariances))

    def expected_log_density(self, counts, first_moments, second_moments, means, covariances):
        """``Σ_k Σ_n φ_nk log N(x_n; μ_k, Σ_k)``, through the statistics."""
        scale_tril = jnp.linalg.cholesky(covariances)
        scatter = second_moments + centering_terms(counts, first_moments, means)
        quadratic = trace_of_solve_cholesky(scale_tril, scatter)
        num_features = means.shape[-1]
        return -0.5 * jnp.sum(counts * (num_features * _LOG_2PI + log_det_from_cholesky(scale_tril))
                              + quadratic)


class Diag:
    """Each component has its own diagonal covariance, stored as variances ``[K, D]``."""

    constraint = constraints.positive
    num_feature_axes = 1

    def shape(self, num_components, num_features):
        return (num_components, num_features)

    def check(self, name, covariances):
        _check_positive(name, covariances)

    def second_moments(self, x, phi):
        return phi.T @ (x * x)

    def m_step(self, padded_counts, means, second_moments, reg_covar):
        return second_moments / padded_counts[:, None] - means**2 + reg_covar

    def variances(self, covariances, num_features):
        """The per-feature variances, ``[K, D]``."""
        del num_features
        return covariances

    def log_density(self, x, means, covariances):
        return log_density_diagonal(x, means, self.variances(covariances, x.shape[-1]))

    def expected_log_density(self, counts, first_moments, second_moments, means, covariances):
        """``Σ_k Σ_n φ_nk log N(x_n; μ_k, diag σ²_k)``, through the statistics."""
        num_features = means.shape[-1]
        variances = self.variances(covariances, num_features)
        # Σ_d Σ_n φ_nk (x_nd − μ_kd)² / σ²_kd, per component:
        quadratic = jnp.sum(self._squared_deviations(counts, first_moments, second_moments, means)
                            / variances, axis=-1)
        log_det = jnp.sum(jnp.log(variances), axis=-1)
        return -0.5 * jnp.sum(counts * (num_features * _LOG_2PI + log_det) + quadratic)

    def _squared_deviations(self, counts, first_moments, second_moments, means):
        """``Σ_n φ_nk (x_nd − μ_kd)²``, shape ``[K, D]``."""
        return second_moments - 2.0 * first_moments * means + counts[:, None] * means**2


class Spherical(Diag):
    """Each component has one variance shared by all features, ``[K]``."""

    num_feature_axes = 0

    def shape(self, num_components, num_features):
        return (num_components,)

    def second_moments(self, x, phi):
        return phi.T @ jnp.sum(x * x, axis=-1)

    def m_step(self, padded_counts, means, second_moments, reg_covar):
        num_features = means.shape[-1]
        return (second_moments / padded_counts - jnp.sum(means**2, axis=-1)) / num_features + reg_covar

    def variances(self, covariances, num_features):
        return jnp.broadcast_to(covariances[:, None], covariances.shape + (num_features,))

    def _squared_deviations(self, counts, first_moments, second_moments, means):
        """``Σ_n φ_nk ‖x_n − μ_k‖²`` spread evenly over the features, ``[K, D]``."""
        total = (second_moments - 2.0 * jnp.sum(first_moments * means, axis=-1)
                 + counts * jnp.sum(means**2, axis=-1))
        return jnp.broadcast_to(total[:, None] / means.shape[-1], means.shape)


class Tied:
    """All components share one covariance matrix, ``[D, D]``."""

    constraint = constraints.positive_definite
    num_feature_axes = 2

    def shape(self, num_components, num_features):
        return (num_features, num_features)

    def check(self, name, covariances):
        _validation.check_positive_definite(name, covariances)

    def second_moments(self, x, phi):
        # Σ_k φ_nk = 1 for a proper assignment; weighting by it keeps T linear in φ.
        return (x * jnp.sum(phi, axis=-1)[:, None]).T @ x

    def m_step(self, padded_counts, means, second_moments, reg_covar):
        between = jnp.einsum("k,kd,ke->de", padded_counts, means, means)
        covariance = (second_moments - between) / jnp.sum(padded_counts)
        return _symmetrize(covariance) + reg_covar * jnp.eye(means.shape[-1])

    def log_density(self, x, means, covariances):
        scale_tril = jnp.linalg.cholesky(covariances)
        shared = jnp.broadcast_to(scale_tril, (means.shape[0],) + scale_tril.shape)
        return log_density_cholesky(x, means, shared)

    def expected_log_density(self, counts, first_moments, second_moments, means, covariances):
        """``Σ_k Σ_n φ_nk log N(x_n; μ_k, Σ)``, through the statistics."""
        scale_tril = jnp.linalg.cholesky(covariances)
        # One covariance for all: Σ_k C_k = S2 + Σ_k centering_k (S2 already sums over k).
        scatter = second_moments + jnp.sum(centering_terms(counts, first_moments, means), axis=0)
        num_features = means.shape[-1]
        return -0.5 * (jnp.sum(counts) * (num_features * _LOG_2PI + log_det_from_cholesky(scale_tril))
                       + trace_of_solve_cholesky(scale_tril, scatter))


STRUCTURES = {"full": Full(), "diag": Diag(), "spherical": Spherical(), "tied": Tied()}


def short_shape(structure, num_components):
    """The covariance shape for ``D = 1`` with the feature axes left out (spherical: ``[K]``)."""
    full_shape = structure.shape(num_components, 1)
    return full_shape[: len(full_shape) - structure.num_feature_axes]

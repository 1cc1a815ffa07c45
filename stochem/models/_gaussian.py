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
of data add up. For the counts of sampled completions
(:class:`stochem.capabilities.CountedDraws`) each structure also gives the
*spread* of its second moments, ``Σ_n [Σ_l w_nl t_nl² − (Σ_l w_nl t_nl)²]``
entry by entry: an entry of component ``k`` gets ``t_nl = 1[l = k] g(x_n)``, so
its spread is ``Σ_n w_nk (1 − w_nk) g(x_n)²`` (``g = x_d x_e``, ``x_d²`` or
``‖x‖²``); the tied entries do not depend on the label and spread 0. The second moments have the same shape as the covariances.
Each is a matrix product over the data axis (``Σ_n (φ_nk x_n) x_nᵀ``,
``Σ_n φ_nk x_nd²``, ...), computed in the *column layout* ``xᵀ [D, N]``,
``φᵀ [K, N]`` that the blocked passes of :mod:`stochem.models.gaussian_mixture`
use: elementwise work then runs along contiguous rows of length ``N``.

Densities go through Cholesky factors ``Σ = L Lᵀ`` and the *whitening*
``P = L⁻¹``: ``log |Σ| = −2 Σ_d log P_dd`` and
``(x − μ)ᵀ Σ⁻¹ (x − μ) = ‖P (x − μ)‖²`` (scikit-learn's formulation, with
``Pᵀ`` its ``precisions_cholesky_``). For the full structure the whitenings of
all K components are stacked into one ``[K·D, D]`` matrix, so a block of points
is whitened by one matrix product; the points are first shifted by the centre
of the means so that data far from the origin loses no digits. For the
diagonal structures ``P = diag(1/σ)``. Everything that depends on θ alone
(factors, whitenings, log-normalizers) is computed once per E-step in a
*density plan*, and each structure's ``log_density_columns(plan, xᵀ)``
evaluates it on a block of points in the column layout ``[D, B]``, giving
``[K, B]``.

For data with missing entries (:mod:`stochem.models.missing_mixture`) each
structure also gives its covariances as per-component matrices
(``matrices``: ``[K, D, D]``) and reduces per-component second-moment
matrices to its own form (``from_matrices``: themselves, their diagonals,
their traces, their sum over components).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.linalg import solve_triangular

from stochem import _validation

_LOG_2PI = math.log(2.0 * math.pi)


# --- Cholesky-based Gaussian helpers -------------------------------------------------------


def log_det_from_cholesky(scale_tril):
    """``log |Σ|`` from ``L`` with ``Σ = L Lᵀ`` (batched over leading axes)."""
    return 2.0 * jnp.sum(jnp.log(jnp.diagonal(scale_tril, axis1=-2, axis2=-1)), axis=-1)


def whitening_from_cholesky(scale_tril):
    """``P = L⁻¹`` (lower triangular, batched), so that ``Σ⁻¹ = Pᵀ P``.

    One triangular solve on ``[..., D, D]``: the cost does not grow with the data.
    """
    identity = jnp.broadcast_to(jnp.eye(scale_tril.shape[-1], dtype=scale_tril.dtype), scale_tril.shape)
    return solve_triangular(scale_tril, identity, lower=True)


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


def check_reg_covar(reg_covar) -> float:
    """``reg_covar`` as a Python float, or a clear error: it must be a finite number ``>= 0``.

    The one check behind every Gaussian model's ``reg_covar`` argument (the
    amount added to the diagonal of each covariance in the M-step).
    """
    if isinstance(reg_covar, bool):
        raise TypeError(f"reg_covar must be a non-negative number, got {reg_covar!r}.")
    try:
        value = float(reg_covar)
    except (TypeError, ValueError):
        raise TypeError(f"reg_covar must be a non-negative number, got {reg_covar!r}.") from None
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"reg_covar must be a finite number >= 0 (e.g. 1e-6), got {value}.")
    return value


def _check_positive(name, array):
    if array.size and array.min() <= 0:
        raise ValueError(f"{name} must be positive (variances); found {array.min():g}.")


# --- density plans -------------------------------------------------------------------------------


class DensityPlan(NamedTuple):
    """Everything ``log N(x; μ_k, Σ_k)`` needs that depends on θ alone.

    Attributes:
        centre: ``c [D]``; rows are shifted by it before any product.
        whitening: full ``[K·D, D]`` (the ``P_k`` stacked), tied ``[D, D]`` (``P``),
            diag and spherical ``[K, D]`` (the precisions ``1/σ²``). Each
            structure's ``log_density_columns`` reads its own layout.
        offsets: full ``[K·D, 1]`` and tied ``[K, D, 1]``: ``P_k (μ_k − c)``; diag
            and spherical ``[K, D, 1]``: ``μ_k − c``.
        log_normalizer: ``−½ (D log 2π + log |Σ_k|)``, ``[K]``.
    """

    centre: Any
    whitening: Any
    offsets: Any
    log_normalizer: Any


def _centre_of(means):
    """The shift ``c [D, 1]`` applied to the points before any product."""
    return jnp.mean(means, axis=0)[:, None]


def _sum_over_features(squares, num_components):
    """``[K·D, B] → [K, B]``: each component's sum over its D whitened coordinates."""
    num_features = squares.shape[0] // num_components
    if num_features == 1:
        return squares
    # A 0/1 matrix product: faster on CPUs than a strided reduction, and exact.
    indicator = np.kron(np.eye(num_components), np.ones((1, num_features)))
    return jnp.asarray(indicator, squares.dtype) @ squares


def _weighted_outer_sums(points_t, weights_t):
    """``Σ_n w_kn x_n x_nᵀ`` for each row ``k`` of ``weights_t [K, N]``; ``points_t [D, N]`` → ``[K, D, D]``.

    Computed as ``(w_k ⊙ x_d) · x_e``: one ``[K·D, N] × [N, D]`` product. (Forming the
    weight-free ``x_n x_nᵀ`` once instead is slower for one set of weights on CPUs,
    measured 41 ms against 23 ms for N = 200,000, D = 8, K = 5.)
    """
    num_components, num_features = weights_t.shape[0], points_t.shape[0]
    weighted = (weights_t[:, None, :] * points_t[None, :, :]).reshape(num_components * num_features, -1)
    return contract_points(weighted, points_t).reshape(num_components, num_features, num_features)


def contract_points(left_t, right_t):
    """``left_t [A, N] @ right_t [C, N]ᵀ``: a sum over the points (column layout), ``[A, C]``."""
    return jax.lax.dot_general(left_t, right_t, (((1,), (1,)), ((), ())))


# --- the four structures ---------------------------------------------------------------------


class Full:
    """Each component has its own covariance matrix, ``[K, D, D]``."""

    num_feature_axes = 2

    @property
    def constraint(self):
        """The numpyro constraint of the stored covariances (numpyro imported when first needed)."""
        from numpyro.distributions import constraints

        return constraints.positive_definite

    def shape(self, num_components, num_features):
        return (num_components, num_features, num_features)

    def check(self, name, covariances):
        _validation.check_positive_definite(name, covariances)

    def second_moments_columns(self, points_t, phi_t):
        """``Σ_n φ_nk x_n x_nᵀ`` from ``xᵀ [D, N]`` and ``φᵀ [K, N]``, ``[K, D, D]``."""
        return _weighted_outer_sums(points_t, phi_t)

    def second_moments(self, x, phi):
        return self.second_moments_columns(x.T, phi.T)

    def matrices(self, covariances, means):
        """Each component's covariance matrix, ``[K, D, D]`` (``means [K, D]`` give the sizes)."""
        del means
        return covariances

    def from_matrices(self, second_moments):
        """This structure's second moments from per-component matrices ``Σ_n φ_nk E[x_n x_nᵀ]`` ``[K, D, D]``."""
        return second_moments

    def second_moments_spread_columns(self, points_t, spread_t):
        """``Σ_n v_kn x_nd² x_ne²``, ``v = w (1 − w)``: the spread of ``S2_k`` (only label ``k`` adds to it)."""
        return _weighted_outer_sums(points_t * points_t, spread_t)

    def m_step(self, padded_counts, means, second_moments, reg_covar):
        covariances = second_moments / padded_counts[:, None, None] - _outer(means)
        return _symmetrize(covariances) + reg_covar * jnp.eye(means.shape[-1])

    def density_plan(self, means, covariances):
        num_components, num_features = means.shape
        whitening = whitening_from_cholesky(jnp.linalg.cholesky(covariances))  # P_k, [K, D, D]
        centre = _centre_of(means)
        offsets = jnp.einsum("ked,kd->ke", whitening, means - centre[:, 0])
        log_det = -2.0 * jnp.sum(jnp.log(jnp.diagonal(whitening, axis1=-2, axis2=-1)), axis=-1)
        return DensityPlan(centre, whitening.reshape(num_components * num_features, num_features),
                           offsets.reshape(-1, 1), -0.5 * (num_features * _LOG_2PI + log_det))

    def log_density_columns(self, plan, points_t):
        """``log N(x_n; μ_k, Σ_k)`` for points ``[D, B]``, ``[K, B]``: ``‖P_k (x − c) − P_k (μ_k − c)‖²``."""
        whitened = plan.whitening @ (points_t - plan.centre) - plan.offsets  # [K·D, B]
        mahalanobis = _sum_over_features(whitened * whitened, plan.log_normalizer.shape[0])
        return plan.log_normalizer[:, None] - 0.5 * mahalanobis

    def log_density(self, x, means, covariances):
        """``log N(x_n; μ_k, Σ_k)`` for every pair, ``[N, K]``."""
        return self.log_density_columns(self.density_plan(means, covariances), x.T).T

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

    num_feature_axes = 1

    @property
    def constraint(self):
        """The numpyro constraint of the stored covariances (numpyro imported when first needed)."""
        from numpyro.distributions import constraints

        return constraints.positive

    def shape(self, num_components, num_features):
        return (num_components, num_features)

    def check(self, name, covariances):
        _check_positive(name, covariances)

    def second_moments_columns(self, points_t, phi_t):
        """``Σ_n φ_nk x_nd²`` from ``xᵀ [D, N]`` and ``φᵀ [K, N]``, ``[K, D]``."""
        return contract_points(phi_t, points_t * points_t)

    def second_moments(self, x, phi):
        return self.second_moments_columns(x.T, phi.T)

    def matrices(self, covariances, means):
        """Each component's covariance matrix, ``[K, D, D]`` (diagonal)."""
        variances = self.variances(covariances, means.shape[-1])
        return variances[:, :, None] * jnp.eye(means.shape[-1], dtype=variances.dtype)

    def from_matrices(self, second_moments):
        """The diagonals of per-component matrices ``[K, D, D]``, ``[K, D]``."""
        return jnp.diagonal(second_moments, axis1=-2, axis2=-1)

    def second_moments_spread_columns(self, points_t, spread_t):
        """``Σ_n v_kn x_nd⁴``, ``v = w (1 − w)``: the spread of ``S2_kd``."""
        squares = points_t * points_t
        return contract_points(spread_t, squares * squares)

    def m_step(self, padded_counts, means, second_moments, reg_covar):
        return second_moments / padded_counts[:, None] - means**2 + reg_covar

    def variances(self, covariances, num_features):
        """The per-feature variances, ``[K, D]``."""
        del num_features
        return covariances

    def density_plan(self, means, covariances):
        num_features = means.shape[-1]
        variances = self.variances(covariances, num_features)
        centre = _centre_of(means)
        log_det = jnp.sum(jnp.log(variances), axis=-1)
        return DensityPlan(centre, 1.0 / variances, (means - centre[:, 0])[:, :, None],
                           -0.5 * (num_features * _LOG_2PI + log_det))

    def log_density_columns(self, plan, points_t):
        """``log N(x_n; μ_k, diag σ²_k)`` for points ``[D, B]``, ``[K, B]``: ``Σ_d (x_d − μ_kd)² / σ²_kd``."""
        deviations = (points_t - plan.centre)[None, :, :] - plan.offsets  # [K, D, B]
        mahalanobis = jnp.sum(deviations * deviations * plan.whitening[:, :, None], axis=1)
        return plan.log_normalizer[:, None] - 0.5 * mahalanobis

    def log_density(self, x, means, covariances):
        """``log N(x_n; μ_k, diag σ²_k)`` for every pair, ``[N, K]``."""
        return self.log_density_columns(self.density_plan(means, covariances), x.T).T

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

    def second_moments_columns(self, points_t, phi_t):
        """``Σ_n φ_nk ‖x_n‖²`` from ``xᵀ [D, N]`` and ``φᵀ [K, N]``, ``[K]``."""
        return phi_t @ jnp.sum(points_t * points_t, axis=0)

    def from_matrices(self, second_moments):
        """The traces of per-component matrices ``[K, D, D]``, ``[K]``."""
        return jnp.trace(second_moments, axis1=-2, axis2=-1)

    def second_moments_spread_columns(self, points_t, spread_t):
        """``Σ_n v_kn ‖x_n‖⁴``, ``v = w (1 − w)``: the spread of ``S2_k``."""
        norms = jnp.sum(points_t * points_t, axis=0)
        return spread_t @ (norms * norms)

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

    num_feature_axes = 2

    @property
    def constraint(self):
        """The numpyro constraint of the stored covariances (numpyro imported when first needed)."""
        from numpyro.distributions import constraints

        return constraints.positive_definite

    def shape(self, num_components, num_features):
        return (num_features, num_features)

    def check(self, name, covariances):
        _validation.check_positive_definite(name, covariances)

    def second_moments_columns(self, points_t, phi_t):
        """``Σ_n (Σ_k φ_nk) x_n x_nᵀ`` from ``xᵀ [D, N]`` and ``φᵀ [K, N]``, ``[D, D]``.

        ``Σ_k φ_nk = 1`` for a proper assignment; weighting by it keeps T linear in φ.
        """
        return _weighted_outer_sums(points_t, jnp.sum(phi_t, axis=0, keepdims=True))[0]

    def second_moments(self, x, phi):
        return self.second_moments_columns(x.T, phi.T)

    def matrices(self, covariances, means):
        """The shared matrix once per component, ``[K, D, D]``."""
        return jnp.broadcast_to(covariances, (means.shape[0],) + covariances.shape)

    def from_matrices(self, second_moments):
        """The sum over components of per-component matrices ``[K, D, D]``, ``[D, D]``."""
        return jnp.sum(second_moments, axis=0)

    def second_moments_spread_columns(self, points_t, spread_t):
        """Zero: ``Σ_n (Σ_k φ_nk) x_n x_nᵀ`` is the same for every label (``Σ_k φ_nk = 1``)."""
        num_features = points_t.shape[0]
        return jnp.zeros((num_features, num_features), points_t.dtype)

    def m_step(self, padded_counts, means, second_moments, reg_covar):
        between = jnp.einsum("k,kd,ke->de", padded_counts, means, means)
        covariance = (second_moments - between) / jnp.sum(padded_counts)
        return _symmetrize(covariance) + reg_covar * jnp.eye(means.shape[-1])

    def density_plan(self, means, covariances):
        num_features = means.shape[-1]
        whitening = whitening_from_cholesky(jnp.linalg.cholesky(covariances))  # P, [D, D]
        centre = _centre_of(means)
        log_det = -2.0 * jnp.sum(jnp.log(jnp.diagonal(whitening)))
        log_normalizer = jnp.full(means.shape[:1], -0.5 * (num_features * _LOG_2PI + log_det))
        offsets = (means - centre[:, 0]) @ whitening.T  # P (μ_k − c), [K, D]
        return DensityPlan(centre, whitening, offsets[:, :, None], log_normalizer)

    def log_density_columns(self, plan, points_t):
        """``log N(x_n; μ_k, Σ)`` for points ``[D, B]``, ``[K, B]``: one whitening, K offsets."""
        whitened = (plan.whitening @ (points_t - plan.centre))[None, :, :] - plan.offsets  # [K, D, B]
        return plan.log_normalizer[:, None] - 0.5 * jnp.sum(whitened * whitened, axis=1)

    def log_density(self, x, means, covariances):
        """``log N(x_n; μ_k, Σ)`` for every pair, ``[N, K]``."""
        return self.log_density_columns(self.density_plan(means, covariances), x.T).T

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

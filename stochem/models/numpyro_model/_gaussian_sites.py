"""Gaussian sites whose parameters are param sites: their sufficient statistics and closed-form updates.

A numpyro sample site (latent or observed) of one of these two forms is an
exponential family in θ with statistics of fixed size, so SAEM can average its
statistics and update its parameters in closed form (Kuhn & Lavielle 2004):

* :class:`NormalSite` — ``dist.Normal(loc, scale)`` (also ``.expand(...)`` and
  ``.to_event(...)``). ``scale`` is a param site ``σ`` broadcast to the value's
  shape (``kind="scale"``) or the square root of one, ``ω²``
  (``kind="variance"``). ``loc`` is a param site ``μ`` broadcast to the value's
  shape, or a value that does not depend on θ at all (data, other latent
  sites, constants: e.g. a residual error ``y ~ N(f(φ, t), σ²)``). With
  ``loc = μ``, the scale must not vary within the entries that share one
  entry of ``μ`` (σ's shape is coarser than μ's), so that μ's maximizer is a
  plain mean.
* :class:`MvnSite` — ``dist.MultivariateNormal(loc, covariance_matrix=Σ)`` or
  ``(loc, scale_tril=L)`` with ``Σ`` [D, D] (or ``L``) a param site, shared by
  every vector of the site, and ``loc`` a param site [D] or free of θ.

Statistics, for the values ``x`` of the site (one draw), summed over the
entries that share a parameter entry (``n`` of them)::

    loc = μ:         S1 = Σ x,  S2 = Σ x²  (Normal; Σ x xᵀ for MVN)   μ̂ = S1 / n,  σ̂² = (S2 − n μ̂²) / n
    loc free of θ:   R = Σ (x − loc)²      ((x − loc)(x − loc)ᵀ)        σ̂² = R / n

and the site's log density through them, e.g. for a Normal with loc = μ::

    Σ log N(x; μ, σ²) = −½ Σ_j [n_j log(2π σ_j²) + (S2_j − 2 μ_j S1_j + n_j μ_j²) / σ_j²].

Each statistic is written once (``statistics``) and serves the draws of every
iteration and their stochastic-approximation average alike.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax.numpy as jnp

_LOG_2PI = math.log(2 * math.pi)


def padded(shape: tuple, ndim: int) -> tuple:
    """``shape`` with ones prepended to ``ndim`` axes (numpy broadcasting's alignment)."""
    return (1,) * (ndim - len(shape)) + tuple(shape)


def sum_to_shape(values, shape: tuple):
    """Sum ``values`` over the axes that ``shape`` broadcasts over: the inverse of broadcasting.

    ``shape`` must broadcast to ``values.shape``; the result has shape ``shape``.
    """
    target = padded(shape, values.ndim)
    axes = tuple(axis for axis, size in enumerate(target) if size == 1 and values.shape[axis] != 1)
    return jnp.sum(values, axis=axes, keepdims=True).reshape(shape)


class LocationStats(NamedTuple):
    """``Σ x`` and ``Σ x²`` (``Σ x xᵀ`` for MVN) over the entries sharing each entry of μ."""

    total: jnp.ndarray
    second_moment: jnp.ndarray


class ResidualStats(NamedTuple):
    """``Σ (x − loc)²`` (``Σ (x − loc)(x − loc)ᵀ`` for MVN) for a loc that does not depend on θ."""

    residual: jnp.ndarray


class NormalSite(NamedTuple):
    """A recognised ``Normal(loc, scale)`` site (see the module docstring).

    Attributes:
        name: the site.
        value_shape: shape of its value.
        scale_field: the params field of σ (``kind="scale"``) or ω² (``"variance"``).
        scale_shape: that param's shape.
        kind: ``"scale"`` or ``"variance"``.
        loc_field: the params field of μ, or ``None`` when loc is free of θ.
        loc_shape: μ's shape (``()`` when ``loc_field`` is ``None``).
    """

    name: str
    value_shape: tuple
    scale_field: str
    scale_shape: tuple
    kind: str
    loc_field: str | None = None
    loc_shape: tuple = ()

    @property
    def fields(self) -> tuple:
        return (self.scale_field,) if self.loc_field is None else (self.loc_field, self.scale_field)

    def describe(self) -> str:
        loc = "free of θ" if self.loc_field is None else self.loc_field
        return f"{self.name}: Normal(loc={loc}, {self.kind}={self.scale_field}), closed form"

    def _count(self, shape) -> int:
        return math.prod(self.value_shape) // math.prod(padded(shape, len(self.value_shape)))

    def statistics(self, value, loc):
        """The statistics of one value of the site (``loc``: the distribution's loc, broadcast)."""
        value = jnp.broadcast_to(value, self.value_shape)
        if self.loc_field is None:
            residual = value - jnp.broadcast_to(loc, self.value_shape)
            return ResidualStats(sum_to_shape(residual**2, self.scale_shape))
        return LocationStats(sum_to_shape(value, self.loc_shape), sum_to_shape(value**2, self.loc_shape))

    def _variance(self, values):
        scale = values[self.scale_field]
        return scale if self.kind == "variance" else scale**2

    def _residual_sums(self, stats, loc):
        """``Σ (x − μ)²`` over the entries sharing each entry of σ, for the loc ``loc`` (μ's shape)."""
        if self.loc_field is None:
            return stats.residual
        ndim = len(self.value_shape)
        count = self._count(self.loc_shape)
        per_loc = stats.second_moment - 2 * loc * stats.total + count * loc**2
        return sum_to_shape(per_loc.reshape(padded(self.loc_shape, ndim)),
                            padded(self.scale_shape, ndim)).reshape(self.scale_shape)

    def loglik(self, stats, values):
        """``Σ log N(x; loc, σ²)`` through the statistics; ``values``: ``{field: value}``."""
        variance = self._variance(values)
        loc = None if self.loc_field is None else values[self.loc_field]
        count = self._count(self.scale_shape)
        return -0.5 * jnp.sum(count * (_LOG_2PI + jnp.log(variance)) + self._residual_sums(stats, loc) / variance)

    def maximize(self, stats) -> dict:
        """``{field: value}`` maximizing :meth:`loglik` (μ̂ = S1/n, then σ̂² = residuals / n)."""
        new = {}
        loc = None
        if self.loc_field is not None:
            loc = stats.total / self._count(self.loc_shape)
            new[self.loc_field] = loc
        variance = self._residual_sums(stats, loc) / self._count(self.scale_shape)
        new[self.scale_field] = variance if self.kind == "variance" else jnp.sqrt(variance)
        return new

    def anneal(self, new: dict, old: dict, factor) -> dict:
        """Keep the variance from shrinking faster than ``factor`` per iteration: σ² ≥ factor · σ²_old."""
        variance = jnp.maximum(self._variance(new), factor * self._variance(old))
        return {**new, self.scale_field: variance if self.kind == "variance" else jnp.sqrt(variance)}


class MvnSite(NamedTuple):
    """A recognised ``MultivariateNormal(loc, covariance_matrix=Σ | scale_tril=L)`` site.

    Attributes:
        name: the site.
        value_shape: shape of its value, ``[..., D]``.
        cov_field: the params field of Σ (``kind="covariance"``) or L (``"scale_tril"``).
        kind: ``"covariance"`` or ``"scale_tril"``.
        loc_field: the params field of μ [D], or ``None`` when loc is free of θ.
    """

    name: str
    value_shape: tuple
    cov_field: str
    kind: str
    loc_field: str | None = None

    @property
    def fields(self) -> tuple:
        return (self.cov_field,) if self.loc_field is None else (self.loc_field, self.cov_field)

    def describe(self) -> str:
        loc = "free of θ" if self.loc_field is None else self.loc_field
        return f"{self.name}: MultivariateNormal(loc={loc}, {self.kind}={self.cov_field}), closed form"

    @property
    def _count(self) -> int:
        return math.prod(self.value_shape[:-1])

    def statistics(self, value, loc):
        vectors = jnp.broadcast_to(value, self.value_shape).reshape(-1, self.value_shape[-1])
        if self.loc_field is None:
            residual = vectors - jnp.broadcast_to(loc, self.value_shape).reshape(vectors.shape)
            return ResidualStats(residual.T @ residual)
        return LocationStats(jnp.sum(vectors, axis=0), vectors.T @ vectors)

    def _covariance(self, values):
        matrix = values[self.cov_field]
        return matrix if self.kind == "covariance" else matrix @ matrix.T

    def _scatter(self, stats, loc):
        if self.loc_field is None:
            return stats.residual
        outer = jnp.outer(loc, stats.total)
        return stats.second_moment - outer - outer.T + self._count * jnp.outer(loc, loc)

    def loglik(self, stats, values):
        covariance = self._covariance(values)
        loc = None if self.loc_field is None else values[self.loc_field]
        cholesky = jnp.linalg.cholesky(covariance)
        log_det = 2 * jnp.sum(jnp.log(jnp.diag(cholesky)))
        trace = jnp.trace(jnp.linalg.solve(covariance, self._scatter(stats, loc)))
        dimension = self.value_shape[-1]
        return -0.5 * (self._count * (dimension * _LOG_2PI + log_det) + trace)

    def _from_covariance(self, covariance) -> jnp.ndarray:
        covariance = 0.5 * (covariance + covariance.T)
        return covariance if self.kind == "covariance" else jnp.linalg.cholesky(covariance)

    def maximize(self, stats) -> dict:
        new = {}
        loc = None
        if self.loc_field is not None:
            loc = stats.total / self._count
            new[self.loc_field] = loc
        new[self.cov_field] = self._from_covariance(self._scatter(stats, loc) / self._count)
        return new

    def anneal(self, new: dict, old: dict, factor) -> dict:
        """saemix's rule on the diagonal: ``Σ_ii ≥ factor · Σ_ii,old`` (raising a diagonal keeps Σ positive definite)."""
        covariance = self._covariance(new)
        floor = factor * jnp.diag(self._covariance(old))
        raised = covariance + jnp.diag(jnp.maximum(floor - jnp.diag(covariance), 0.0))
        return {**new, self.cov_field: self._from_covariance(raised)}

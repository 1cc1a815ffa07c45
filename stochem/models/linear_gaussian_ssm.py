"""Linear-Gaussian state-space models: the continuous twin of the hidden Markov model.

A hidden state ``x_t ∈ R^D`` moves linearly with Gaussian noise and emits a
noisy linear observation ``y_t ∈ R^O``::

    x_0 ~ N(m_0, P_0),   x_{t+1} | x_t ~ N(A x_t, Q),   y_t | x_t ~ N(H x_t, R).

The missing data is the whole state path. Exact completion is the
Rauch–Tung–Striebel smoother, sampled completion draws whole paths by forward
filtering, backward sampling, ℓ(θ) is the Kalman filter's
(:mod:`stochem.models.kalman_inference`, pure functions), and the M-step is in
closed form (Shumway & Stoffer 1982; Ghahramani & Hinton 1996).

Latent encoding (the features the statistics are linear in), :class:`SSMLatent`::

    first[b, t]  = x_bt            second[b, t] = x_bt x_btᵀ        cross[b, t] = x_b,t+1 x_btᵀ

A sampled path passes these products of one draw; the exact completion passes
their posterior expectations (``m m ᵀ + P`` and ``m_{t+1} m_tᵀ + Cov(x_{t+1}, x_t)``)
to the same :meth:`LinearGaussianSSM.suff_stats`, so the two E-steps share one
copy of every statistic.
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from stochem import _validation
from stochem.models import _gaussian
from stochem.models import kalman_inference as inference
from stochem.models.base import ModelBase

LinearGaussianSSMParams = inference.SSMParams
_LOG_2PI = math.log(2 * math.pi)


class SSMData(NamedTuple):
    """Sequences of equal length: ``observations`` [B, T, O] (0 where unseen), ``observed`` [B, T] bool."""

    observations: jax.Array
    observed: jax.Array


class SSMLatent(NamedTuple):
    """A state path (one draw) or its posterior moments: ``first`` [B, T, D], ``second`` [B, T, D, D],
    ``cross`` [B, T − 1, D, D] (see the module docstring)."""

    first: jax.Array
    second: jax.Array
    cross: jax.Array


class SSMStats(NamedTuple):
    """Sufficient statistics: sums over sequences (and steps) of the latent features."""

    initial_first: jax.Array  # Σ_b x_b0                     [D]
    initial_second: jax.Array  # Σ_b x_b0 x_b0ᵀ               [D, D]
    previous_second: jax.Array  # Σ_b Σ_{t<T−1} x_t x_tᵀ       [D, D]
    next_second: jax.Array  # Σ_b Σ_{t>0} x_t x_tᵀ            [D, D]
    cross: jax.Array  # Σ_b Σ_t x_{t+1} x_tᵀ                  [D, D]
    seen_second: jax.Array  # Σ over seen steps x_t x_tᵀ     [D, D]
    output_cross: jax.Array  # Σ over seen steps y_t x_tᵀ    [O, D]
    output_second: jax.Array  # Σ over seen steps y_t y_tᵀ   [O, O]
    num_sequences: jax.Array
    num_transitions: jax.Array
    num_seen: jax.Array


def _outer(a, b):
    return jnp.einsum("...i,...j->...ij", a, b)


def _gaussian_loglik(count, covariance, scatter):
    """Σ log N over ``count`` vectors whose scatter about the mean is ``scatter``: −½[n log|2πΣ| + tr(Σ⁻¹ S)]."""
    cholesky = jnp.linalg.cholesky(covariance)
    dimension = covariance.shape[-1]
    return -0.5 * (count * (dimension * _LOG_2PI + _gaussian.log_det_from_cholesky(cholesky))
                   + _gaussian.trace_of_solve_cholesky(cholesky, scatter))


def _regression_scatter(second_out, cross, second_in, matrix):
    """``Σ (u − M v)(u − M v)ᵀ = S_uu − M S_uvᵀ − S_uv Mᵀ + M S_vv Mᵀ``."""
    term = matrix @ cross.T
    return second_out - term - term.T + matrix @ second_in @ matrix.T


@dataclasses.dataclass(frozen=True)
class LinearGaussianSSM(ModelBase):
    """A linear-Gaussian state-space model with a D-dimensional state and O-dimensional observations.

    Data: one sequence ``[T, O]`` (or ``[T]`` when O = 1), or ``[B, T, O]``
    sequences of equal length; a row of NaN marks an unseen step (the state
    still moves). Parameters: :class:`LinearGaussianSSMParams`. With one
    sequence, P_0 cannot be estimated (its MLE is 0): fix it,
    ``fit(..., fixed=("initial_cov",))``, or give several sequences.

    Capabilities: exact E-step (smoother) with ℓ on the way, posterior
    sampler (FFBS), closed-form M-step, ℓ by the Kalman filter, Q through the
    statistics (``complete_loglik``), linear statistics (SAEM, online EM).

    Args:
        state_dim: D.
        obs_dim: O.
        reg_covar: added to the diagonal of every covariance in the M-step.

    Example:
        >>> import numpy as np, stochem as se
        >>> model = se.models.LinearGaussianSSM(state_dim=1, obs_dim=1)
        >>> y = np.cumsum(np.random.default_rng(0).normal(size=50)) + np.random.default_rng(1).normal(size=50)
        >>> result = se.fit(model, y, num_iters=20, init=model.default_params(), fixed=("initial_cov",))
        >>> bool(result.trace.loglik[-1] >= result.trace.loglik[0])
        True
    """

    state_dim: int
    obs_dim: int
    reg_covar: float = 1e-8

    params_type = LinearGaussianSSMParams
    linear_statistics = True

    def __post_init__(self):
        object.__setattr__(self, "state_dim", _validation.as_int("state_dim", self.state_dim, minimum=1))
        object.__setattr__(self, "obs_dim", _validation.as_int("obs_dim", self.obs_dim, minimum=1))
        object.__setattr__(self, "reg_covar", _gaussian.check_reg_covar(self.reg_covar))

    @property
    def constraints(self):
        """Field -> numpyro constraint, for the gradient M-step (numpyro is imported here, when first needed)."""
        from numpyro.distributions import constraints

        pd = constraints.positive_definite
        return {"initial_mean": constraints.real_vector, "initial_cov": pd, "transition": constraints.real,
                "transition_cov": pd, "emission": constraints.real, "emission_cov": pd}

    # ------------------------------------------------------------------- data and parameters
    def prepare_data(self, data):
        """``[T]``, ``[T, O]`` or ``[B, T, O]`` (NaN rows unseen) -> :class:`SSMData`; prepared data pass through."""
        if isinstance(data, SSMData):
            return data
        values = _validation.as_float_array("data", data, allow_nan=True)
        if values.ndim == 1 and self.obs_dim == 1:
            values = values[:, None]
        if values.ndim == 2:
            values = values[None]
        _validation.check_ndim("data", values, (3,), "sequences [B, T, O]")
        if values.shape[-1] != self.obs_dim:
            raise ValueError(f"data has {values.shape[-1]} features per step; the model has obs_dim={self.obs_dim}.")
        if values.shape[1] < 2:
            raise ValueError("data: each sequence needs at least 2 steps.")
        missing = np.isnan(values)
        partial = missing.any(axis=-1) & ~missing.all(axis=-1)
        if partial.any():
            raise ValueError("data: a step is either seen (no NaN) or unseen (all NaN); partly seen steps "
                             "are not supported.")
        observed = ~missing.all(axis=-1)
        return SSMData(jnp.asarray(np.where(missing, 0.0, values)), jnp.asarray(observed))

    def default_params(self) -> LinearGaussianSSMParams:
        """m_0 = 0, P_0 = I, A = 0.9 I, Q = I, H = the first D columns of I (padded), R = I."""
        d, o = self.state_dim, self.obs_dim
        return LinearGaussianSSMParams(jnp.zeros(d), jnp.eye(d), 0.9 * jnp.eye(d), jnp.eye(d), jnp.eye(o, d),
                                       jnp.eye(o))

    def init_params(self, key, data):
        """:meth:`default_params` with H drawn N(0, 1/D) from ``key`` and R the observations' variance."""
        values = jnp.where(data.observed[..., None], data.observations, 0.0)
        count = jnp.maximum(jnp.sum(data.observed), 1)
        mean = jnp.sum(values, axis=(0, 1)) / count
        variance = jnp.sum(jnp.where(data.observed[..., None], (values - mean) ** 2, 0.0), axis=(0, 1)) / count
        emission = jax.random.normal(key, (self.obs_dim, self.state_dim)) / math.sqrt(self.state_dim)
        return self.default_params()._replace(emission=emission, emission_cov=jnp.diag(variance + 1e-6))

    def check_params(self, arrays, data):
        d, o = self.state_dim, self.obs_dim
        for name, shape in (("initial_mean", (d,)), ("initial_cov", (d, d)), ("transition", (d, d)),
                            ("transition_cov", (d, d)), ("emission", (o, d)), ("emission_cov", (o, o))):
            _validation.check_shape(f"init.{name}", arrays[name], shape)
        for name in ("initial_cov", "transition_cov", "emission_cov"):
            _validation.check_positive_definite(f"init.{name}", arrays[name])

    # ------------------------------------------------------------------- statistics (written once)
    def suff_stats(self, data: SSMData, latent: SSMLatent) -> SSMStats:
        seen = data.observed.astype(latent.first.dtype)
        num_sequences, length = data.observed.shape
        return SSMStats(
            initial_first=jnp.sum(latent.first[:, 0], axis=0),
            initial_second=jnp.sum(latent.second[:, 0], axis=0),
            previous_second=jnp.sum(latent.second[:, :-1], axis=(0, 1)),
            next_second=jnp.sum(latent.second[:, 1:], axis=(0, 1)),
            cross=jnp.sum(latent.cross, axis=(0, 1)),
            seen_second=jnp.einsum("bt,btij->ij", seen, latent.second),
            output_cross=jnp.einsum("bt,bti,btj->ij", seen, data.observations, latent.first),
            output_second=jnp.einsum("bt,bti,btj->ij", seen, data.observations, data.observations),
            num_sequences=jnp.asarray(num_sequences, latent.first.dtype),
            num_transitions=jnp.asarray(num_sequences * (length - 1), latent.first.dtype),
            num_seen=jnp.sum(seen),
        )

    def m_step(self, stats: SSMStats) -> LinearGaussianSSMParams:
        """Closed form: regressions of x_{t+1} on x_t and of y_t on x_t, with their residual covariances."""
        reg = self.reg_covar * jnp.eye(self.state_dim)
        initial_mean = stats.initial_first / stats.num_sequences
        initial_cov = stats.initial_second / stats.num_sequences - _outer(initial_mean, initial_mean)
        transition = jnp.linalg.solve(stats.previous_second.T, stats.cross.T).T
        transition_cov = (stats.next_second - transition @ stats.cross.T) / stats.num_transitions
        emission = jnp.linalg.solve(stats.seen_second.T, stats.output_cross.T).T
        emission_cov = (stats.output_second - emission @ stats.output_cross.T) / stats.num_seen
        symmetric = inference._symmetric
        return LinearGaussianSSMParams(initial_mean, symmetric(initial_cov) + reg, transition,
                                       symmetric(transition_cov) + reg, emission,
                                       symmetric(emission_cov) + self.reg_covar * jnp.eye(self.obs_dim))

    def complete_loglik(self, params: LinearGaussianSSMParams, data, stats: SSMStats):
        """Q(θ) = E[log p(x, y; θ)] through the statistics."""
        initial_scatter = (stats.initial_second - _outer(params.initial_mean, stats.initial_first)
                           - _outer(stats.initial_first, params.initial_mean)
                           + stats.num_sequences * _outer(params.initial_mean, params.initial_mean))
        transition_scatter = _regression_scatter(stats.next_second, stats.cross, stats.previous_second,
                                                 params.transition)
        emission_scatter = _regression_scatter(stats.output_second, stats.output_cross, stats.seen_second,
                                               params.emission)
        return (_gaussian_loglik(stats.num_sequences, params.initial_cov, initial_scatter)
                + _gaussian_loglik(stats.num_transitions, params.transition_cov, transition_scatter)
                + _gaussian_loglik(stats.num_seen, params.emission_cov, emission_scatter))

    def log_joint(self, params, data, latent: SSMLatent):
        """log p(x, y; θ) of a state path given as its :class:`SSMLatent` features."""
        return self.complete_loglik(params, data, self.suff_stats(data, latent))

    # ------------------------------------------------------------------- exact completion
    def _smoothed(self, params, data):
        return jax.vmap(lambda y, seen: inference.rts_smoother(params, y, seen))(data.observations, data.observed)

    def expected_stats_and_loglik(self, params, data):
        """Smoothed moments -> statistics, and ℓ(θ) from the same filter pass."""
        smoothed = self._smoothed(params, data)
        latent = SSMLatent(smoothed.means, smoothed.covs + _outer(smoothed.means, smoothed.means),
                           smoothed.cross_covs + _outer(smoothed.means[:, 1:], smoothed.means[:, :-1]))
        return self.suff_stats(data, latent), jnp.sum(smoothed.loglik)

    def expected_stats(self, params, data):
        return self.expected_stats_and_loglik(params, data)[0]

    def log_marginal(self, params, data):
        """ℓ(θ) by the Kalman filter."""
        filtered = jax.vmap(lambda y, seen: inference.kalman_filter(params, y, seen))(data.observations,
                                                                                      data.observed)
        return jnp.sum(filtered.loglik)

    # ------------------------------------------------------------------- sampled completion
    def sample_latent(self, key, params, data) -> SSMLatent:
        """One path per sequence from p(x | y; θ) (FFBS), as its features."""
        keys = jax.random.split(key, data.observations.shape[0])
        paths, _ = jax.vmap(lambda k, y, seen: inference.sample_states(k, params, y, seen))(
            keys, data.observations, data.observed)
        return SSMLatent(paths, _outer(paths, paths), _outer(paths[:, 1:], paths[:, :-1]))

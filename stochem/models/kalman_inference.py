"""Exact inference in a linear-Gaussian state-space model: pure functions on one sequence.

The model (the continuous twin of the hidden Markov chain)::

    x_0 ~ N(m_0, P_0),   x_{t+1} = A x_t + w_t,  w_t ~ N(0, Q),   y_t = H x_t + v_t,  v_t ~ N(0, R).

``observed[t]`` says whether y_t was seen; an unseen step is predicted but not
updated. Batches of sequences are handled by ``jax.vmap`` over these functions.

* :func:`kalman_filter`: filtered moments ``m_{t|t}, P_{t|t}`` and
  ℓ = Σ_t log N(y_t; H m_{t|t−1}, H P_{t|t−1} Hᵀ + R) over the seen steps;
* :func:`rts_smoother` (Rauch, Tung & Striebel 1965): smoothed moments
  ``m_{t|T}, P_{t|T}`` and the lag-one covariances
  ``Cov(x_{t+1}, x_t | y) = P_{t+1|T} J_tᵀ`` with ``J_t = P_{t|t} Aᵀ P_{t+1|t}⁻¹``;
* :func:`sample_states` — forward filtering, backward sampling (Carter & Kohn
  1994; Frühwirth-Schnatter 1994): ``x_{T−1} ~ N(m_{T−1|T−1}, P_{T−1|T−1})``, then
  ``x_t | x_{t+1} ~ N(m_{t|t} + J_t (x_{t+1} − A m_{t|t}), P_{t|t} − J_t P_{t+1|t} J_tᵀ)``,
  a draw of the whole path from p(x | y).

Updates use the Joseph form and symmetrise every covariance, so they stay
positive definite in float32 too.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp


class SSMParams(NamedTuple):
    """``initial_mean`` m_0 [D], ``initial_cov`` P_0 [D, D], ``transition`` A [D, D],
    ``transition_cov`` Q [D, D], ``emission`` H [O, D], ``emission_cov`` R [O, O]."""

    initial_mean: jax.Array
    initial_cov: jax.Array
    transition: jax.Array
    transition_cov: jax.Array
    emission: jax.Array
    emission_cov: jax.Array


class Filtered(NamedTuple):
    means: jax.Array  # [T, D]  m_{t|t}
    covs: jax.Array  # [T, D, D]
    predicted_means: jax.Array  # [T, D]  m_{t|t−1} (m_0 at t = 0)
    predicted_covs: jax.Array  # [T, D, D]
    loglik: jax.Array  # ℓ of the seen steps


class Smoothed(NamedTuple):
    means: jax.Array  # [T, D]  m_{t|T}
    covs: jax.Array  # [T, D, D]
    cross_covs: jax.Array  # [T − 1, D, D]  Cov(x_{t+1}, x_t | y)
    loglik: jax.Array


def _symmetric(matrix):
    return 0.5 * (matrix + jnp.swapaxes(matrix, -1, -2))


def _update(params, mean, cov, y, seen):
    """Condition N(mean, cov) on y = H x + v (Joseph form); returns the moments and log N(y; H mean, S)."""
    emission, noise = params.emission, params.emission_cov
    innovation = y - emission @ mean
    innovation_cov = _symmetric(emission @ cov @ emission.T + noise)
    cholesky = jnp.linalg.cholesky(innovation_cov)
    gain = jax.scipy.linalg.cho_solve((cholesky, True), emission @ cov).T
    keep = jnp.eye(mean.shape[0]) - gain @ emission
    updated_cov = _symmetric(keep @ cov @ keep.T + gain @ noise @ gain.T)
    whitened = jax.scipy.linalg.solve_triangular(cholesky, innovation, lower=True)
    log_density = (-0.5 * whitened @ whitened - jnp.sum(jnp.log(jnp.diag(cholesky)))
                   - 0.5 * y.shape[0] * jnp.log(2 * jnp.pi))
    return (jnp.where(seen, mean + gain @ innovation, mean), jnp.where(seen, updated_cov, cov),
            jnp.where(seen, log_density, 0.0))


def kalman_filter(params: SSMParams, observations, observed) -> Filtered:
    """Filter one sequence: ``observations`` [T, O] (any value where unseen), ``observed`` [T] bool."""
    observations = jnp.where(observed[:, None], observations, 0.0)

    def step(carry, inputs):
        mean, cov, loglik = carry
        y, seen = inputs
        filtered_mean, filtered_cov, log_density = _update(params, mean, cov, y, seen)
        next_mean = params.transition @ filtered_mean
        next_cov = _symmetric(params.transition @ filtered_cov @ params.transition.T + params.transition_cov)
        return (next_mean, next_cov, loglik + log_density), (filtered_mean, filtered_cov, mean, cov)

    start = (params.initial_mean, params.initial_cov, jnp.zeros((), params.initial_mean.dtype))
    (_, _, loglik), (means, covs, predicted_means, predicted_covs) = jax.lax.scan(
        step, start, (observations, observed))
    return Filtered(means, covs, predicted_means, predicted_covs, loglik)


def _smoother_gains(params, filtered: Filtered):
    """``J_t = P_{t|t} Aᵀ P_{t+1|t}⁻¹`` for t = 0..T−2, ``[T − 1, D, D]``."""
    def gain(cov, next_predicted_cov):
        return jnp.linalg.solve(next_predicted_cov, params.transition @ cov).T

    return jax.vmap(gain)(filtered.covs[:-1], filtered.predicted_covs[1:])


def rts_smoother(params: SSMParams, observations, observed) -> Smoothed:
    """Smoothed moments of one sequence (Rauch–Tung–Striebel), with the lag-one covariances."""
    filtered = kalman_filter(params, observations, observed)
    gains = _smoother_gains(params, filtered)

    def step(carry, inputs):
        next_mean, next_cov = carry
        mean, cov, next_predicted_mean, next_predicted_cov, gain = inputs
        smoothed_mean = mean + gain @ (next_mean - next_predicted_mean)
        smoothed_cov = _symmetric(cov + gain @ (next_cov - next_predicted_cov) @ gain.T)
        return (smoothed_mean, smoothed_cov), (smoothed_mean, smoothed_cov, next_cov @ gain.T)

    last = (filtered.means[-1], filtered.covs[-1])
    _, (means, covs, cross) = jax.lax.scan(
        step, last, (filtered.means[:-1], filtered.covs[:-1], filtered.predicted_means[1:],
                     filtered.predicted_covs[1:], gains), reverse=True)
    return Smoothed(jnp.concatenate([means, last[0][None]]), jnp.concatenate([covs, last[1][None]]), cross,
                    filtered.loglik)


def sample_states(key, params: SSMParams, observations, observed):
    """One path ``x_{0:T−1}`` [T, D] from p(x | y) by forward filtering, backward sampling; and ℓ."""
    filtered = kalman_filter(params, observations, observed)
    gains = _smoother_gains(params, filtered)
    last_key, path_key = jax.random.split(key)
    last = jax.random.multivariate_normal(last_key, filtered.means[-1], filtered.covs[-1], method="cholesky")

    def step(next_state, inputs):
        step_key, mean, cov, next_predicted_cov, gain = inputs
        conditional_mean = mean + gain @ (next_state - params.transition @ mean)
        conditional_cov = _symmetric(cov - gain @ next_predicted_cov @ gain.T)
        jitter = 1e-12 * jnp.trace(cov) * jnp.eye(mean.shape[0])  # a noiseless direction has cov exactly 0
        state = jax.random.multivariate_normal(step_key, conditional_mean, conditional_cov + jitter,
                                               method="cholesky")
        return state, state

    keys = jax.random.split(path_key, filtered.means.shape[0] - 1)
    _, states = jax.lax.scan(step, last, (keys, filtered.means[:-1], filtered.covs[:-1],
                                          filtered.predicted_covs[1:], gains), reverse=True)
    return jnp.concatenate([states, last[None]]), filtered.loglik

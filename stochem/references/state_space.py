"""Reference for the linear-Gaussian state-space model: ℓ by a numpy Kalman filter, its MLE by scipy.

Independent of :mod:`stochem.models.kalman_inference` (plain numpy, the
covariance form of the filter), so that EM's fixed points can be checked
against a direct maximisation of the observed-data log-likelihood.

The data builder :func:`simulate` draws a sequence from given parameters with
a recorded seed; :func:`local_level_ar` is the experiment's model (a damped
random walk seen with noise): D = O = 1, H = 1.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy import optimize


class NumpySSM(NamedTuple):
    """``m0`` [D], ``P0`` [D, D], ``A`` [D, D], ``Q`` [D, D], ``H`` [O, D], ``R`` [O, O] as numpy arrays."""

    m0: np.ndarray
    P0: np.ndarray
    A: np.ndarray
    Q: np.ndarray
    H: np.ndarray
    R: np.ndarray


def simulate(params: NumpySSM, length: int, seed: int) -> np.ndarray:
    """``y`` [T, O] drawn from the model with ``numpy.random.default_rng(seed)``."""
    rng = np.random.default_rng(seed)
    state = rng.multivariate_normal(params.m0, params.P0)
    observations = []
    for _ in range(length):
        observations.append(rng.multivariate_normal(params.H @ state, params.R))
        state = rng.multivariate_normal(params.A @ state, params.Q)
    return np.array(observations)


def log_likelihood(params: NumpySSM, y: np.ndarray) -> float:
    """ℓ = Σ_t log N(y_t; H m_{t|t−1}, H P_{t|t−1} Hᵀ + R); rows of NaN are unseen steps."""
    mean, cov = np.array(params.m0, float), np.array(params.P0, float)
    total = 0.0
    for row in np.atleast_2d(y):
        if not np.all(np.isnan(row)):
            innovation_cov = params.H @ cov @ params.H.T + params.R
            innovation = row - params.H @ mean
            sign, log_det = np.linalg.slogdet(2 * np.pi * innovation_cov)
            total += -0.5 * (log_det + innovation @ np.linalg.solve(innovation_cov, innovation))
            gain = cov @ params.H.T @ np.linalg.inv(innovation_cov)
            mean = mean + gain @ innovation
            cov = cov - gain @ params.H @ cov
        mean, cov = params.A @ mean, params.A @ cov @ params.A.T + params.Q
    return float(total)


def local_level_ar(transition: float, state_var: float, noise_var: float, m0: float = 0.0,
                   p0: float = 1.0) -> NumpySSM:
    """x_{t+1} = a x_t + N(0, q), y_t = x_t + N(0, r): the experiment's one-dimensional model."""
    return NumpySSM(np.array([m0]), np.array([[p0]]), np.array([[transition]]), np.array([[state_var]]),
                    np.eye(1), np.array([[noise_var]]))


class ScalarMLE(NamedTuple):
    """The MLE of (m0, a, q, r) with P0 and H = 1 known, its ℓ, the optimizer's last gradient, and the
    standard errors of (m0, a, q, r) (inverse observed information by finite differences)."""

    m0: float
    transition: float
    state_var: float
    noise_var: float
    loglik: float
    gradient_norm: float
    stderr: np.ndarray


def scalar_mle(y: np.ndarray, p0: float = 1.0, start=(0.0, 0.5, 1.0, 1.0)) -> ScalarMLE:
    """argmax ℓ(m0, a, q, r) by BFGS on (m0, a, log q, log r), ℓ from :func:`log_likelihood`."""

    def unpack(vector):
        return local_level_ar(vector[1], np.exp(vector[2]), np.exp(vector[3]), vector[0], p0)

    def negative(vector):
        return -log_likelihood(unpack(vector), y)

    start = np.array([start[0], start[1], np.log(start[2]), np.log(start[3])])
    result = optimize.minimize(negative, start, method="BFGS", options={"gtol": 1e-8})
    gradient = optimize.approx_fprime(result.x, negative, 1e-7)
    step, offsets = 1e-4, np.eye(4) * 1e-4
    information = np.array([[(negative(result.x + a + b) - negative(result.x + a - b) - negative(result.x - a + b)
                              + negative(result.x - a - b)) / (4 * step * step) for b in offsets] for a in offsets])
    jacobian = np.diag([1.0, 1.0, np.exp(result.x[2]), np.exp(result.x[3])])
    stderr = np.sqrt(np.diag(jacobian @ np.linalg.inv(information) @ jacobian.T))
    return ScalarMLE(float(result.x[0]), float(result.x[1]), float(np.exp(result.x[2])),
                     float(np.exp(result.x[3])), -float(result.fun), float(np.max(np.abs(gradient))), stderr)

"""Maximum likelihood for random-intercept GLMMs by adaptive Gauss–Hermite quadrature.

The reference θ* of the random-effects scenarios (:mod:`stochem.app.random_effects`),
computed with numpy and scipy only, independently of the EM code it checks.
The observed-data log-likelihood is a sum of one-dimensional integrals, one
per group ``g``::

    ℓ(β, σ) = Σ_g log ∫ exp(h_g(u)) du,
    h_g(u)  = Σ_{i in g} log p(y_i | η_i = x_iᵀ β + u) + log N(u; 0, σ²).

Each integrand is concave in ``u`` (binomial-logit and Poisson-log are
log-concave), so it is centred first (adaptive quadrature, Liu & Pierce 1994):
Newton's method finds the mode ``û_g``, the curvature gives the scale
``s_g = (−h_g''(û_g))^(−1/2)``, and with the Gauss–Hermite nodes ``x_q`` and
weights ``w_q``::

    ∫ exp(h_g(u)) du ≈ √2 s_g Σ_q w_q exp(x_q² + h_g(û_g + √2 s_g x_q)).

The maximum over ``(β, log σ)`` is found with scipy's BFGS.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy import optimize, special

FAMILIES = ("binomial", "poisson")
NEWTON_STEPS = 60
MAX_NEWTON_STEP = 1.0  # bounds a step on the intercept's scale (the Poisson mean is exp(u))


class GroupedCounts(NamedTuple):
    """The data of a random-intercept GLMM.

    Attributes:
        design: ``[N, P]`` fixed-effect covariates.
        group: ``[N]`` group index ``0..num_groups−1`` of each count.
        counts: ``[N]`` observed counts.
        num_groups: ``G``.
        trials: ``[N]`` binomial totals (``None`` for Poisson counts).
    """

    design: np.ndarray
    group: np.ndarray
    counts: np.ndarray
    num_groups: int
    trials: np.ndarray | None = None

    @property
    def family(self) -> str:
        return "poisson" if self.trials is None else "binomial"


class QuadratureMLE(NamedTuple):
    """The maximum likelihood estimate and how the optimizer ended.

    Attributes:
        beta: ``[P]``; group_sd: σ; loglik: ℓ at the maximum.
        gradient_norm: largest |∂ℓ/∂(β, log σ)| there (finite differences).
        num_iters: BFGS iterations; last_step: ‖Δ(β, σ)‖ of the last one.
    """

    beta: np.ndarray
    group_sd: float
    loglik: float
    gradient_norm: float
    num_iters: int
    last_step: float


def _log_lik_and_derivatives(data: GroupedCounts, linear: np.ndarray):
    """``log p(y_i | η_i)`` and its first two derivatives in ``η``, elementwise (``linear``: ``η``)."""
    counts = data.counts.reshape(data.counts.shape + (1,) * (linear.ndim - 1))
    if data.family == "poisson":
        rate = np.exp(linear)
        log_lik = counts * linear - rate - special.gammaln(counts + 1)
        return log_lik, counts - rate, -rate
    trials = data.trials.reshape(counts.shape)
    probability = special.expit(linear)
    log_lik = (special.gammaln(trials + 1) - special.gammaln(counts + 1) - special.gammaln(trials - counts + 1)
               - counts * np.logaddexp(0.0, -linear) - (trials - counts) * np.logaddexp(0.0, linear))
    return log_lik, counts - trials * probability, -trials * probability * (1.0 - probability)


def _per_group(data: GroupedCounts, values: np.ndarray) -> np.ndarray:
    """Sum rows of ``values`` ``[N, ...]`` within groups: ``[G, ...]``."""
    totals = np.zeros((data.num_groups,) + values.shape[1:])
    np.add.at(totals, data.group, values)
    return totals


def group_modes(data: GroupedCounts, beta, group_sd) -> tuple[np.ndarray, np.ndarray]:
    """Mode ``û_g`` and curvature ``−h_g''(û_g)`` of every group's integrand (Newton's method)."""
    fixed = data.design @ np.asarray(beta, float)
    modes = np.zeros(data.num_groups)
    for _ in range(NEWTON_STEPS):
        _, first, second = _log_lik_and_derivatives(data, fixed + modes[data.group])
        slope = _per_group(data, first) - modes / group_sd**2
        curvature = -_per_group(data, second) + 1.0 / group_sd**2
        modes = modes + np.clip(slope / curvature, -MAX_NEWTON_STEP, MAX_NEWTON_STEP)
    _, _, second = _log_lik_and_derivatives(data, fixed + modes[data.group])
    return modes, -_per_group(data, second) + 1.0 / group_sd**2


def group_log_likelihoods(data: GroupedCounts, beta, group_sd, num_nodes: int = 30) -> np.ndarray:
    """``log ∫ exp(h_g(u)) du`` for every group, ``[G]`` (adaptive Gauss–Hermite, ``num_nodes`` nodes)."""
    if not group_sd > 0:
        raise ValueError(f"group_sd must be > 0, got {group_sd}.")
    modes, curvatures = group_modes(data, beta, group_sd)
    scales = np.sqrt(2.0 / curvatures)  # √2 s_g
    nodes, weights = np.polynomial.hermite.hermgauss(num_nodes)
    intercepts = modes[:, None] + scales[:, None] * nodes[None, :]  # [G, Q]
    fixed = data.design @ np.asarray(beta, float)
    log_lik, _, _ = _log_lik_and_derivatives(data, fixed[:, None] + intercepts[data.group])
    log_prior = -0.5 * (intercepts / group_sd) ** 2 - np.log(group_sd) - 0.5 * np.log(2 * np.pi)
    integrand = _per_group(data, log_lik) + log_prior + nodes[None, :] ** 2 + np.log(weights)[None, :]
    return np.log(scales) + special.logsumexp(integrand, axis=1)


def log_likelihood(data: GroupedCounts, beta, group_sd, num_nodes: int = 30) -> float:
    """ℓ(β, σ) = Σ_g log ∫ exp(h_g(u)) du."""
    return float(np.sum(group_log_likelihoods(data, beta, group_sd, num_nodes)))


def maximum_likelihood(data: GroupedCounts, num_nodes: int = 30, start=None) -> QuadratureMLE:
    """argmax ℓ(β, σ) by BFGS over ``(β, log σ)`` from ``start`` (default β = 0, σ = 1).

    Raises:
        RuntimeError: BFGS did not reach a point where the gradient vanishes.
    """
    num_fixed = data.design.shape[1]
    start = np.zeros(num_fixed + 1) if start is None else np.asarray(start, float)
    iterates = [start]

    def negative(theta):
        return -log_likelihood(data, theta[:-1], float(np.exp(theta[-1])), num_nodes)

    result = optimize.minimize(negative, start, method="BFGS", callback=lambda theta: iterates.append(theta),
                               options={"gtol": 1e-6})
    gradient_norm = float(np.max(np.abs(result.jac)))
    if gradient_norm > 1e-4:
        raise RuntimeError(f"quadrature MLE: BFGS stopped with gradient {gradient_norm:.2g} ({result.message}).")
    natural = [np.append(theta[:-1], np.exp(theta[-1])) for theta in iterates[-2:]]
    return QuadratureMLE(beta=result.x[:-1], group_sd=float(np.exp(result.x[-1])), loglik=-float(result.fun),
                         gradient_norm=gradient_norm, num_iters=int(result.nit),
                         last_step=float(np.linalg.norm(natural[-1] - natural[0])))

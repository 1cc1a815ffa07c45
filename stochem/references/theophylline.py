"""Theophylline pharmacokinetics: the nonlinear mixed-effects model of saemix's and nlmixr2's examples.

Data: R's ``datasets::Theoph`` (Boeckmann, Sheiner & Beal 1994; Upton's
study), 12 subjects given one oral dose, 132 serum concentrations over 25 h
(11 per subject, the one at time 0 included), shipped as
``stochem/data/theophylline.csv`` (``write.csv(Theoph)``, R 4.2.2). ``Dose`` is
in mg/kg; the dose given is ``Dose × Wt`` mg (320 mg for subject 1), as in
nlmixr2's ``theo_sd`` (``AMT = 319.992``), so V is in L and CL in L/h.

Model (one compartment, first-order absorption, saemix's ``model1cpt``; ka,
V, CL log-normal with a diagonal Ω, constant residual error)::

    φ_i = (log ka_i, log V_i, log CL_i) ~ N(μ, diag(ω²))           i = 1..12
    C_ij = Dose_i ka_i / (V_i (ka_i − k_i)) · (e^{−k_i t_ij} − e^{−ka_i t_ij}),   k_i = CL_i / V_i
    y_ij ~ N(C_ij, σ²)

θ = (``log_mean`` μ [3], ``omega`` ω [3], ``sigma`` σ); the typical values
are ``exp(μ)``. Written as :func:`one_compartment`, a plain numpyro model:
φ_i is a ``Normal(μ, ω)`` site and the concentrations a ``Normal(·, σ)`` site
whose loc depends only on φ and the data, so SAEM updates every parameter in
closed form (Kuhn & Lavielle 2005).

Reference: the exact maximum likelihood estimate by adaptive Gauss–Hermite
quadrature over each subject's 3-D φ_i (:func:`maximum_likelihood`, numpy and
scipy only), and the estimates nlmixr2 publishes for this model
(:data:`NLMIXR2_SAEM`).
"""

from __future__ import annotations

import itertools
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pandas as pd
from numpyro.distributions import constraints
from scipy import optimize, special

from stochem.references._files import data_path

PARAMETERS = ("ka", "V", "CL")

# saemix's starting values in its theophylline example: psi0 = (ka 1, V 20, CL 0.5),
# omega.init = identity (ω² = 1), residual error a = 1.
SAEMIX_START = {"log_mean": np.log([1.0, 20.0, 0.5]), "omega": np.ones(3), "sigma": 1.0}

# nlmixr2est's README (nlmixr2/nlmixr2est, README.md, commit 042db2c): est="saem" on theo_sd
# (the same 132 observations, dose in mg), model ka = exp(tka + eta.ka), cl = ..., v = ...,
# additive error. Typical values (back-transformed), BSV as CV% (sqrt(exp(ω²) − 1)) and add.sd.
NLMIXR2_SAEM = {"ka": 1.59, "CL": 2.74, "V": 31.7, "cv_percent": {"ka": 71.1, "CL": 27.4, "V": 13.1},
                "sigma": 0.696}


# The quadrature MLE of this module (maximum_likelihood(), 9 nodes per dimension; recomputed by
# tests/references/test_theophylline.py's slow test): (ka, V, CL, ω²_ka, ω²_V, ω²_CL, σ), its standard
# errors, and ℓ there. 7 and 11 nodes move ℓ by 1e-3 and 3e-4 and the estimates in the 4th digit.
QUADRATURE_MLE = np.array([1.58292703, 31.6219136, 2.75018213, 0.404960905, 0.0184851100, 0.0703154587,
                           0.695916445])
QUADRATURE_STDERR = np.array([0.30533365, 1.46233156, 0.23173596, 0.19194243, 0.0108672, 0.03519477,
                              0.04973642])
QUADRATURE_LOGLIK = -180.3507244


def nlmixr2_natural() -> np.ndarray:
    """:data:`NLMIXR2_SAEM` as ``(ka, V, CL, ω²_ka, ω²_V, ω²_CL, σ)``: ω² = log(1 + CV²) for log-normal parameters."""
    cv = NLMIXR2_SAEM["cv_percent"]
    variances = [np.log1p((cv[name] / 100) ** 2) for name in PARAMETERS]
    return np.array([NLMIXR2_SAEM[name] for name in PARAMETERS] + variances + [NLMIXR2_SAEM["sigma"]])


class TheophyllineData(NamedTuple):
    """Observations, one row each, and the doses, one per subject.

    Attributes:
        subject: ``[N]`` subject index ``0..G−1``.
        time: ``[N]`` hours after the dose.
        conc: ``[N]`` concentration, mg/L.
        dose: ``[G]`` dose, mg (``Dose × Wt``).
    """

    subject: np.ndarray
    time: np.ndarray
    conc: np.ndarray
    dose: np.ndarray

    @property
    def num_subjects(self) -> int:
        return int(self.dose.shape[0])


def load() -> TheophyllineData:
    """The shipped ``Theoph`` table as :class:`TheophyllineData` (subjects in R's order 1..12)."""
    table = pd.read_csv(data_path("theophylline.csv"))
    codes = table["Subject"].astype(int).to_numpy()
    order = np.unique(codes)
    subject = np.searchsorted(order, codes)
    dose = np.array([float((table["Dose"] * table["Wt"])[codes == code].iloc[0]) for code in order])
    return TheophyllineData(subject, table["Time"].to_numpy(float), table["conc"].to_numpy(float), dose)


def _relative_expm1(x, xp):
    """``(1 − e^{−x}) / x``, 1 at x = 0, without cancellation (``xp``: numpy or jax.numpy)."""
    small = xp.abs(x) < 1e-6
    safe = xp.where(small, 1.0, x)
    return xp.where(small, 1.0 - x / 2, -xp.expm1(-safe) / safe)


def concentration(log_params, dose, time, xp=jnp):
    """One-compartment, first-order absorption concentration; ``log_params[..., :] = (log ka, log V, log CL)``.

    ``(e^{−k t} − e^{−ka t}) / (ka − k) = t e^{−k t} (1 − e^{−(ka−k) t}) / ((ka − k) t)``,
    so ka = k needs no special case.
    """
    ka, volume, clearance = xp.exp(log_params[..., 0]), xp.exp(log_params[..., 1]), xp.exp(log_params[..., 2])
    elimination = clearance / volume
    return dose * ka / volume * time * xp.exp(-elimination * time) * _relative_expm1((ka - elimination) * time, xp)


def one_compartment(subject, time, dose, conc, num_subjects):
    """The theophylline NLME model as a plain numpyro model (see the module docstring).

    Build it with ``stochem.models.from_numpyro(one_compartment, *model_arguments())``.
    """
    log_mean = numpyro.param("log_mean", jnp.asarray(SAEMIX_START["log_mean"]))
    omega = numpyro.param("omega", jnp.asarray(SAEMIX_START["omega"]), constraint=constraints.positive)
    sigma = numpyro.param("sigma", SAEMIX_START["sigma"], constraint=constraints.positive)
    with numpyro.plate("subjects", num_subjects):
        log_params = numpyro.sample("log_params", dist.Normal(log_mean, omega).to_event(1))
    predicted = concentration(log_params[subject], dose[subject], time)
    with numpyro.plate("observations", time.shape[0]):
        numpyro.sample("conc", dist.Normal(predicted, sigma), obs=conc)


def model_arguments(data: TheophyllineData | None = None) -> tuple:
    """``(subject, time, dose, conc, num_subjects)`` for :func:`one_compartment`."""
    data = load() if data is None else data
    return data.subject, data.time, data.dose, data.conc, data.num_subjects


# ------------------------------------------------------------------------------------------------
# The exact likelihood by adaptive Gauss–Hermite quadrature (numpy / scipy only)
# ------------------------------------------------------------------------------------------------


class Theta(NamedTuple):
    """Natural parameters: ``log_mean`` μ [3], ``omega`` ω [3], ``sigma`` σ."""

    log_mean: np.ndarray
    omega: np.ndarray
    sigma: float

    def vector(self) -> np.ndarray:
        """``(μ, log ω, log σ)``: the coordinates the optimizer uses."""
        return np.concatenate([self.log_mean, np.log(self.omega), [np.log(self.sigma)]])

    @classmethod
    def from_vector(cls, vector) -> "Theta":
        vector = np.asarray(vector, float)
        return cls(vector[:3], np.exp(vector[3:6]), float(np.exp(vector[6])))


class _Padded(NamedTuple):
    """The observations as ``[G, T]`` arrays (``mask`` False past a subject's last one)."""

    time: np.ndarray
    conc: np.ndarray
    mask: np.ndarray
    dose: np.ndarray

    @classmethod
    def of(cls, data: TheophyllineData) -> "_Padded":
        counts = np.bincount(data.subject, minlength=data.num_subjects)
        time, conc = np.zeros((data.num_subjects, counts.max())), np.zeros((data.num_subjects, counts.max()))
        mask = np.arange(counts.max())[None, :] < counts[:, None]
        for index in range(data.num_subjects):
            rows = data.subject == index
            time[index, :counts[index]], conc[index, :counts[index]] = data.time[rows], data.conc[rows]
        return cls(time, conc, mask, data.dose)


def _log_joints(padded: _Padded, theta: Theta, log_params: np.ndarray) -> np.ndarray:
    """``h_i(φ) = log p(y_i | φ) + log N(φ; μ, diag ω²)`` for ``log_params`` ``[G, K, 3]`` -> ``[G, K]``."""
    predicted = concentration(log_params[:, :, None, :], padded.dose[:, None, None], padded.time[:, None, :], xp=np)
    residual = np.where(padded.mask[:, None, :], padded.conc[:, None, :] - predicted, 0.0)
    counts = padded.mask.sum(axis=1)[:, None]
    log_lik = -0.5 * np.sum(residual**2, axis=-1) / theta.sigma**2 - counts * (np.log(theta.sigma)
                                                                              + 0.5 * np.log(2 * np.pi))
    standardized = (log_params - theta.log_mean) / theta.omega
    log_prior = -0.5 * np.sum(standardized**2, axis=-1) - np.sum(np.log(theta.omega)) - 1.5 * np.log(2 * np.pi)
    return np.where(np.isfinite(log_lik), log_lik, -np.inf) + log_prior


_STEP = 1e-4
_UNIT = np.eye(3)
# Central-difference stencil for the gradient and Hessian of a function of 3 variables: the point,
# ±e_i, and ±e_i ± e_j (i < j).
_PAIRS = [(i, j) for i in range(3) for j in range(i + 1, 3)]
_STENCIL = np.concatenate([np.zeros((1, 3)), _UNIT, -_UNIT]
                          + [np.array([_UNIT[i] + _UNIT[j], _UNIT[i] - _UNIT[j], -_UNIT[i] + _UNIT[j],
                                       -_UNIT[i] - _UNIT[j]]) for i, j in _PAIRS]) * _STEP


def _derivatives(padded, theta, modes):
    """``(h, ∇h, ∇²h)`` at ``modes`` ``[G, 3]`` by central differences, all subjects at once."""
    values = _log_joints(padded, theta, modes[:, None, :] + _STENCIL[None])
    centre, plus, minus = values[:, 0], values[:, 1:4], values[:, 4:7]
    gradient = (plus - minus) / (2 * _STEP)
    hessian = np.zeros((modes.shape[0], 3, 3))
    for axis in range(3):
        hessian[:, axis, axis] = (plus[:, axis] - 2 * centre + minus[:, axis]) / _STEP**2
    for pair, (i, j) in enumerate(_PAIRS):
        corner = values[:, 7 + 4 * pair: 11 + 4 * pair]
        hessian[:, i, j] = hessian[:, j, i] = (corner[:, 0] - corner[:, 1] - corner[:, 2] + corner[:, 3]) / (
            4 * _STEP**2)
    return centre, gradient, hessian


def subject_modes(padded, theta, num_steps: int = 60):
    """The mode φ̂_i of every h_i and ``−∇²h_i(φ̂_i)`` (damped Newton, all subjects at once, from μ)."""
    modes = np.broadcast_to(theta.log_mean, (padded.dose.shape[0], 3)).copy()
    halvings = 0.5 ** np.arange(30)
    for _ in range(num_steps):
        value, gradient, hessian = _derivatives(padded, theta, modes)
        curvature = -hessian
        shift = np.maximum(0.0, 1.0 - np.linalg.eigvalsh(curvature)[:, 0])  # an ascent step of bounded size
        step = np.linalg.solve(curvature + shift[:, None, None] * np.eye(3), gradient[..., None])[..., 0]
        trials = modes[:, None, :] + halvings[None, :, None] * step[:, None, :]
        better = _log_joints(padded, theta, trials) > value[:, None]
        first = np.argmax(better, axis=1)
        moved = better[np.arange(len(first)), first]
        modes = np.where(moved[:, None], trials[np.arange(len(first)), first], modes)
        if np.max(np.abs(gradient)) < 1e-7:
            break
    return modes, -_derivatives(padded, theta, modes)[2]


def subject_log_likelihoods(data: TheophyllineData, theta: Theta, num_nodes: int = 9):
    """``[log ∫ exp(h_i(φ)) dφ for each subject]`` by adaptive Gauss–Hermite quadrature.

    Centred at the mode φ̂_i of h_i and scaled by ``L_i`` with ``L_i L_iᵀ =
    (−∇²h_i(φ̂_i))⁻¹`` (Liu & Pierce 1994; the product rule over 3 dimensions)::

        ∫ exp(h(φ)) dφ ≈ 2^{3/2} |L| Σ_q w_q exp(‖x_q‖² + h(φ̂ + √2 L x_q)).
    """
    padded = _Padded.of(data)
    nodes_1d, weights_1d = np.polynomial.hermite.hermgauss(num_nodes)
    nodes = np.array(list(itertools.product(nodes_1d, repeat=3)))  # [Q, 3]
    log_weights = np.sum(np.log(np.array(list(itertools.product(weights_1d, repeat=3)))), axis=1)
    modes, information = subject_modes(padded, theta)
    cholesky = np.linalg.cholesky(np.linalg.inv(information))  # [G, 3, 3]
    points = modes[:, None, :] + np.sqrt(2.0) * np.einsum("gij,qj->gqi", cholesky, nodes)
    integrand = _log_joints(padded, theta, points) + np.sum(nodes**2, axis=1) + log_weights
    log_det = np.sum(np.log(np.diagonal(cholesky, axis1=1, axis2=2)), axis=1)
    return 1.5 * np.log(2.0) + log_det + special.logsumexp(integrand, axis=1)


def log_likelihood(data: TheophyllineData, theta: Theta, num_nodes: int = 9) -> float:
    """ℓ(θ) = Σ_i log ∫ p(y_i | φ) N(φ; μ, diag ω²) dφ (adaptive Gauss–Hermite)."""
    with np.errstate(over="ignore", invalid="ignore"):
        return float(np.sum(subject_log_likelihoods(data, theta, num_nodes)))


class QuadratureMLE(NamedTuple):
    """The maximum likelihood estimate by quadrature, with its standard errors.

    Attributes:
        theta: the MLE (:class:`Theta`).
        loglik: ℓ at the MLE.
        stderr: standard errors of ``(ka, V, CL, ω²_ka, ω²_V, ω²_CL, σ)`` from
            the inverse of the observed information (finite differences of ℓ
            in the coordinates ``(μ, log ω, log σ)``, then the delta method).
        gradient_norm: the largest |∂ℓ/∂coordinate| at the end.
    """

    theta: Theta
    loglik: float
    stderr: np.ndarray
    gradient_norm: float

    def natural(self) -> np.ndarray:
        """``(ka, V, CL, ω²_ka, ω²_V, ω²_CL, σ)`` at the MLE."""
        return natural_parameters(self.theta)


def natural_parameters(theta: Theta) -> np.ndarray:
    """``(ka, V, CL, ω²_ka, ω²_V, ω²_CL, σ)``: typical values, variances of φ, residual standard deviation."""
    return np.concatenate([np.exp(theta.log_mean), np.asarray(theta.omega) ** 2, [theta.sigma]])


def _hessian(function, point, step=1e-4) -> np.ndarray:
    """Central finite-difference Hessian of a scalar function of a vector."""
    offsets = np.eye(point.size) * step
    hessian = np.empty((point.size, point.size))
    for i, j in itertools.combinations_with_replacement(range(point.size), 2):
        value = (function(point + offsets[i] + offsets[j]) - function(point + offsets[i] - offsets[j])
                 - function(point - offsets[i] + offsets[j]) + function(point - offsets[i] - offsets[j]))
        hessian[i, j] = hessian[j, i] = value / (4 * step * step)
    return hessian


def maximum_likelihood(data: TheophyllineData | None = None, num_nodes: int = 9, start: Theta | None = None):
    """argmax ℓ(θ) by BFGS on ``(μ, log ω, log σ)``, ℓ by adaptive Gauss–Hermite quadrature.

    Raises:
        RuntimeError: BFGS stopped with a gradient above 1e-3.
    """
    data = load() if data is None else data
    start = Theta(np.log([1.5, 32.0, 2.8]), np.array([0.6, 0.15, 0.25]), 0.7) if start is None else start

    def negative(vector):
        # A trial point of the line search far from the data can leave a subject's integrand without a
        # proper mode; −ℓ = +inf there sends the line search back.
        try:
            with np.errstate(all="ignore"):
                value = -float(np.sum(subject_log_likelihoods(data, Theta.from_vector(vector), num_nodes)))
        except np.linalg.LinAlgError:
            return np.inf
        return value if np.isfinite(value) else np.inf

    def gradient_of(vector, step=1e-5):  # central differences: ℓ carries ~1e-10 of inner-optimizer noise
        offsets = np.eye(vector.size) * step
        return np.array([(negative(vector + e) - negative(vector - e)) / (2 * step) for e in offsets])

    result = optimize.minimize(negative, start.vector(), jac=gradient_of, method="BFGS", options={"gtol": 1e-6})
    gradient = gradient_of(result.x)
    gradient_norm = float(np.max(np.abs(gradient)))
    if gradient_norm > 1e-3:
        raise RuntimeError(f"theophylline quadrature MLE: BFGS stopped with gradient {gradient_norm:.2g} "
                           f"({result.message}).")
    information = _hessian(negative, result.x)
    covariance = np.linalg.inv(information)
    jacobian = np.diag(np.concatenate([np.exp(result.x[:3]), 2 * np.exp(2 * result.x[3:6]), [np.exp(result.x[6])]]))
    stderr = np.sqrt(np.diag(jacobian @ covariance @ jacobian.T))
    return QuadratureMLE(Theta.from_vector(result.x), -float(result.fun), stderr, gradient_norm)


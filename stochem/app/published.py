"""Scenarios built on the published problems of :mod:`stochem.references`, and their references θ*.

* ``theophylline`` — saemix's and nlmixr2's one-compartment NLME example
  (R's ``Theoph``); θ* is the exact MLE by adaptive Gauss–Hermite quadrature
  (:data:`stochem.references.theophylline.QUADRATURE_MLE`, recomputed by a slow
  test), and ℓ(θ_t) is filled in by the same quadrature.
* ``salamander`` — McCullagh & Nelder's crossed logistic GLMM; no quadrature
  reaches its MLE, so θ* is Booth & Hobert's (1999) published Monte Carlo EM
  estimate, and ℓ(θ_t) stays unknown (NaN in the tables).
* ``damped_random_walk`` — the data of the state-space scenario (its θ* is
  exact EM's fixed point, which the tests check against a scipy Kalman MLE).
"""

from __future__ import annotations

import numpy as np

import stochem as se
from stochem.app.reference import FixedPoint
from stochem.references import salamander as salamander_reference
from stochem.references import state_space
from stochem.references import theophylline as theophylline_reference


def theophylline():
    """``from_numpyro(one_compartment, *model_arguments())``: θ = (``log_mean`` μ [3], ``omega`` ω [3], ``sigma``)."""
    return se.models.from_numpyro(theophylline_reference.one_compartment, *theophylline_reference.model_arguments())


def _theophylline_loglik(data, params: dict) -> float:
    """ℓ(θ) by quadrature; NaN where a subject's posterior has no proper mode (far from θ*)."""
    theta = theophylline_reference.Theta(np.asarray(params["log_mean"], float), np.asarray(params["omega"], float),
                                         float(params["sigma"]))
    try:
        return theophylline_reference.log_likelihood(data, theta)
    except np.linalg.LinAlgError:
        return float("nan")


def theophylline_mle(model, num_nodes: int = 9) -> FixedPoint:
    """θ*: the stored quadrature MLE in the model's fields, with ℓ(θ) by the same quadrature.

    Args:
        model: the scenario's model (:func:`theophylline`; the shipped data).
        num_nodes: Gauss–Hermite nodes per dimension for ℓ(θ_t).
    """
    del model  # built from the shipped data, as the stored MLE was
    data = theophylline_reference.load()
    mle = theophylline_reference.QUADRATURE_MLE
    params = {"log_mean": np.log(mle[:3]), "omega": np.sqrt(mle[3:6]), "sigma": np.asarray(mle[6])}
    return FixedPoint(params=params, loglik=theophylline_reference.QUADRATURE_LOGLIK, num_iters=0,
                      last_step=0.0, loglik_of=lambda theta: _theophylline_loglik(data, theta))


def salamander():
    """``from_numpyro(crossed_glmm, *model_arguments())``: θ = (``beta`` [4], ``female_sd``, ``male_sd``)."""
    return se.models.from_numpyro(salamander_reference.crossed_glmm, *salamander_reference.model_arguments())


def salamander_mcem(model) -> FixedPoint:
    """θ*: Booth & Hobert's (1999) Monte Carlo EM estimates; ℓ is not known (NaN)."""
    del model
    published = salamander_reference.BOOTH_HOBERT_MCEM
    params = {"beta": np.asarray(published["beta"]), "female_sd": np.sqrt(published["female_var"]),
              "male_sd": np.sqrt(published["male_var"])}
    return FixedPoint(params=params, loglik=float("nan"), num_iters=0, last_step=0.0)


def damped_random_walk(transition: float, state_var: float, noise_var: float, length: int, seed: int):
    """``y`` [length, 1] from x_{t+1} = a x_t + N(0, q), y_t = x_t + N(0, r), x_0 ~ N(0, 1)."""
    if int(length) < 2:
        raise ValueError(f"scenario.data.length must be >= 2, got {length!r}")
    if not (state_var > 0 and noise_var > 0):
        raise ValueError(f"scenario.data.state_var and noise_var must be > 0, got {state_var!r}, {noise_var!r}")
    return state_space.simulate(state_space.local_level_ar(transition, state_var, noise_var), int(length), int(seed))

"""Model selection: Akaike's and Schwarz's (Bayesian) information criteria of a fit.

For a fit with maximized log-likelihood ℓ(θ̂), ``k`` free parameters and ``n``
observations::

    AIC = −2 ℓ(θ̂) + 2 k          BIC = −2 ℓ(θ̂) + k log n

Lower is better. ``k`` and ``n`` are declared by the model
(:class:`stochem.capabilities.FreeParameters`): ``k`` adds up the dimension of
each parameter's unconstrained form (a simplex of K weights counts K − 1), and
parameters kept ``fixed`` are not free. These are scikit-learn's ``aic`` and
``bic`` for a Gaussian mixture, and hmmlearn's for a hidden Markov model.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import numpy as np

from stochem import _validation, capabilities
from stochem.restarts import final_loglik, final_loglik_stderr, is_batched


class InformationCriteria(NamedTuple):
    """AIC and BIC of a fit (arrays ``[seeds]`` for a fit with several seeds).

    Attributes:
        aic: ``−2 ℓ + 2 k``.
        bic: ``−2 ℓ + k log n``.
        loglik: ℓ at the final parameters.
        loglik_stderr: its Monte Carlo standard error (0 when ℓ is exact); the
            criteria carry twice this error.
        num_free_params: ``k``.
        num_observations: ``n``.
    """

    aic: Any
    bic: Any
    loglik: Any
    loglik_stderr: Any
    num_free_params: int
    num_observations: int


def criteria_from_loglik(loglik, num_free_params: int, num_observations: int):
    """``(AIC, BIC)`` from ℓ, ``k`` and ``n`` (the formulas of this module, in one place)."""
    loglik = np.asarray(loglik, dtype=float)
    aic = -2.0 * loglik + 2.0 * num_free_params
    bic = -2.0 * loglik + num_free_params * math.log(num_observations)
    if aic.ndim == 0:
        return float(aic), float(bic)
    return aic, bic


def num_free_params(model, params, fixed=()) -> int:
    """``k``: the free parameters of ``model`` at ``params`` (one seed), fields in ``fixed`` left out."""
    counts = model.free_parameter_counts(params)
    return int(sum(count for name, count in counts.items() if name not in fixed))


def information_criteria(model, result, data, *, fixed=(), num_observations=None) -> InformationCriteria:
    """AIC and BIC of a fit, from its final log-likelihood and the model's parameter count.

    Args:
        model: the model that was fitted.
        result: what ``stochem.fit`` returned (one seed or several).
        data: the data it was fitted to (as given to ``fit``; ``None`` for
            numpyro models).
        fixed: the parameters the fit kept fixed (``fit(..., fixed=...)``);
            they are not free.
        num_observations: ``n`` for BIC; ``None`` takes the model's own
            (rows of the data; every time step for a hidden Markov model; the
            observed draws of a numpyro model).

    Returns:
        :class:`InformationCriteria`. ℓ is the trace's final entry: exact where
        the model has a tractable likelihood, the importance sampling estimate
        with ``fit(..., loglik=importance_loglik(...))``.

    Raises:
        TypeError: the model does not declare its free parameters.
        ValueError: a name in ``fixed`` is not a parameter; the fit has no
            finite ℓ to use.

    Example:
        >>> import numpy as np, stochem as se
        >>> data = np.concatenate([np.linspace(0.0, 1.0, 20), np.linspace(5.0, 6.0, 20)])
        >>> model = se.models.GaussianMixture(2)
        >>> result = se.fit(model, data, num_iters=20)
        >>> criteria = se.information_criteria(model, result, data)
        >>> criteria.num_free_params  # 1 weight, 2 means, 2 variances
        5
    """
    capabilities.require(model, capabilities.FreeParameters, "information_criteria")
    fixed = _validation.check_fixed(model.params_type, fixed, model_name=type(model).__name__)
    prepared = model.prepare_data(data)
    if num_observations is None:
        num_observations = model.num_observations(prepared)
    num_observations = _validation.as_int("num_observations", num_observations, minimum=1)
    params = result.params
    if is_batched(result):
        params = jax.tree_util.tree_map(lambda leaf: leaf[0], params)
    k = num_free_params(model, params, fixed)
    loglik = final_loglik(result)
    if not np.any(np.isfinite(loglik)):
        raise _validation.ArgumentError(
            "result", "the fit has no finite final log-likelihood; for a model without a tractable "
                      "likelihood fit with loglik=stochem.importance_loglik(...).")
    aic, bic = criteria_from_loglik(loglik, k, num_observations)
    return InformationCriteria(aic, bic, loglik, final_loglik_stderr(result), k, num_observations)

"""stochem: EM with exact or sampled completion of the missing data, compiled with JAX.

The public namespace only re-exports; see ``stochem.fit`` to start. numpyro
is imported only when something needs it (``models.from_numpyro``,
``importance_loglik``, ``mcmc``, parameters in unconstrained space).
"""

from stochem import capabilities, models
from stochem.acceleration import squarem
from stochem.averaging import polyak_average
from stochem.base import (
    CompletionInfo,
    CompletionTransform,
    EMAlgorithm,
    EMInfo,
    EMState,
    MStepTransform,
    StatsTransform,
)
from stochem.devices import use_cpu_cores
from stochem.completion import (
    ascent_mcmc,
    ascent_monte_carlo,
    chain,
    exact,
    geometric_samples,
    group_metropolis,
    incremental,
    mcmc,
    minibatch,
    monte_carlo,
    online_em,
    robbins_monro,
    saem,
    saem_step_size,
)
from stochem.em import build as build_em
from stochem.driver import FitFailed, FitResult, Trace, fit
from stochem.mstep import closed_form, gradient, saem_mstep, stochastic_newton
from stochem.restarts import best_of, best_seed, select_seed
from stochem.selection import InformationCriteria, information_criteria
from stochem.standard_errors import StandardErrors, standard_errors
from stochem.streaming import fit_stream
from stochem.out_of_core import fit_out_of_core
from stochem import distributed

__all__ = [
    "CompletionInfo",
    "CompletionTransform",
    "EMAlgorithm",
    "EMInfo",
    "EMState",
    "FitFailed",
    "FitResult",
    "InformationCriteria",
    "MStepTransform",
    "StandardErrors",
    "StatsTransform",
    "Trace",
    "ascent_mcmc",
    "ascent_monte_carlo",
    "best_of",
    "best_seed",
    "chain",
    "distributed",
    "fit_out_of_core",
    "fit_stream",
    "geometric_samples",
    "group_metropolis",
    "importance_loglik",
    "incremental",
    "information_criteria",
    "minibatch",
    "online_em",
    "polyak_average",
    "robbins_monro",
    "saem",
    "saem_mstep",
    "saem_step_size",
    "select_seed",
    "squarem",
    "standard_errors",
    "stochastic_newton",
    "use_cpu_cores",
    "build_em",
    "capabilities",
    "closed_form",
    "exact",
    "fit",
    "gradient",
    "mcmc",
    "models",
    "monte_carlo",
]


def __getattr__(name: str):
    """``importance_loglik`` is imported on first use: it brings in numpyro, which is slow to import."""
    if name == "importance_loglik":
        from stochem.models.numpyro_model import importance_loglik

        globals()[name] = importance_loglik
        return importance_loglik
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

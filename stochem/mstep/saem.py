"""The M-step of SAEM on a numpyro model's summarised draws, with saemix's simulated annealing.

``stochem.saem(stochem.mcmc(S), schedule)`` on a numpyro model with continuous
latent sites averages, across iterations, statistics that Q is linear in
(:mod:`stochem.models.numpyro_model._summary`). This M-step maximizes the
averaged Q: closed forms for the parameters of the recognised Gaussian sites
(``μ̂ = S1/n``, ``σ̂² = residuals/n``, ``Σ̂ = scatter/n``) and ``u = C̄⁻¹ b̄``
for the rest. ``fit`` picks it by itself for that completion.

Simulated annealing (Lavielle's, as saemix runs it with ``alpha.sa = 0.97``
during its first ``nbiter.sa`` iterations): while the chain still travels, a
variance estimated from few effective draws can collapse towards 0 and the
sampler then stops exploring. For the first ``annealing_iters`` iterations each
recognised variance (σ², ω², the diagonal of Σ) is kept from shrinking faster
than ``annealing_factor`` per iteration::

    σ²_{k+1} = max(σ̂²_{k+1}, annealing_factor · σ²_k).
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax.numpy as jnp

from stochem import _validation
from stochem.base import MStepTransform
from stochem.capabilities import SummarizedDraws, require


class SaemMStepState(NamedTuple):
    count: Any  # iterations done


@dataclasses.dataclass(frozen=True)
class SaemMStep:
    """Factory for the M-step of SAEM on summarised draws (see :func:`saem_mstep`)."""

    annealing_iters: int = 0
    annealing_factor: float = 0.97

    def __call__(self, model) -> MStepTransform:
        require(model, SummarizedDraws, "mstep=saem_mstep()",
                "saem_mstep reads the summarised draws of a numpyro model with continuous latent sites "
                "(completion=stochem.saem(stochem.mcmc(num_samples))); other models have their own "
                "closed-form M-step.")
        iters, factor = self.annealing_iters, self.annealing_factor

        def init(params, data):
            del params, data
            return SaemMStepState(jnp.asarray(0))

        def update(stats, state, params, data):
            del data
            floor = jnp.where(state.count < iters, factor, 0.0)
            return model.summary_m_step(stats, params, floor), SaemMStepState(state.count + 1)

        return MStepTransform(init, update)


def saem_mstep(annealing_iters: int = 0, annealing_factor: float = 0.97) -> SaemMStep:
    """Maximize SAEM's averaged Q on a numpyro model: closed forms, a surrogate for the rest, optional annealing.

    Args:
        annealing_iters: iterations during which each variance may shrink by at
            most ``annealing_factor`` per iteration (saemix: half its first
            phase, 150 of 300); 0 switches annealing off.
        annealing_factor: in (0, 1]; saemix's ``alpha.sa`` default is 0.97.

    Example:
        >>> import stochem as se
        >>> mstep = se.saem_mstep(annealing_iters=50, annealing_factor=0.95)
    """
    annealing_iters = _validation.as_int("annealing_iters", annealing_iters, minimum=0)
    if isinstance(annealing_factor, bool) or not isinstance(annealing_factor, (int, float)) \
            or not 0 < annealing_factor <= 1:
        raise _validation.ArgumentError(
            "annealing_factor", f"annealing_factor must lie in (0, 1], got {annealing_factor!r}.")
    return SaemMStep(annealing_iters, float(annealing_factor))

"""Stochastic approximation of the statistics: SAEM (Delyon, Lavielle & Moulines 1999).

The statistics are smoothed across iterations by the Robbins–Monro recursion
(:mod:`stochem.robbins_monro`)::

    S_k = S_{k-1} + γ_k (Ŝ_k − S_{k-1}),

where Ŝ_k are this iteration's (sampled) statistics. With Σ γ_k = ∞ and
Σ γ_k² < ∞ the noise averages out and θ_k converges to a fixed point of exact
EM; γ_k = 1 during a burn-in lets the chain travel first.

Models whose sampled statistics are raw draws (numpyro models with continuous
latent sites) declare :class:`stochem.capabilities.SummarizedDraws`: the
draws are first summarised into statistics Q is linear in (sufficient
statistics of the Gaussian sites whose parameters are param sites, and a
quadratic surrogate for the rest), those are averaged, and the completion
declares ``stochem.saem_mstep()`` as the M-step that reads them.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

from stochem import _validation
from stochem.base import StatsTransform
from stochem.capabilities import LinearStatistics, SummarizedDraws, offers, require
from stochem.completion.chain import chain
from stochem.completion.monte_carlo import monte_carlo
from stochem.mstep.saem import saem_mstep
from stochem.robbins_monro import robbins_monro_step, step_size_at


class RobbinsMonroState(NamedTuple):
    average: Any  # S_{k-1}
    count: Any  # k


@dataclasses.dataclass(frozen=True)
class RobbinsMonro:
    """Factory for the Robbins–Monro statistics transform (see :func:`robbins_monro`)."""

    step_size: Callable

    def __call__(self, model) -> StatsTransform:
        if offers(model, SummarizedDraws) and not offers(model, LinearStatistics):
            summarize, default_mstep = model.summarize_draws, saem_mstep()
        else:
            require(model, LinearStatistics, "robbins_monro (SAEM, online EM)",
                    "SAEM averages sufficient statistics, and this model's statistics are the draws "
                    "themselves (Q is not linear in them), so averaging them would be wrong. For SAEM on "
                    "such a model apply the stochastic approximation to the score: "
                    "completion=stochem.mcmc(num_samples), "
                    "mstep=stochem.stochastic_newton(stochem.saem_step_size(...)).")
            summarize, default_mstep = None, None
        step_size = self.step_size

        def init(template, params, data):
            if summarize is not None:
                template = jax.eval_shape(lambda draws: summarize(params, data, draws), template)
            return RobbinsMonroState(average=optax.tree_utils.tree_zeros_like(template), count=jnp.asarray(0))

        def update(key, params, data, state, stats, info):
            del key
            if summarize is not None:
                stats = summarize(params, data, stats)
            average = robbins_monro_step(state.average, stats, step_size_at(step_size, state.count))
            return average, RobbinsMonroState(average, state.count + 1), info

        return StatsTransform(init, update, default_mstep=default_mstep)


def robbins_monro(step_size: Callable) -> RobbinsMonro:
    """Smooth statistics over iterations: ``S_k = S_{k-1} + γ_k (Ŝ_k − S_{k-1})``.

    Args:
        step_size: ``count -> γ`` (count starts at 0); optax schedules work as
            they are.
    """
    if not callable(step_size):
        raise _validation.ArgumentTypeError("step_size",
                                            f"step_size must be a schedule count -> step size, got {step_size!r}.")
    return RobbinsMonro(step_size)


@dataclasses.dataclass(frozen=True)
class SAEMStepSize:
    """γ_k = 1 for k < burn_in, then (k − burn_in + 1)^(−exponent)."""

    burn_in: int
    exponent: float

    def __call__(self, count):
        after_burn_in = jnp.maximum(jnp.asarray(count, float) - self.burn_in + 1.0, 1.0)
        return jnp.where(count < self.burn_in, 1.0, after_burn_in ** (-self.exponent))


def saem_step_size(burn_in: int = 20, exponent: float = 1.0) -> SAEMStepSize:
    """The common SAEM schedule: γ = 1 for ``burn_in`` iterations, then ``(k − burn_in + 1)^−exponent``.

    ``exponent`` must lie in (0.5, 1] for the Robbins–Monro conditions; 1 is
    plain averaging of the post-burn-in statistics.

    Example:
        >>> import stochem as se
        >>> gamma = se.saem_step_size(burn_in=2)
        >>> [round(float(gamma(k)), 4) for k in range(5)]
        [1.0, 1.0, 1.0, 0.5, 0.3333]
    """
    burn_in = _validation.as_int("burn_in", burn_in, minimum=0)
    exponent = _validation.as_float("exponent", exponent, "in (0.5, 1]")
    if not 0.5 < exponent <= 1.0:
        raise _validation.ArgumentError("exponent",
                                        f"exponent must lie in (0.5, 1] so that SAEM converges, got {exponent}.")
    return SAEMStepSize(burn_in, exponent)


def saem(sampler=None, step_size: Callable | None = None):
    """SAEM: a sampling completion followed by Robbins–Monro smoothing of its statistics.

    Args:
        sampler: the sampling completion; default ``monte_carlo(1)``. Any
            sampling completion whose model has sufficient statistics works,
            MCMC included (MCMC-SAEM, Kuhn & Lavielle 2004). On numpyro
            models with continuous latent sites, ``saem(mcmc(S))`` averages
            the summarised draws (sufficient statistics of the Gaussian sites
            whose parameters are param sites, a quadratic surrogate for the
            rest) and ``fit`` then uses ``stochem.saem_mstep()``; SAEM on
            the score is ``completion=mcmc(S), mstep=stochem.stochastic_newton(step_size)``.
        step_size: ``count -> γ``; default :func:`saem_step_size` ``()``.

    Example:
        >>> import stochem as se
        >>> completion = se.saem(se.monte_carlo(1), se.saem_step_size(burn_in=50))
    """
    return chain(monte_carlo(1) if sampler is None else sampler,
                 robbins_monro(saem_step_size() if step_size is None else step_size))

"""Ascent-based MCMC-EM: the chain keeps more draws when Monte Carlo noise swamps the improvement.

The rule is that of :mod:`stochem.completion.ascent` (Caffo, Jank & Jones
2005): after the step θ_{k−1} → θ_k, the kept chain states m_s at θ_{k−1} give
``ΔQ_s = log p(o, m_s; θ_k) − log p(o, m_s; θ_{k−1})``; when the lower bound
``ΔQ̂ − z_α se`` is not positive the next sample is enlarged, when the upper
bound ``ΔQ̂ + z_γ se`` is below ``tol`` the run stops. Two things differ from
independent draws:

* **Batch means.** Consecutive states of a chain are correlated, so ``se`` is
  ``sqrt(σ̂²_BM / S)`` with the batch-means estimate of the asymptotic
  variance (:mod:`stochem.batch_means`); the plain sample variance would be
  too small by the integrated autocorrelation time.
* **Sizes on a doubling grid.** The kept states fill a buffer of
  ``max_samples`` slots cyclically (:func:`stochem.completion.mcmc.chain_sampler`),
  which the model's statistics and the M-step read whole; the buffer's
  average is the average of the S states only when S divides
  ``max_samples``. So S takes the values ``S_0, 2 S_0, 4 S_0, …,
  max_samples`` (``max_samples = S_0 · 2^J``): the rule's size is rounded up
  to that grid, and "enlarge" (``S + ⌈S / growth_divisor⌉``) doubles S.

The chain only runs the transitions for the S states kept, but the M-step
evaluates Q on all ``max_samples`` slots (a fixed shape), so each M-step costs
as much as one with ``max_samples`` draws. ``S_0`` and ``tol`` are run-time
values of the compiled program (:mod:`stochem.runtime`).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from stochem import _validation, runtime
from stochem.base import CompletionTransform, completion_info
from stochem.batch_means import batch_means
from stochem.capabilities import CompleteLikelihood, require
from stochem.completion.ascent import AscentRule, check_rule, step_change
from stochem.completion.mcmc import Mcmc, McmcState, chain_is_valid, chain_sampler


class AscentMcmcDiagnostics(NamedTuple):
    """Recorded each iteration: the chain's diagnostics for the S states kept, and the ascent rule's.

    Attributes:
        num_samples: S, the states kept this iteration.
        accept_prob: mean acceptance probability of the kept transitions.
        num_divergent: kept transitions that diverged.
        step_size: the integrator's step size in force.
        delta_q: ΔQ̂ of the previous step (NaN on the first iteration).
        delta_q_lower: ``ΔQ̂ − z_α se`` (batch-means ``se``).
        delta_q_upper: ``ΔQ̂ + z_γ se``.
        converged: whether the stopping rule fired.
    """

    num_samples: Any
    accept_prob: Any
    num_divergent: Any
    step_size: Any
    delta_q: Any
    delta_q_lower: Any
    delta_q_upper: Any
    converged: Any


class AscentMcmcState(NamedTuple):
    chain: McmcState
    previous_params: Any
    previous_draws: Any  # per-draw statistics of the last kept states, a leading axis of max_samples
    previous_num_samples: Any
    next_num_samples: Any
    count: Any


def doubling_grid_size(proposed, initial_samples, max_samples: int):
    """The smallest ``initial_samples · 2^j`` at least ``proposed``, at most ``max_samples`` (on the grid)."""
    powers = 2 ** jnp.arange(int(math.log2(max_samples)) + 1)
    candidates = jnp.asarray(initial_samples) * powers
    fits = (candidates >= proposed) & (candidates <= max_samples)
    return jnp.min(jnp.where(fits, candidates, max_samples))


def _is_power_of_two(value: int) -> bool:
    return value >= 1 and value & (value - 1) == 0


@dataclasses.dataclass(frozen=True)
class AscentMcmc:
    """Factory for ascent-based MCMC-EM (see :func:`ascent_mcmc`)."""

    sampler: Mcmc
    max_samples: int
    alpha: float = 0.25
    beta: float = 0.25
    gamma: float = 0.25
    tol: float = 1e-3
    growth_divisor: int = 3

    def __post_init__(self):
        if not isinstance(self.sampler, Mcmc):
            raise _validation.ArgumentTypeError(
                "sampler", f"sampler must be stochem.mcmc(initial_samples, ...), got {self.sampler!r}.")
        initial = self.sampler.num_samples
        if initial < 4:
            raise _validation.ArgumentError(
                "sampler", f"the chain must keep at least 4 states to start (2 batches of 2 for batch means), "
                           f"got mcmc({initial}); 16 or more is better.")
        max_samples = _validation.as_int("max_samples", self.max_samples, minimum=initial)
        if max_samples % initial or not _is_power_of_two(max_samples // initial):
            suggestion = initial * 2 ** max(0, round(math.log2(max_samples / initial)))
            raise _validation.ArgumentError(
                "max_samples", f"max_samples must be the initial sample size {initial} times a power of two "
                               f"(S doubles), got {max_samples}; e.g. max_samples={suggestion}.")
        check_rule(self.alpha, self.beta, self.gamma, self.tol, self.growth_divisor)

    def split_runtime(self, model):
        del model
        static_sampler = runtime.replace_unchecked(self.sampler, num_samples=runtime.RUNTIME)
        static = runtime.replace_unchecked(self, sampler=static_sampler, tol=runtime.RUNTIME)
        return static, (jnp.asarray(self.sampler.num_samples), jnp.asarray(self.tol, float))

    def join_runtime(self, values):
        if self.sampler.num_samples is not runtime.RUNTIME:
            return self
        initial_samples, tol = values
        sampler = runtime.replace_unchecked(self.sampler, num_samples=initial_samples)
        return runtime.replace_unchecked(self, sampler=sampler, tol=tol)

    def __call__(self, model) -> CompletionTransform:
        init_chain, run_chain = chain_sampler(model, self.sampler)
        require(model, CompleteLikelihood, "completion=ascent_mcmc(...)")
        rule = AscentRule(self.alpha, self.beta, self.gamma, self.tol, self.growth_divisor)
        max_samples, initial_samples = self.max_samples, self.sampler.num_samples

        def per_draw_stats(params, data, positions):
            """Statistics of each kept state alone (a leading axis over the buffer)."""
            def one(position):
                return model.stats_from_positions(params, data,
                                                  jax.tree_util.tree_map(lambda leaf: leaf[None], position))

            return jax.vmap(one)(positions)

        def init(params, data):
            chain = init_chain(params, data)
            positions = jax.tree_util.tree_map(lambda leaf: jnp.zeros((max_samples,) + leaf.shape, leaf.dtype),
                                               chain.kernel.z)
            draws = jax.eval_shape(per_draw_stats, params, data, positions)
            empty = jax.tree_util.tree_map(lambda leaf: jnp.zeros(leaf.shape, leaf.dtype), draws)
            start = jnp.asarray(initial_samples)
            return AscentMcmcState(chain, params, empty, start, start, jnp.asarray(0))

        def update(key, params, data, state):
            first = state.count == 0
            change = step_change(model, params, data, state.previous_params)
            changes = jax.vmap(change)(state.previous_draws)  # chain order in the first S slots
            mean, variance = batch_means(changes, state.previous_num_samples)
            decision = rule.decide(first, mean, variance, state.previous_num_samples, state.next_num_samples,
                                   max_samples)
            num_samples = doubling_grid_size(decision.num_samples, initial_samples, max_samples)

            chain, positions, chain_diagnostics = run_chain(key, params, data, state.chain, num_samples,
                                                            max_samples)
            nan = jnp.asarray(jnp.nan)
            diagnostics = AscentMcmcDiagnostics(
                *chain_diagnostics,
                delta_q=jnp.where(first, nan, mean),
                delta_q_lower=jnp.where(first, nan, decision.lower),
                delta_q_upper=jnp.where(first, nan, decision.upper),
                converged=decision.converged,
            )
            new_state = AscentMcmcState(chain, params, per_draw_stats(params, data, positions), num_samples,
                                        num_samples, state.count + 1)
            info = completion_info(diagnostics=diagnostics, converged=decision.converged, draws=positions,
                                   valid=chain_is_valid(chain_diagnostics))
            return model.stats_from_positions(params, data, positions), new_state, info

        return CompletionTransform(init, update, stops_early=True, vmap_seeds=False, keeps_draws=True)


def ascent_mcmc(sampler: Mcmc, max_samples: int, *, alpha: float = 0.25, beta: float = 0.25,
                gamma: float = 0.25, tol: float = 1e-3, growth_divisor: int = 3) -> AscentMcmc:
    """MCMC-EM whose sample size grows by the ascent-based rule, with batch-means errors.

    Args:
        sampler: the chain, ``stochem.mcmc(initial_samples, ...)``; its
            ``num_samples`` (at least 4) is the first sample size.
        max_samples: the largest sample size, ``initial_samples`` times a
            power of two (sizes double; the buffer of kept states).
        alpha: level of the lower confidence bound on ΔQ (enlarge when ≤ 0).
        beta: 1 − power used to choose the next sample size.
        gamma: level of the upper bound used to stop (stop when < ``tol``).
        tol: stop once the upper bound on the improvement ΔQ is below this.
        growth_divisor: Caffo et al.'s ``S + S / growth_divisor`` when the
            lower bound is not positive (rounded up to the grid: S doubles).

    ``fit`` stops the run when the rule fires (``FitResult.converged``); the
    trace's diagnostics hold S per iteration, the chain's acceptance and the
    ΔQ bounds. See :mod:`stochem.completion.ascent_mcmc`.

    Example:
        >>> import stochem as se
        >>> completion = se.ascent_mcmc(se.mcmc(32, num_warmup=200), max_samples=1024, tol=1e-3)
    """
    return AscentMcmc(sampler, max_samples, alpha, beta, gamma, tol, growth_divisor)

"""Ascent-based Monte Carlo EM: the sample grows when Monte Carlo noise swamps the improvement.

After the step θ_{k−1} → θ_k, the draws m_s ~ P(m | o; θ_{k−1}) that produced
it estimate the change of Q (Caffo, Jank & Jones 2005)::

    ΔQ_s = log p(o, m_s; θ_k) − log p(o, m_s; θ_{k−1}),   ΔQ̂ = mean_s ΔQ_s,   se = sd(ΔQ_s) / √S.

* If the lower bound ΔQ̂ − z_α se is not positive, the noise swamps the
  improvement: the next sample is enlarged, S ← S + ⌈S / growth_divisor⌉.
* Otherwise the next sample is the size needed to detect an improvement of
  this size with power 1 − β: S ← max(S, ⌈sd² (z_α + z_β)² / ΔQ̂²⌉).
* The run stops when the upper bound ΔQ̂ + z_γ se falls below ``tol``.

stochem applies the rule to the *next* draw rather than re-drawing the step
just taken (which would need the M-step inside the E-step), so a step is
never rejected; the sample-size path and the stopping rule are Caffo et al.'s.
Sample counts live in a bounded buffer (see :mod:`stochem.completion.sampling`),
so growing the sample never recompiles. Models that draw counts
(:class:`stochem.capabilities.CountedDraws`) need no buffer: ``ΔQ̂`` and its
spread come from the counts kept from the previous step (Q is affine in the
statistics, so ``ΔQ_s`` is a sum over observations of terms fixed by each
observation's label; :meth:`~stochem.completion.sampling.CountedStats.linear_moments`),
and an iteration costs about the same for any S.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from stochem import _validation, runtime
from stochem.base import CompletionTransform, completion_info
from stochem.capabilities import CompleteLikelihood, PosteriorSampler, require
from stochem.completion.sampling import draw_average


class AscentDiagnostics(NamedTuple):
    """Recorded each iteration: the sample count drawn, the statistics' Monte Carlo
    standard errors, the ΔQ estimate for the previous step with its bounds, and
    whether the stopping rule fired."""

    num_samples: Any
    stats_stderr: Any
    delta_q: Any
    delta_q_lower: Any
    delta_q_upper: Any
    converged: Any


class AscentState(NamedTuple):
    previous_params: Any
    previous_draws: Any  # DrawnStats or CountedStats (stochem.completion.sampling)
    next_num_samples: Any
    count: Any


def _quantile(level: float) -> float:
    from scipy import stats as scipy_stats  # imported when used: scipy.stats is slow to import

    return float(scipy_stats.norm.isf(level))


def check_rule(alpha, beta, gamma, tol, growth_divisor) -> None:
    """Check the settings of the ascent rule (levels in (0, 0.5), ``tol`` > 0, divisor ≥ 1)."""
    _validation.as_int("growth_divisor", growth_divisor, minimum=1)
    for name, level in (("alpha", alpha), ("beta", beta), ("gamma", gamma)):
        if not 0.0 < _validation.as_float(name, level, "in (0, 0.5)") < 0.5:
            raise _validation.ArgumentError(name, f"{name} must lie in (0, 0.5), got {level}.")
    if not _validation.as_float("tol", tol, "> 0") > 0:
        raise _validation.ArgumentError("tol", f"tol must be positive, got {tol}.")


class AscentDecision(NamedTuple):
    """What the ascent rule concludes from ΔQ̂ of the last step (see the module docstring).

    Attributes:
        num_samples: the sample size to draw next (before any rounding by the sampler).
        lower: ``ΔQ̂ − z_α se``.
        upper: ``ΔQ̂ + z_γ se``.
        converged: ``upper < tol`` (never on the first iteration, which has no step behind it).
    """

    num_samples: Any
    lower: Any
    upper: Any
    converged: Any


@dataclasses.dataclass(frozen=True)
class AscentRule:
    """The sample-size and stopping rule of Caffo, Jank & Jones (2005), shared by the ascent completions."""

    alpha: float
    beta: float
    gamma: float
    tol: Any
    growth_divisor: int

    def decide(self, first, mean, variance, num_draws, current, max_samples) -> AscentDecision:
        """The rule applied to ``ΔQ̂ = mean`` with per-draw variance ``variance`` over ``num_draws`` draws.

        ``variance`` is the variance of one draw's ΔQ_s for independent draws,
        or the asymptotic variance ``lim n · Var(ΔQ̂_n)`` (batch means) for a
        Markov chain; either way ``se = sqrt(variance / num_draws)`` and the
        size that detects an improvement ``ΔQ̂`` with power 1 − β is
        ``variance (z_α + z_β)² / ΔQ̂²``. ``current`` is the size in force;
        on the first iteration it is kept.
        """
        z_alpha, z_beta, z_gamma = _quantile(self.alpha), _quantile(self.beta), _quantile(self.gamma)
        stderr = jnp.sqrt(variance / jnp.asarray(num_draws, float))
        lower, upper = mean - z_alpha * stderr, mean + z_gamma * stderr
        enlarged = current + -(-current // self.growth_divisor)
        needed = jnp.ceil(variance * (z_alpha + z_beta) ** 2 / jnp.maximum(mean**2, 1e-300))
        adapted = jnp.where(lower > 0, jnp.maximum(current, needed.astype(current.dtype)), enlarged)
        num_samples = jnp.clip(jnp.where(first, current, adapted), 2, max_samples)
        return AscentDecision(num_samples, lower, upper, ~first & (upper < self.tol))


def step_change(model, params, data, previous_params):
    """``stats -> log p(o, m; θ_k) − log p(o, m; θ_{k−1})`` through ``model.complete_loglik``: ΔQ of one draw."""
    def change(stats):
        return model.complete_loglik(params, data, stats) - model.complete_loglik(previous_params, data, stats)

    return change


@dataclasses.dataclass(frozen=True)
class AscentMonteCarlo:
    """Factory for ascent-based MCEM (see :func:`ascent_monte_carlo`).

    ``initial_samples`` and ``tol`` are run-time values of the compiled
    program (:mod:`stochem.runtime`): fits that differ only in them share it.
    """

    initial_samples: int = 10
    max_samples: int = 10_000
    alpha: float = 0.25
    beta: float = 0.25
    gamma: float = 0.25
    tol: float = 1e-3
    growth_divisor: int = 3

    def __post_init__(self):
        _validation.as_int("initial_samples", self.initial_samples, minimum=2)
        _validation.as_int("max_samples", self.max_samples, minimum=self.initial_samples)
        check_rule(self.alpha, self.beta, self.gamma, self.tol, self.growth_divisor)

    def split_runtime(self, model):
        del model
        static = runtime.replace_unchecked(self, initial_samples=runtime.RUNTIME, tol=runtime.RUNTIME)
        return static, (jnp.asarray(self.initial_samples), jnp.asarray(self.tol, float))

    def join_runtime(self, values):
        if self.initial_samples is not runtime.RUNTIME:
            return self
        initial_samples, tol = values
        return runtime.replace_unchecked(self, initial_samples=initial_samples, tol=tol)

    def __call__(self, model) -> CompletionTransform:
        require(model, PosteriorSampler, "completion=ascent_monte_carlo(...)")
        require(model, CompleteLikelihood, "completion=ascent_monte_carlo(...)")
        rule = AscentRule(self.alpha, self.beta, self.gamma, self.tol, self.growth_divisor)
        max_samples = self.max_samples

        def init(params, data):
            key = jax.random.key(0)
            drawn = jax.eval_shape(lambda: draw_average(model, key, params, data, 2, max_samples))
            empty = optax.tree_utils.tree_zeros_like(drawn)
            return AscentState(params, empty, jnp.asarray(self.initial_samples), jnp.asarray(0))

        def update(key, params, data, state):
            first = state.count == 0
            drawn = state.previous_draws
            change = step_change(model, params, data, state.previous_params)
            mean, variance = drawn.linear_moments(model, data, change)
            decision = rule.decide(first, mean, variance, drawn.num_samples, state.next_num_samples,
                                   max_samples)

            drawn = draw_average(model, key, params, data, decision.num_samples, max_samples)
            nan = jnp.asarray(jnp.nan)
            diagnostics = AscentDiagnostics(
                num_samples=jnp.asarray(drawn.num_samples),
                stats_stderr=drawn.stderr(),
                delta_q=jnp.where(first, nan, mean),
                delta_q_lower=jnp.where(first, nan, decision.lower),
                delta_q_upper=jnp.where(first, nan, decision.upper),
                converged=decision.converged,
            )
            new_state = AscentState(params, drawn, decision.num_samples, state.count + 1)
            info = completion_info(drawn.loglik, diagnostics=diagnostics, converged=decision.converged)
            return drawn.mean(), new_state, info

        return CompletionTransform(init, update, stops_early=True)


def ascent_monte_carlo(initial_samples: int = 10, max_samples: int = 10_000, *, alpha: float = 0.25,
                       beta: float = 0.25, gamma: float = 0.25, tol: float = 1e-3,
                       growth_divisor: int = 3) -> AscentMonteCarlo:
    """MCEM whose sample size is set by the ascent-based rule of Caffo, Jank & Jones (2005).

    Args:
        initial_samples: the first sample size.
        max_samples: the largest sample size (the size of the draw buffer).
        alpha: level of the lower confidence bound on ΔQ (enlarge when ≤ 0).
        beta: 1 − power used to choose the next sample size.
        gamma: level of the upper bound used to stop (stop when < ``tol``).
        tol: stop once the upper bound on the improvement ΔQ is below this.
        growth_divisor: when the lower bound is not positive, grow S by S / this.

    ``fit`` stops the run when the rule fires (``FitResult.converged``); the
    trace's diagnostics hold the sample sizes and the ΔQ bounds.

    Example:
        >>> import stochem as se
        >>> completion = se.ascent_monte_carlo(initial_samples=10, max_samples=5000, tol=1e-3)
    """
    return AscentMonteCarlo(initial_samples, max_samples, alpha, beta, gamma, tol, growth_divisor)

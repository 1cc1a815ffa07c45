"""Monte Carlo completion: the alternate EM principle.

Instead of weighting every value of the missing data by P(m | o; θ), draw
``S`` completions ``m_s ~ P(m | o; θ)`` and average their sufficient
statistics::

    S_hat = (1 / S) Σ_s T(o, m_s),    E[S_hat] = E[T(o, m) | o; θ].

``S = 1`` is stochastic EM (Celeux & Diebolt 1985); large ``S`` is Monte Carlo
EM (Wei & Tanner 1990). ``S`` may follow a schedule over iterations, e.g.
geometric growth (:func:`geometric_samples`).

Models with one categorical latent per observation (mixtures, the dice
models, enumerated numpyro models: :class:`stochem.capabilities.CountedDraws`)
draw each observation's S labels as one multinomial count vector, so an
iteration costs about the same for any ``S`` (see
:mod:`stochem.completion.sampling`); the average has exactly the distribution
of the average of S explicit draws, but the random numbers differ from those
of explicit draws.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple

import jax.numpy as jnp

from stochem import _validation, runtime
from stochem.base import CompletionTransform, completion_info
from stochem.capabilities import CountedDraws, PosteriorSampler, offers, require
from stochem.completion.sampling import draw_average


class SamplingDiagnostics(NamedTuple):
    """Recorded in ``FitResult.trace.diagnostics`` each iteration.

    Attributes:
        num_samples: the sample count in force.
        stats_stderr: Monte Carlo standard error of each averaged statistic.
    """

    num_samples: Any
    stats_stderr: Any


class MonteCarloState(NamedTuple):
    count: Any  # iterations done


def check_num_samples(num_samples, max_samples):
    """Validate a fixed count or a schedule with its bound; return ``(num_samples, max_samples)``."""
    if callable(num_samples):
        if max_samples is None:
            raise _validation.ArgumentError(
                "max_samples", "a num_samples schedule needs max_samples, the largest count it may reach.")
        return num_samples, _validation.as_int("max_samples", max_samples, minimum=1)
    num_samples = _validation.as_int("num_samples", num_samples, minimum=1)
    if max_samples is not None and max_samples != num_samples:
        raise _validation.ArgumentError(
            "max_samples", "max_samples only goes with a num_samples schedule; drop it for a fixed count.")
    return num_samples, num_samples


def sampling_diagnostics(drawn) -> SamplingDiagnostics:
    """The diagnostics of a sample of completions: its size and the statistics' standard errors."""
    return SamplingDiagnostics(jnp.asarray(drawn.num_samples), drawn.stderr())


@dataclasses.dataclass(frozen=True)
class MonteCarlo:
    """Factory for the sampled E-step (see :func:`monte_carlo`)."""

    num_samples: int | Callable
    max_samples: int | None = None

    def __post_init__(self):
        try:
            num_samples, max_samples = check_num_samples(self.num_samples, self.max_samples)
        except (_validation.ArgumentError, _validation.ArgumentTypeError) as error:
            if error.argument != "num_samples":
                raise
            raise type(error)("num_samples", f"{error} (1 is stochastic EM)") from None
        object.__setattr__(self, "num_samples", num_samples)
        object.__setattr__(self, "max_samples", max_samples)

    def split_runtime(self, model):
        """A fixed count is a run-time value (:mod:`stochem.runtime`), so a sweep over S runs one program.

        On a model that draws counts no array depends on S. Other models keep
        the S draws' statistics in a buffer of ``runtime.draw_capacity(S)``
        entries (the work done grows with S, not with the buffer). ``S = 1``
        on such a model stays static: its single draw takes the model's fused pass.
        """
        if callable(self.num_samples):
            return self, ()
        if offers(model, CountedDraws):
            static = runtime.replace_unchecked(self, num_samples=runtime.RUNTIME, max_samples=runtime.RUNTIME)
        elif self.num_samples > 1:
            static = runtime.replace_unchecked(self, num_samples=runtime.RUNTIME,
                                               max_samples=runtime.draw_capacity(self.num_samples))
        else:
            return self, ()
        return static, jnp.asarray(self.num_samples)

    def join_runtime(self, values):
        if self.num_samples is not runtime.RUNTIME:
            return self
        if self.max_samples is runtime.RUNTIME:  # counts: the bound is the count itself
            return runtime.replace_unchecked(self, num_samples=values, max_samples=values)
        return runtime.replace_unchecked(self, num_samples=values)

    def __call__(self, model) -> CompletionTransform:
        require(model, PosteriorSampler, "completion=monte_carlo(...)",
                "Use completion=mcmc(num_samples) to sample it by MCMC.")
        schedule, max_samples = self.num_samples, self.max_samples

        def init(params, data):
            del params, data
            return MonteCarloState(count=jnp.asarray(0))

        def update(key, params, data, state):
            num_samples = schedule(state.count) if callable(schedule) else schedule
            drawn = draw_average(model, key, params, data, num_samples, max_samples)
            info = completion_info(drawn.loglik, diagnostics=sampling_diagnostics(drawn))
            return drawn.mean(), MonteCarloState(state.count + 1), info

        return CompletionTransform(init, update)


def monte_carlo(num_samples, max_samples: int | None = None) -> MonteCarlo:
    """Complete the missing data by sampling it from P(m | o; θ).

    Args:
        num_samples: draws per observation and iteration (``1`` is stochastic
            EM): a Python int, or a schedule ``iteration -> count`` (e.g.
            :func:`geometric_samples`) together with ``max_samples``.
        max_samples: with a schedule, the largest count it may reach (the size
            of the buffer the draws are kept in; counts are clipped to it).

    Example:
        >>> import stochem as se
        >>> completion = se.monte_carlo(100)
        >>> growing = se.monte_carlo(se.geometric_samples(10, 1.2), max_samples=2000)
    """
    return MonteCarlo(num_samples, max_samples)


def geometric_samples(initial_samples: int, growth: float) -> Callable:
    """Schedule ``S_k = ceil(initial_samples · growth^k)``, a common MCEM choice (Booth & Hobert 1999).

    Example:
        >>> import stochem as se
        >>> schedule = se.geometric_samples(10, 1.5)
        >>> [int(schedule(k)) for k in range(4)]
        [10, 15, 23, 34]
    """
    initial_samples = _validation.as_int("initial_samples", initial_samples, minimum=1)
    growth = _validation.as_float("growth", growth, ">= 1")
    if not growth >= 1.0:
        raise _validation.ArgumentError("growth", f"growth must be >= 1 (sample counts do not shrink), got {growth}.")
    return _GeometricSchedule(initial_samples, growth)


@dataclasses.dataclass(frozen=True)
class _GeometricSchedule:
    initial: int
    growth: float

    def __call__(self, count):
        return jnp.ceil(self.initial * self.growth ** jnp.asarray(count, float) - 1e-9).astype(int)

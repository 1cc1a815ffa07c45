"""Settings that are run-time values of the compiled EM program, so that changing them does not recompile.

``fit`` caches one compiled program per model, completion, M-step and loop
settings. Two settings are passed to the program as values instead of being
built into it:

* ``num_iters``: the trace buffers have a *capacity*, the smallest power of two
  at least ``num_iters`` (and at least :data:`MIN_CAPACITY`); the loop runs to
  the run-time ``num_iters`` and ``fit`` cuts the trace to ``num_iters + 1``
  entries. Every ``num_iters`` up to a capacity shares one program.
* a completion's sample count, where the completion declares it can take one
  at run time (:class:`RuntimeSettings`; e.g. ``monte_carlo(S)``: on a model
  that draws counts, :class:`stochem.capabilities.CountedDraws`, no array
  depends on ``S``; on any other model the S draws' statistics fill the first
  ``S`` entries of a buffer of :func:`draw_capacity` entries, so every
  ``S`` up to :data:`MIN_DRAW_CAPACITY` shares one program).

A completion factory is split into its *static part* (the factory with
:data:`RUNTIME` in place of each run-time field: what the program cache is
keyed on) and the values; inside the traced program the values are put back
(:func:`join`), as tracers, without the factory's checks (they ran on the
user's factory).
"""

from __future__ import annotations

import copy
from typing import Any, Protocol, runtime_checkable

# The trace buffers hold at least this many iterations, so short runs share one program.
MIN_CAPACITY = 16

# Buffers of explicit draws (per-draw statistics, a few numbers each) hold at least this many
# draws, so every sample count up to it shares one program.
MIN_DRAW_CAPACITY = 1024


class _RunTime:
    """The placeholder for a setting passed to the compiled program at run time."""

    def __repr__(self) -> str:
        return "RUNTIME"

    def __reduce__(self):
        return "RUNTIME"


RUNTIME = _RunTime()


@runtime_checkable
class RuntimeSettings(Protocol):
    """A completion factory with settings that may be run-time values of the program.

    ``split_runtime(model) -> (static_factory, values)`` gives the factory with
    :data:`RUNTIME` in place of those settings, and their values (a pytree of
    arrays, ``()`` when none); ``join_runtime(values)`` puts values (possibly
    tracers) back into a static factory.
    """

    def split_runtime(self, model): ...

    def join_runtime(self, values): ...


def split(factory, model) -> tuple[Any, Any]:
    """``(static factory, run-time values)``; a factory without run-time settings is all static."""
    if isinstance(factory, RuntimeSettings):
        return factory.split_runtime(model)
    return factory, ()


def join(factory, values):
    """The factory with its run-time values put back (inside the traced program)."""
    if isinstance(factory, RuntimeSettings):
        return factory.join_runtime(values)
    return factory


def replace_unchecked(factory, **changes):
    """A copy of a frozen dataclass factory with fields replaced, without running its checks."""
    new = copy.copy(factory)
    for name, value in changes.items():
        object.__setattr__(new, name, value)
    return new


def _power_of_two_capacity(needed: int, minimum: int) -> int:
    """The smallest power of two times ``minimum`` that is at least ``needed``."""
    capacity = minimum
    while capacity < needed:
        capacity *= 2
    return capacity


def trace_capacity(num_iters: int) -> int:
    """The trace buffers' capacity for ``num_iters``: a power of two, at least ``MIN_CAPACITY``."""
    return _power_of_two_capacity(num_iters, MIN_CAPACITY)


def draw_capacity(num_samples: int) -> int:
    """The buffer of explicit draws for ``num_samples``: a power of two, at least ``MIN_DRAW_CAPACITY``."""
    return _power_of_two_capacity(num_samples, MIN_DRAW_CAPACITY)

"""The small set of types every other module builds on.

A *completion* (the E-step) and an *M-step* are optax-style pairs of pure
functions. They are created in two stages, blackjax style: the public
constructors (``stochem.exact()``, ``stochem.monte_carlo(10)``, ...) fix the
hyperparameters and return a hashable *factory*; calling the factory with a
model returns the pair of pure functions for that model.

Keeping factories hashable (frozen dataclasses) lets ``fit`` cache the compiled
EM loop: calling ``fit`` again with equal arguments and the same shapes does not
retrace.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

PyTree = Any
Params = Any  # a model's parameter NamedTuple
Stats = Any  # a model's sufficient statistics (pytree)


class CompletionTransform(NamedTuple):
    """The E-step as two pure functions.

    Attributes:
        init: ``init(params, data) -> state``.
        update: ``update(key, params, data, state) -> (stats, state)``; the PRNG
            key comes first and is never stored in the state.
    """

    init: Callable[[Params, PyTree], PyTree]
    update: Callable[[Any, Params, PyTree, PyTree], tuple[Stats, PyTree]]


class MStepTransform(NamedTuple):
    """The M-step as two pure functions.

    Attributes:
        init: ``init(params) -> state``.
        update: ``update(stats, params, state) -> (new_params, state)``.
    """

    init: Callable[[Params], PyTree]
    update: Callable[[Stats, Params, PyTree], tuple[Params, PyTree]]


class EMState(NamedTuple):
    """State of one EM run: the current parameters and the transforms' states."""

    params: Params
    completion_state: PyTree
    mstep_state: PyTree


class EMInfo(NamedTuple):
    """What one EM step reports.

    Attributes:
        loglik: observed-data log-likelihood at the step's input parameters
            (NaN where it is intractable).
        diagnostics: what the completion recorded this step (its state's
            ``diagnostics`` field, e.g. the sample count in force and the Monte
            Carlo standard errors), or an empty tuple.
    """

    loglik: Any
    diagnostics: Any = ()


class EMAlgorithm(NamedTuple):
    """EM as blackjax-style ``(init, step)``.

    Attributes:
        init: ``init(params) -> EMState``.
        step: ``step(key, state) -> (EMState, EMInfo)``.
    """

    init: Callable[[Params], EMState]
    step: Callable[[Any, EMState], tuple[EMState, EMInfo]]


class EmptyState(NamedTuple):
    """State of a transform that carries nothing between iterations."""

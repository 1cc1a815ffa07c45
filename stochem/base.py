"""The small set of types every other module builds on.

A *completion* (the E-step) and an *M-step* are optax-style pairs of pure
functions. They are created in two stages, blackjax style: the public
constructors (``stochem.exact()``, ``stochem.monte_carlo(10)``, ...) fix the
hyperparameters and return a hashable *factory*; calling the factory with a
model checks that the model has the capabilities it needs
(:mod:`stochem.capabilities`) and returns the pure functions for that model.

Keeping factories hashable (frozen dataclasses) lets ``fit`` cache the compiled
EM loop: calling ``fit`` again with equal arguments and the same shapes does not
retrace.

What a step computed besides its main output travels in an *info* NamedTuple
(blackjax's ``(state, info)``), never inside a state: nobody asks a state what
it holds.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax.numpy as jnp

PyTree = Any
Params = Any  # a model's parameter NamedTuple
Stats = Any  # a model's sufficient statistics (pytree)


class CompletionInfo(NamedTuple):
    """What one completion step reports besides the statistics.

    Attributes:
        loglik: ℓ(θ_t) = log p(o; θ_t) when the step computed it on the way
            (e.g. the normalizer of an exact posterior), else ``None``; whether
            it is ``None`` is fixed for a given completion and model.
        loglik_stderr: the Monte Carlo standard error of ``loglik`` (0 when it
            is exact), or ``None`` with ``loglik``.
        diagnostics: what the completion records each iteration (e.g. the
            sample count in force and Monte Carlo standard errors), a pytree of
            fixed structure, or ``()``.
        converged: ``True`` once the completion's own stopping rule says the
            run may stop (e.g. the ascent-based MCEM rule).
        valid: ``False`` when the step went wrong (non-finite statistics, a
            failed sampler); the driver stops or warns on it.
        draws: the posterior draws of the latent variables at θ_t that the
            step made, when it keeps them (MCMC: the chain's positions in
            unconstrained coordinates, a pytree with a leading axis of draws),
            else ``None``. They are not recorded in the trace; an ℓ estimator
            uses them (:func:`stochem.importance_loglik`).
    """

    loglik: Any = None
    loglik_stderr: Any = None
    diagnostics: Any = ()
    converged: Any = None
    valid: Any = None
    draws: Any = None


def completion_info(loglik=None, loglik_stderr=None, diagnostics=(), converged=False, valid=True, draws=None):
    """A :class:`CompletionInfo` whose flags are arrays (so it can be stacked by ``lax.scan``).

    ``loglik_stderr`` defaults to 0 when ``loglik`` is given (an exact value).
    """
    if loglik is not None and loglik_stderr is None:
        loglik_stderr = jnp.zeros((), jnp.result_type(float))
    return CompletionInfo(loglik, loglik_stderr, diagnostics, jnp.asarray(converged), jnp.asarray(valid), draws)


def _no_data_check(data) -> None:
    """The default :attr:`CompletionTransform.check_data`: nothing to check."""
    del data


class CompletionTransform(NamedTuple):
    """The E-step as pure functions, plus the static facts the driver needs.

    Attributes:
        init: ``init(params, data) -> state``.
        update: ``update(key, params, data, state) -> (stats, state, info)``
            with ``info`` a :class:`CompletionInfo`; the PRNG key comes first
            and is never stored in the state.
        check_data: ``check_data(data)`` on the prepared, concrete data, before
            anything is traced: raise ``ValueError`` naming the argument when
            this completion cannot use them (e.g. a batch larger than the data).
        stops_early: whether ``info.converged`` can end the run (a stopping
            rule), so the driver runs a ``while_loop`` instead of a ``scan``.
        vmap_seeds: whether several seeds may run under ``vmap``; ``False``
            runs them one after another (``lax.map``) in the same program.
        default_mstep: the M-step ``fit`` uses with this completion when none
            is given, or ``None`` for the model's default. A completion whose
            statistics only one M-step reads declares it here (SAEM on a
            numpyro model's summarised draws: ``stochem.saem_mstep()``).
        keeps_draws: whether ``info.draws`` holds the step's posterior draws.

    A wrapper (minibatch, chain) replaces ``init`` and ``update`` with
    ``_replace`` and so keeps every other field of what it wraps.
    """

    init: Callable[[Params, PyTree], PyTree]
    update: Callable[[Any, Params, PyTree, PyTree], tuple[Stats, PyTree, CompletionInfo]]
    check_data: Callable[[PyTree], None] = _no_data_check
    stops_early: bool = False
    vmap_seeds: bool = True
    default_mstep: Any = None
    keeps_draws: bool = False


class StatsTransform(NamedTuple):
    """A pure step that post-processes a completion's statistics (see :func:`stochem.chain`).

    Attributes:
        init: ``init(stats_template, params, data) -> state``; the template has
            the shapes and dtypes of the statistics (``jax.ShapeDtypeStruct``
            leaves).
        update: ``update(key, params, data, state, stats, info) -> (stats,
            state, info)``: the same arguments as a completion, plus the
            statistics and info of the pieces before it.
        stops_early: whether it may set ``info.converged`` (a stopping rule).
        default_mstep: the M-step the statistics it returns call for, or
            ``None`` (see :attr:`CompletionTransform.default_mstep`).
    """

    init: Callable[[Any, Params, PyTree], Any]
    update: Callable[..., tuple[Stats, Any, CompletionInfo]]
    stops_early: bool = False
    default_mstep: Any = None


class MStepTransform(NamedTuple):
    """The M-step as two pure functions.

    Attributes:
        init: ``init(params, data) -> state``.
        update: ``update(stats, state, params, data) -> (new_params, state)``.
    """

    init: Callable[[Params, PyTree], PyTree]
    update: Callable[[Stats, PyTree, Params, PyTree], tuple[Params, PyTree]]


class EMState(NamedTuple):
    """State of one EM run: the current parameters and the transforms' states."""

    params: Params
    completion_state: PyTree
    mstep_state: PyTree


class EMInfo(NamedTuple):
    """What one EM step reports.

    Attributes:
        loglik: observed-data log-likelihood ℓ(θ_t) at the step's input
            parameters (NaN where it is intractable and was not estimated).
        loglik_stderr: its Monte Carlo standard error (0 when exact, NaN when
            not computed).
        diagnostics: what the completion recorded this step, or ``()``.
        converged: whether a stopping rule of the completion fired.
        valid: ``False`` when the step went wrong: the completion said so, or
            the new parameters or ℓ(θ_t) are not finite.
        draws: the completion's posterior draws at θ_t, or ``None`` (see
            :class:`CompletionInfo`).
        failure: why the step went wrong, an int code: 0 when ``valid``, else
            an index into :data:`stochem.em.FAILURE_CAUSES`.
    """

    loglik: Any
    loglik_stderr: Any = None
    diagnostics: Any = ()
    converged: Any = False
    valid: Any = True
    draws: Any = None
    failure: Any = 0


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

"""One EM run, traced: a ``lax.while_loop`` over at most ``num_iters`` iterations, a run-time value.

The loop records, per iteration t, ℓ(θ_t) with its standard error, θ_t and what
the completion reported (its diagnostics), into buffers whose length (the
*capacity*, :func:`stochem.runtime.trace_capacity`) is fixed when the program
is compiled; every ``num_iters`` up to the capacity runs in the same program.
A run stops early when a tolerance is given or when the completion's own
stopping rule fires (``info.converged``); entries after the last iteration are
NaN. The tolerance rule depends on the completion:

* exact completion: ``|ℓ(θ_t) − ℓ(θ_{t−1})| <= tol`` (EM's ℓ increases
  monotonically, so its change measures the distance left);
* any other (sampled) completion: the Booth & Hobert (1999, JRSS B 61, §3)
  rule. ℓ or θ from one noisy step can change by little by chance, so the
  run stops once the relative change ``max_j |θ_{t+1,j} − θ_{t,j}| /
  (|θ_{t,j}| + δ)`` (δ = 1e-3) has stayed within ``tol`` for 3 consecutive
  iterations. Monte Carlo noise in θ_{t+1} of relative size above ``tol``
  keeps the run going: ``tol`` must exceed the Monte Carlo error of a step
  (more draws per iteration, or SAEM's decreasing step sizes, lower it);
  Booth & Hobert suggest ``tol`` between 0.001 and 0.005 with draws to match.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from stochem import progress as progress_bar
from stochem.base import EMInfo
from stochem.completion.exact import Exact
from stochem.em import build, observed_loglik

# The log-likelihood estimator draws from its own stream, fold_in(key, this):
# opting in to an estimate leaves the EM iterates unchanged.
_LOGLIK_STREAM = 0x4C4C


class LoglikRecord(NamedTuple):
    """One trace entry's ℓ: the value, its Monte Carlo standard error and the Pareto ``k̂`` of its weights."""

    loglik: Any
    stderr: Any
    pareto_k: Any


def _computed(info) -> LoglikRecord:
    """The ℓ an EM step (or the model) computed: its error as reported, ``k̂`` NaN (no weights)."""
    dtype = jnp.result_type(float)
    return LoglikRecord(jnp.asarray(info.loglik, dtype), jnp.asarray(info.loglik_stderr, dtype),
                        jnp.full((), jnp.nan, dtype))


def loglik_recorder(model, loglik, key, data, num_iters):
    """``record(iteration, params, info, active) -> LoglikRecord`` for trace entry ``iteration``.

    ``info`` is what the EM step reported at ``params`` (its ℓ, error and
    draws). Without an estimator its ℓ is kept. With one (``fit(...,
    loglik=...)``), ℓ(θ_t) is estimated at iterations ``0, every, 2·every, …``
    and at the last entry, NaN elsewhere. Entries after a failed step
    (``active`` false) are NaN and estimate nothing.
    """
    dtype = jnp.result_type(float)

    def missing():
        return LoglikRecord(*(jnp.full((), jnp.nan, dtype) for _ in range(3)))

    if loglik is None:
        def record_computed(iteration, params, info, active=True):
            return _tree_where(active, _computed(info), missing())

        return record_computed
    estimate = loglik(model)
    needs_draws = loglik.needs_draws(model)
    stream = jax.random.fold_in(key, _LOGLIK_STREAM)

    def record(iteration, params, info, active=True):
        draws = info.draws if needs_draws else None

        def run():
            value = estimate(jax.random.fold_in(stream, iteration), params, data, draws)
            return LoglikRecord(*(jnp.asarray(field, dtype) for field in value))

        due = active & ((iteration % loglik.every == 0) | (iteration == num_iters))
        return jax.lax.cond(due, run, missing)

    return record


def _tree_where(condition, on_true, on_false):
    return jax.tree_util.tree_map(lambda a, b: jnp.where(condition, a, b), on_true, on_false)


def _filled(shapes):
    """Arrays of the given shape structs: NaN (inexact), 0 (integers) or False (booleans)."""
    def fill(leaf):
        value = jnp.nan if jnp.issubdtype(leaf.dtype, jnp.inexact) else 0
        return jnp.full(leaf.shape, value, leaf.dtype)

    return jax.tree_util.tree_map(fill, shapes)


SAMPLED_TOL_STREAK = 3  # consecutive small relative changes before a sampled run stops (Booth & Hobert)
SAMPLED_TOL_OFFSET = 1e-3  # δ in |Δθ_j| / (|θ_j| + δ)


def relative_change(old, new):
    """``max_j |new_j − old_j| / (|old_j| + δ)`` over every entry of every parameter (δ = 1e-3)."""
    changes = [jnp.max(jnp.abs(b - a) / (jnp.abs(a) + SAMPLED_TOL_OFFSET))
               for a, b in zip(jax.tree_util.tree_leaves(old), jax.tree_util.tree_leaves(new)) if a.size]
    return jnp.max(jnp.stack(changes)) if changes else jnp.zeros(())


def run_em(model, completion, mstep, fixed, accelerator, capacity, tol, loglik, stops_early,
           key, num_iters, init_params, data, *, progress=False):
    """One EM run (traced) of ``num_iters`` iterations at most (a run-time value, at most ``capacity``).

    The iterates are written into buffers of length ``capacity + 1`` (NaN after
    the last); the caller cuts them to ``num_iters + 1``. Iteration ``t`` uses
    ``split(run_key, capacity)[t]`` when the run cannot stop early (with JAX's
    default partitionable threefry these are the keys of
    ``split(run_key, num_iters)``, whatever the capacity) and
    ``fold_in(run_key, t)`` when it can.

    A step that reports a failure (``EMInfo.failure != 0``: non-finite θ or ℓ,
    a failed E-step) ends the run: its input θ_t, ℓ(θ_t) and diagnostics are
    recorded at entry t, the state is not advanced (the returned parameters
    are the last finite ones, θ_t), later entries are NaN and no later step runs.

    With ``progress=True`` each iteration also reports its count to the open
    progress bar (:mod:`stochem.progress`); with ``False`` nothing of it is traced.

    Returns:
        ``(params, loglik_records, params_trace, diagnostics_trace, num_iters, converged, failure,
        failed_at)`` with ``loglik_records`` a :class:`LoglikRecord` of ``[T + 1]`` arrays,
        ``num_iters`` the steps that succeeded, ``failure`` the failing step's code (0: none,
        see :data:`stochem.em.FAILURE_CAUSES`) and ``failed_at`` its iteration (−1: none).
    """
    def report_progress(iterations_done):
        if progress:
            progress_bar.report(iterations_done, progress_bar.every_for(num_iters))

    sampled = not isinstance(completion, Exact)  # tol: the sampled rule, not ℓ's change
    init_key, run_key = jax.random.split(key)
    record_loglik = loglik_recorder(model, loglik, key, data, num_iters)
    if init_params is None:
        init_params = model.init_params(init_key, data)
    algorithm = build(model, data, completion, mstep, fixed)
    if accelerator is not None:
        algorithm = accelerator(algorithm, model, data, fixed)
    state = algorithm.init(init_params)
    step_shapes = jax.eval_shape(algorithm.step, run_key, state)
    no_failure = jnp.zeros((), jnp.result_type(step_shapes[1].failure))
    not_failed = jnp.asarray(-1)

    needs_final_step = loglik is not None and loglik.needs_draws(model)

    def final_entry(state, active):
        """ℓ(θ_T): the model's own, or the estimator's (one more E-step when it needs draws at θ_T)."""
        if needs_final_step:
            _, info = jax.lax.cond(
                active, lambda: algorithm.step(jax.random.fold_in(run_key, num_iters + 1), state),
                lambda: (state, _filled(step_shapes[1])))
        else:
            value = jnp.asarray(observed_loglik(model, state.params, data), jnp.result_type(float))
            info = EMInfo(value, jnp.where(jnp.isnan(value), jnp.nan, 0.0))
        return record_loglik(num_iters, state.params, info, active)

    def nan_params(params):
        return _filled(jax.eval_shape(lambda: params))

    if stops_early:
        def step_key(iteration):
            return jax.random.fold_in(run_key, iteration)
    else:
        step_keys = jax.random.split(run_key, capacity)

        def step_key(iteration):
            return step_keys[iteration]

    def empty_buffer(leaf, length):
        """NaN (or 0 for integers) buffer for ``length`` copies of ``leaf`` (an array or shape struct)."""
        fill = jnp.nan if jnp.issubdtype(leaf.dtype, jnp.inexact) else 0
        return jnp.full((length,) + tuple(leaf.shape), fill, leaf.dtype)

    dtype = jnp.result_type(float)
    buffers = (
        LoglikRecord(*(jnp.full((capacity + 1,), jnp.nan, dtype) for _ in range(3))),
        jax.tree_util.tree_map(lambda leaf: empty_buffer(leaf, capacity + 1), step_shapes[0].params),
        jax.tree_util.tree_map(lambda leaf: empty_buffer(leaf, capacity), step_shapes[1].diagnostics),
    )

    def set_at(buffer, index, value):
        return jax.tree_util.tree_map(lambda buf, leaf: buf.at[index].set(leaf), buffer, value)

    def write(buffers, index, record, params, diagnostics=None):
        records, params_buffer, diagnostics_buffer = buffers
        if diagnostics is not None:
            diagnostics_buffer = set_at(diagnostics_buffer, index, diagnostics)
        return set_at(records, index, record), set_at(params_buffer, index, params), diagnostics_buffer

    def keep_going(carry):
        iteration, _, _, _, converged, failure, _ = carry
        return (iteration < num_iters) & ~converged & (failure == 0)

    def body(carry):
        iteration, state, previous_loglik, streak, _, _, buffers = carry
        new_state, info = algorithm.step(step_key(iteration), state)
        buffers = write(buffers, iteration, record_loglik(iteration, state.params, info), state.params,
                        info.diagnostics)
        failure = info.failure
        converged = jnp.asarray(info.converged) if stops_early else jnp.asarray(False)
        if tol is not None and sampled:
            small = relative_change(state.params, new_state.params) <= tol
            streak = jnp.where(small, streak + 1, 0)
            converged = converged | (streak >= SAMPLED_TOL_STREAK)
        elif tol is not None:
            converged = converged | ((iteration > 0) & (jnp.abs(info.loglik - previous_loglik) <= tol))
        new_state = _tree_where(failure == 0, new_state, state)
        report_progress(iteration + 1)
        return iteration + 1, new_state, jnp.asarray(info.loglik, dtype), streak, converged & (failure == 0), failure, buffers

    start = (jnp.asarray(0), state, jnp.full((), jnp.nan, dtype), jnp.asarray(0), jnp.asarray(False), no_failure,
             buffers)
    iterations, state, _, _, converged, failure, buffers = jax.lax.while_loop(keep_going, body, start)
    active = failure == 0
    failed_at = jnp.where(active, -1, iterations - 1)
    iterations = jnp.where(active, iterations, iterations - 1)
    final_params = _tree_where(active, state.params, nan_params(state.params))
    final_record = final_entry(state, active)
    records, params, diagnostics = buffers
    end = jnp.where(active, iterations, num_iters)  # a failed run leaves its buffers' NaN after entry t
    records = _tree_where(active, set_at(records, end, final_record), records)
    params = _tree_where(active, set_at(params, end, final_params), params)
    return state.params, records, params, diagnostics, iterations, converged, failure, failed_at

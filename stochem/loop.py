"""One EM run, traced: a ``lax.scan`` over a fixed number of iterations, or a ``lax.while_loop`` that may stop early.

The loop records, per iteration t, ℓ(θ_t) with its standard error, θ_t and what
the completion reported (its diagnostics). A run stops early when a
tolerance on ℓ is given (``|ℓ(θ_t) − ℓ(θ_{t−1})| <= tol``) or when the
completion's own stopping rule fires (``info.converged``); its iterates are
then written into buffers of length ``num_iters + 1`` (NaN after the last).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from stochem.base import EMInfo
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
    """``record(iteration, params, info) -> LoglikRecord`` for trace entry ``iteration``.

    ``info`` is what the EM step reported at ``params`` (its ℓ, error and
    draws). Without an estimator its ℓ is kept. With one (``fit(...,
    loglik=...)``), ℓ(θ_t) is estimated at iterations ``0, every, 2·every, …``
    and at the last entry, NaN elsewhere.
    """
    if loglik is None:
        return lambda iteration, params, info: _computed(info)
    estimate = loglik(model)
    needs_draws = loglik.needs_draws(model)
    stream = jax.random.fold_in(key, _LOGLIK_STREAM)
    dtype = jnp.result_type(float)

    def record(iteration, params, info):
        draws = info.draws if needs_draws else None

        def run():
            value = estimate(jax.random.fold_in(stream, iteration), params, data, draws)
            return LoglikRecord(*(jnp.asarray(field, dtype) for field in value))

        def skip():
            return LoglikRecord(*(jnp.full((), jnp.nan, dtype) for _ in range(3)))

        due = (iteration % loglik.every == 0) | (iteration == num_iters)
        return jax.lax.cond(due, run, skip)

    return record


def run_em(model, completion, mstep, fixed, accelerator, num_iters, tol, loglik, stops_early,
           key, init_params, data):
    """One EM run (traced).

    Returns:
        ``(params, loglik_records, params_trace, diagnostics_trace, num_iters, converged)`` with
        ``loglik_records`` a :class:`LoglikRecord` of ``[T + 1]`` arrays.
    """
    init_key, run_key = jax.random.split(key)
    record_loglik = loglik_recorder(model, loglik, key, data, num_iters)
    if init_params is None:
        init_params = model.init_params(init_key, data)
    algorithm = build(model, data, completion, mstep, fixed)
    if accelerator is not None:
        algorithm = accelerator(algorithm, model, data, fixed)
    state = algorithm.init(init_params)

    needs_final_step = loglik is not None and loglik.needs_draws(model)

    def final_entry(state):
        """ℓ(θ_T): the model's own, or the estimator's (one more E-step when it needs draws at θ_T)."""
        if needs_final_step:
            _, info = algorithm.step(jax.random.fold_in(run_key, num_iters + 1), state)
        else:
            value = jnp.asarray(observed_loglik(model, state.params, data), jnp.result_type(float))
            info = EMInfo(value, jnp.where(jnp.isnan(value), jnp.nan, 0.0))
        return record_loglik(num_iters, state.params, info)

    if not stops_early:

        def body(state, step):
            step_key, iteration = step
            new_state, info = algorithm.step(step_key, state)
            return new_state, (record_loglik(iteration, state.params, info), state.params, info.diagnostics)

        steps = (jax.random.split(run_key, num_iters), jnp.arange(num_iters))
        state, (records, params, diagnostics) = jax.lax.scan(body, state, steps)
        records = jax.tree_util.tree_map(lambda stacked, last: jnp.append(stacked, last), records,
                                         final_entry(state))
        params = jax.tree_util.tree_map(
            lambda stacked, last: jnp.concatenate([stacked, last[None]]), params, state.params
        )
        return state.params, records, params, diagnostics, jnp.asarray(num_iters), jnp.asarray(False)

    def empty_buffer(leaf, length):
        """NaN (or 0 for integers) buffer for ``length`` copies of ``leaf`` (an array or shape struct)."""
        fill = jnp.nan if jnp.issubdtype(leaf.dtype, jnp.inexact) else 0
        return jnp.full((length,) + tuple(leaf.shape), fill, leaf.dtype)

    step_shapes = jax.eval_shape(algorithm.step, run_key, state)
    dtype = jnp.result_type(float)
    buffers = (
        LoglikRecord(*(jnp.full((num_iters + 1,), jnp.nan, dtype) for _ in range(3))),
        jax.tree_util.tree_map(lambda leaf: empty_buffer(leaf, num_iters + 1), step_shapes[0].params),
        jax.tree_util.tree_map(lambda leaf: empty_buffer(leaf, num_iters), step_shapes[1].diagnostics),
    )

    def set_at(buffer, index, value):
        return jax.tree_util.tree_map(lambda buf, leaf: buf.at[index].set(leaf), buffer, value)

    def write(buffers, index, record, params, diagnostics=None):
        records, params_buffer, diagnostics_buffer = buffers
        if diagnostics is not None:
            diagnostics_buffer = set_at(diagnostics_buffer, index, diagnostics)
        return set_at(records, index, record), set_at(params_buffer, index, params), diagnostics_buffer

    def keep_going(carry):
        iteration, _, _, converged, _ = carry
        return (iteration < num_iters) & ~converged

    def body(carry):
        iteration, state, previous_loglik, _, buffers = carry
        new_state, info = algorithm.step(jax.random.fold_in(run_key, iteration), state)
        buffers = write(buffers, iteration, record_loglik(iteration, state.params, info), state.params,
                        info.diagnostics)
        converged = jnp.asarray(info.converged)
        if tol is not None:
            converged = converged | ((iteration > 0) & (jnp.abs(info.loglik - previous_loglik) <= tol))
        return iteration + 1, new_state, info.loglik, converged, buffers

    start = (jnp.asarray(0), state, jnp.full((), jnp.nan, jnp.result_type(float)), jnp.asarray(False), buffers)
    iterations, state, _, converged, buffers = jax.lax.while_loop(keep_going, body, start)
    records, params, diagnostics = write(buffers, iterations, final_entry(state), state.params)
    return state.params, records, params, diagnostics, iterations, converged

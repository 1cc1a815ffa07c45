"""One EM run, traced: a ``lax.scan`` over a fixed number of iterations, or a ``lax.while_loop`` that may stop early.

The loop records, per iteration t, ℓ(θ_t) with its standard error, θ_t and what
the completion reported (its diagnostics). A run stops early when a
tolerance on ℓ is given (``|ℓ(θ_t) − ℓ(θ_{t−1})| <= tol``) or when the
completion's own stopping rule fires (``info.converged``); its iterates are
then written into buffers of length ``num_iters + 1`` (NaN after the last).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from stochem import progress as progress_bar
from stochem.em import build, observed_loglik

# The log-likelihood estimator draws from its own stream, fold_in(key, this):
# opting in to an estimate leaves the EM iterates unchanged.
_LOGLIK_STREAM = 0x4C4C


def _exact_or_nan_stderr(loglik):
    """``(ℓ, se)`` for an ℓ the model computed: se is 0, or NaN where ℓ is NaN."""
    loglik = jnp.asarray(loglik, dtype=jnp.result_type(float))
    return loglik, jnp.where(jnp.isnan(loglik), jnp.nan, 0.0)


def loglik_recorder(model, loglik, key, data, num_iters):
    """``record(iteration, params, computed) -> (loglik, stderr)`` for trace entry ``iteration``.

    ``computed`` is the ``(ℓ, se)`` the EM step reported. Without an estimator
    it is kept. With one (``fit(..., loglik=...)``), ℓ(θ_t) is estimated at
    iterations ``0, every, 2·every, …`` and at the last entry, NaN elsewhere.
    """
    if loglik is None:
        def keep(iteration, params, computed):
            del iteration, params
            value, stderr = computed
            dtype = jnp.result_type(float)
            return jnp.asarray(value, dtype), jnp.asarray(stderr, dtype)

        return keep
    estimate = loglik(model)
    stream = jax.random.fold_in(key, _LOGLIK_STREAM)
    dtype = jnp.result_type(float)

    def record(iteration, params, computed):
        del computed

        def run():
            value = estimate(jax.random.fold_in(stream, iteration), params, data)
            return jnp.asarray(value.loglik, dtype), jnp.asarray(value.stderr, dtype)

        def skip():
            return jnp.full((), jnp.nan, dtype), jnp.full((), jnp.nan, dtype)

        due = (iteration % loglik.every == 0) | (iteration == num_iters)
        return jax.lax.cond(due, run, skip)

    return record


def run_em(model, completion, mstep, fixed, accelerator, num_iters, tol, loglik, stops_early,
           key, init_params, data, *, progress=False):
    """One EM run (traced).

    With ``progress=True`` each iteration also reports its count to the open
    progress bar (:mod:`stochem.progress`); with ``False`` nothing of it is traced.

    Returns:
        ``(params, loglik_trace, params_trace, diagnostics_trace, num_iters, converged, stderr_trace)``.
    """
    init_key, run_key = jax.random.split(key)
    record_loglik = loglik_recorder(model, loglik, key, data, num_iters)
    if init_params is None:
        init_params = model.init_params(init_key, data)
    algorithm = build(model, data, completion, mstep, fixed)
    if accelerator is not None:
        algorithm = accelerator(algorithm, model, data, fixed)
    state = algorithm.init(init_params)

    def report_progress(iterations_done):
        if progress:
            progress_bar.report(iterations_done, progress_bar.every_for(num_iters))

    def final_entry(params):
        return record_loglik(num_iters, params, _exact_or_nan_stderr(observed_loglik(model, params, data)))

    if not stops_early:

        def body(state, step):
            step_key, iteration = step
            new_state, info = algorithm.step(step_key, state)
            loglik_t, stderr_t = record_loglik(iteration, state.params, (info.loglik, info.loglik_stderr))
            report_progress(iteration + 1)
            return new_state, (loglik_t, stderr_t, state.params, info.diagnostics)

        steps = (jax.random.split(run_key, num_iters), jnp.arange(num_iters))
        state, (logliks, stderrs, params, diagnostics) = jax.lax.scan(body, state, steps)
        final_loglik, final_stderr = final_entry(state.params)
        logliks = jnp.append(logliks, final_loglik)
        stderrs = jnp.append(stderrs, final_stderr)
        params = jax.tree_util.tree_map(
            lambda stacked, last: jnp.concatenate([stacked, last[None]]), params, state.params
        )
        return state.params, logliks, params, diagnostics, jnp.asarray(num_iters), jnp.asarray(False), stderrs

    def empty_buffer(leaf, length):
        """NaN (or 0 for integers) buffer for ``length`` copies of ``leaf`` (an array or shape struct)."""
        fill = jnp.nan if jnp.issubdtype(leaf.dtype, jnp.inexact) else 0
        return jnp.full((length,) + tuple(leaf.shape), fill, leaf.dtype)

    step_shapes = jax.eval_shape(algorithm.step, run_key, state)
    buffers = (
        jnp.full((num_iters + 1,), jnp.nan),
        jax.tree_util.tree_map(lambda leaf: empty_buffer(leaf, num_iters + 1), step_shapes[0].params),
        jax.tree_util.tree_map(lambda leaf: empty_buffer(leaf, num_iters), step_shapes[1].diagnostics),
        jnp.full((num_iters + 1,), jnp.nan),
    )

    def write(buffers, index, loglik, params, stderr, diagnostics=None):
        loglik_buffer, params_buffer, diagnostics_buffer, stderr_buffer = buffers
        if diagnostics is not None:
            diagnostics_buffer = jax.tree_util.tree_map(
                lambda buf, leaf: buf.at[index].set(leaf), diagnostics_buffer, diagnostics
            )
        return (
            loglik_buffer.at[index].set(loglik),
            jax.tree_util.tree_map(lambda buf, leaf: buf.at[index].set(leaf), params_buffer, params),
            diagnostics_buffer,
            stderr_buffer.at[index].set(stderr),
        )

    def keep_going(carry):
        iteration, _, _, converged, _ = carry
        return (iteration < num_iters) & ~converged

    def body(carry):
        iteration, state, previous_loglik, _, buffers = carry
        new_state, info = algorithm.step(jax.random.fold_in(run_key, iteration), state)
        loglik_t, stderr_t = record_loglik(iteration, state.params, (info.loglik, info.loglik_stderr))
        buffers = write(buffers, iteration, loglik_t, state.params, stderr_t, info.diagnostics)
        report_progress(iteration + 1)
        converged = jnp.asarray(info.converged)
        if tol is not None:
            converged = converged | ((iteration > 0) & (jnp.abs(info.loglik - previous_loglik) <= tol))
        return iteration + 1, new_state, info.loglik, converged, buffers

    start = (jnp.asarray(0), state, jnp.full((), jnp.nan, jnp.result_type(float)), jnp.asarray(False), buffers)
    iterations, state, _, converged, buffers = jax.lax.while_loop(keep_going, body, start)
    final_loglik, final_stderr = final_entry(state.params)
    logliks, params, diagnostics, stderrs = write(buffers, iterations, final_loglik, state.params, final_stderr)
    return state.params, logliks, params, diagnostics, iterations, converged, stderrs

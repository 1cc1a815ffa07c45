"""Online EM over a stream of chunks, for data that do not fit in memory.

Chunks are read one at a time (from a generator, files, a database cursor)
and never kept. For chunk k with n_k rows the per-row statistics are smoothed
by stochastic approximation and the M-step sees them scaled to the rows seen
so far::

    s_k = s_{k-1} + γ_k (T(chunk_k; θ_{k-1}) / n_k − s_{k-1}),   θ_k = M(N_k s_k),

with N_k = n_1 + … + n_k. One compiled update serves every chunk of the same
size (a differently sized last chunk compiles once more).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from stochem.capabilities import ClosedFormMStep, ExactEStep, RowData, require
from stochem.completion.stochastic_approximation import saem_step_size
from stochem.em import observed_loglik
from stochem.results import FitResult, Trace
from stochem.robbins_monro import robbins_monro_step, step_size_at


@functools.lru_cache(maxsize=16)
def _chunk_update(model):
    def update(params, average, rows_seen, gamma, chunk):
        rows = model.num_rows(chunk)
        per_row = jax.tree_util.tree_map(lambda leaf: leaf / rows, model.expected_stats(params, chunk))
        average = robbins_monro_step(average, per_row, gamma)
        rows_seen = rows_seen + rows
        new_params = model.m_step(jax.tree_util.tree_map(lambda leaf: leaf * rows_seen, average))
        chunk_loglik = observed_loglik(model, params, chunk) / rows
        return new_params, average, rows_seen, chunk_loglik

    return jax.jit(update)


def fit_stream(model, chunks, *, init, step_size=None, progress=False) -> FitResult:
    """Online EM over an iterable of data chunks, each completed exactly once.

    Args:
        model: a model with ``expected_stats`` and ``m_step`` (statistics are
            sums over rows).
        chunks: an iterable of data chunks in the model's data format.
        init: initial parameters (params NamedTuple or dict).
        step_size: ``count -> γ``; default ``(k + 1)^−0.6``.
        progress: print a line per chunk.

    Returns:
        A ``FitResult`` whose trace has one entry per chunk plus the start;
        ``trace.loglik`` holds each chunk's average log-likelihood per row at
        the parameters it was completed with (NaN for the last entry).
    """
    for capability in (ExactEStep, ClosedFormMStep, RowData):
        require(model, capability, "fit_stream(...)")
    step_size = saem_step_size(burn_in=0, exponent=0.6) if step_size is None else step_size
    update = _chunk_update(model)
    params, average, rows_seen = None, None, 0.0
    history, logliks = [], []
    for count, chunk in enumerate(chunks):
        chunk = model.prepare_data(chunk)
        if params is None:
            params = model.prepare_params(init, chunk)
            history.append(params)
            average = optax.tree_utils.tree_zeros_like(jax.eval_shape(lambda: model.expected_stats(params, chunk)))
        params, average, rows_seen, chunk_loglik = update(
            params, average, rows_seen, step_size_at(step_size, count), chunk)
        history.append(params)
        logliks.append(float(chunk_loglik))
        if progress:
            print(f"chunk {count + 1}: {int(rows_seen)} rows seen, mean log-lik {logliks[-1]:.4f}", flush=True)
    if params is None:
        raise ValueError("chunks was empty; give at least one chunk of data.")
    stacked = jax.tree_util.tree_map(lambda *leaves: jnp.stack(leaves), *history)
    loglik = jnp.asarray(np.append(logliks, np.nan))
    return FitResult(params, Trace(loglik, stacked), len(logliks), False)

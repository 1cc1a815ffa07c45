"""Exact EM over data larger than memory: every iteration reads the rows from disk in chunks.

For models whose statistics are sums over rows (``ExactEStep`` with a
``ClosedFormMStep``), one EM iteration is::

    S(θ_t) = Σ_chunks E[T(o_c, m_c) | o_c; θ_t],   ℓ(θ_t) = Σ_chunks ℓ_c(θ_t),   θ_{t+1} = M(S(θ_t)),

the same statistics as the in-memory E-step, added in another order, so the
iterates equal the in-memory fit's up to rounding. Memory holds at most two
chunks (the one being completed and the next one, read by a background thread
while JAX computes; JAX dispatches asynchronously, so reading overlaps the
E-step). Sources: a ``.npy`` file (memory-mapped), a Parquet file (read by
pyarrow in row batches; every column is a feature), or any array-like with
``shape`` and row slicing (e.g. ``np.load(path, mmap_mode="r")``).

One compiled E-step serves every chunk: the rows left over after the full
chunks join the last chunk (which then compiles once more).
"""

from __future__ import annotations

import concurrent.futures
import functools
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from stochem import _validation
from stochem.capabilities import ClosedFormMStep, ExactEStep, require
from stochem.results import FitResult, Trace


class NpyRows:
    """Row chunks of a ``.npy`` file or an array-like (a memory map reads only the rows asked for)."""

    def __init__(self, source):
        self.array = np.load(source, mmap_mode="r") if isinstance(source, (str, Path)) else source
        if np.ndim(self.array) == 0:
            raise _validation.ArgumentError("source", "source holds a scalar; expected one row per observation.")
        self.num_rows = int(self.array.shape[0])

    def read(self, start: int, stop: int) -> np.ndarray:
        return np.array(self.array[start:stop])


class ParquetRows:
    """Row chunks of a Parquet file; the columns (all numeric) are the features, in file order."""

    def __init__(self, path):
        import pyarrow.parquet as pq

        self.file = pq.ParquetFile(path)
        self.num_rows = self.file.metadata.num_rows

    def read(self, start: int, stop: int) -> np.ndarray:
        # Row groups overlapping [start, stop), then the rows wanted of them.
        metadata, offset, groups, first = self.file.metadata, 0, [], None
        for group in range(metadata.num_row_groups):
            rows = metadata.row_group(group).num_rows
            if offset + rows > start and offset < stop:
                groups.append(group)
                first = offset if first is None else first
            offset += rows
        table = self.file.read_row_groups(groups).slice(start - first, stop - start)
        return np.column_stack([column.to_numpy() for column in table.columns])


def open_rows(source):
    """A row reader for ``source``: a ``.parquet`` path, a ``.npy`` path, or an array-like."""
    if isinstance(source, (str, Path)) and str(source).endswith((".parquet", ".pq")):
        return ParquetRows(source)
    if isinstance(source, (str, Path)) and not str(source).endswith(".npy"):
        raise _validation.ArgumentError("source", f"source {source} is neither a .npy nor a .parquet file.")
    return NpyRows(source)


def chunk_bounds(num_rows: int, chunk_rows: int) -> list[tuple[int, int]]:
    """``[(start, stop), ...]``: chunks of ``chunk_rows`` rows, the leftover rows joined to the last one."""
    num_full = max(num_rows // chunk_rows, 1)
    bounds = [(index * chunk_rows, (index + 1) * chunk_rows) for index in range(num_full)]
    bounds[-1] = (bounds[-1][0], num_rows)
    return bounds


@functools.lru_cache(maxsize=16)
def _chunk_estep(model):
    return jax.jit(model.expected_stats_and_loglik)


@functools.lru_cache(maxsize=16)
def _mstep(model):
    return jax.jit(model.m_step)


def _pass(model, params, reader, bounds, pool):
    """``(Σ statistics, Σ ℓ)`` over the chunks; the next chunk is read while this one is completed."""
    estep = _chunk_estep(model)
    total_stats, total_loglik = None, 0.0
    def load(start, stop):
        return model.prepare_data(reader.read(start, stop))

    pending = pool.submit(load, *bounds[0])
    for index in range(len(bounds)):
        chunk = pending.result()
        if index + 1 < len(bounds):
            pending = pool.submit(load, *bounds[index + 1])
        stats, loglik = estep(params, chunk)
        total_stats = stats if total_stats is None else jax.tree_util.tree_map(jnp.add, total_stats, stats)
        total_loglik = total_loglik + loglik
    return total_stats, total_loglik


def fit_out_of_core(model, source, *, init=None, num_iters: int = 100, chunk_rows: int = 1 << 20,
                    tol: float | None = None, key=0) -> FitResult:
    """Exact EM with the data read from disk in chunks at every iteration.

    Args:
        model: a model with an exact E-step and a closed-form M-step whose
            statistics are sums over rows (e.g. ``GaussianMixture``).
        source: a ``.npy`` path (memory-mapped), a ``.parquet`` path, or an
            array-like with row slicing (e.g. a ``np.memmap``).
        init: initial parameters; ``None`` uses the model's seeded start
            computed on the first chunk (``key``).
        num_iters: maximum number of EM iterations ``T``.
        chunk_rows: rows per chunk; memory holds about two chunks.
        tol: stop once ℓ changes by at most ``tol`` between iterations (as ``fit`` does).
        key: seed of the start when ``init`` is ``None``.

    Returns:
        A :class:`FitResult` like ``fit``'s: ``trace.loglik[t] = ℓ(θ_t)``
        (``T + 1`` entries), ``trace.params`` stacked over iterations.

    Example:
        >>> import numpy as np, stochem as se, tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "x.npy")
        >>> np.save(path, np.r_[np.zeros(50), np.ones(50) * 4] + np.linspace(-1, 1, 100))
        >>> result = se.fit_out_of_core(se.models.GaussianMixture(2), path, chunk_rows=32, num_iters=20,
        ...     init={"weights": [0.5, 0.5], "means": [[1.0], [3.0]], "covariances": [[[1.0]], [[1.0]]]})
        >>> sorted(round(float(m), 2) for m in result.params.means[:, 0])
        [-0.51, 4.51]
    """
    require(model, ExactEStep, "fit_out_of_core(...)")
    require(model, ClosedFormMStep, "fit_out_of_core(...)")
    num_iters = _validation.as_int("num_iters", num_iters, minimum=0)
    chunk_rows = _validation.as_int("chunk_rows", chunk_rows, minimum=1)
    tol = None if tol is None else float(tol)
    reader = open_rows(source)
    if reader.num_rows == 0:
        raise _validation.ArgumentError("source", "source has no rows.")
    bounds = chunk_bounds(reader.num_rows, chunk_rows)
    first = model.prepare_data(reader.read(*bounds[0]))
    if init is None:
        params = model.init_params(jax.random.PRNGKey(key), first)
    else:
        params = model.prepare_params(init, first)
    del first
    mstep = _mstep(model)
    history, logliks, converged = [params], [], False
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        for _ in range(num_iters):
            stats, loglik = _pass(model, params, reader, bounds, pool)
            logliks.append(float(loglik))
            params = mstep(stats)
            history.append(params)
            # As in ``fit``: the step that sees |ℓ(θ_t) − ℓ(θ_{t−1})| <= tol still makes θ_{t+1}.
            if tol is not None and len(logliks) > 1 and abs(logliks[-1] - logliks[-2]) <= tol:
                converged = True
                break
        logliks.append(float(_pass(model, params, reader, bounds, pool)[1]))
    stacked = jax.tree_util.tree_map(lambda *leaves: jnp.stack(leaves), *history)
    return FitResult(params, Trace(jnp.asarray(logliks), stacked), len(history) - 1, converged)

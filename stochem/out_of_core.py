"""Exact EM over data larger than memory: every iteration reads the rows from disk in chunks.

For models whose statistics are sums over rows (``ExactEStep`` with a
``ClosedFormMStep``), one EM iteration is::

    S(θ_t) = Σ_chunks E[T(o_c, m_c) | o_c; θ_t],   ℓ(θ_t) = Σ_chunks ℓ_c(θ_t),   θ_{t+1} = M(S(θ_t)),

the same statistics as the in-memory E-step, added in another order, so the
iterates equal the in-memory fit's up to rounding.

How the reading overlaps the computation: JAX dispatches each chunk's E-step
asynchronously (one compiled call that also adds the chunk's statistics to the
running sums), while a background thread reads the next chunk; the main
thread waits for the chunk before the one just dispatched, so at most three
chunks are alive (one being completed, one queued, one being read) and memory
stays bounded by the chunk size. A ``.npy`` file is read with ``preadv`` into
one of three reused, 64-byte-aligned buffers (no memory map: mapped file pages
would count in the process's resident memory and are read by page faults),
which JAX on CPU then takes without another copy. Each chunk is checked by the model's ``prepare_data`` the first
time it is read; later passes reuse the checked layout (the file must not
change during the fit). Sources: a ``.npy`` file, a Parquet file (read by
pyarrow in row groups; every column is a feature), or any array-like with
``shape`` and row slicing (e.g. ``np.load(path, mmap_mode="r")``).

One compiled E-step serves every chunk: the rows left over after the full
chunks join the last chunk (which then compiles once more).
"""

from __future__ import annotations

import collections
import concurrent.futures
import functools
import os
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from stochem import _validation
from stochem.capabilities import ClosedFormMStep, ExactEStep, TractableLikelihood, require
from stochem.results import FitResult, Trace

# JAX takes a host array without copying it when its data start on this boundary (on CPU).
_ALIGNMENT = 64


def aligned_empty(shape, dtype) -> np.ndarray:
    """``np.empty(shape, dtype)`` whose data start on a 64-byte boundary, so ``jax.device_put`` can alias it."""
    dtype = np.dtype(dtype)
    num_bytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    raw = np.empty(num_bytes + _ALIGNMENT, np.uint8)
    offset = -raw.ctypes.data % _ALIGNMENT
    return raw[offset:offset + num_bytes].view(dtype).reshape(shape)


class NpyRows:
    """Row chunks of a ``.npy`` file (read with ``preadv``) or of an array-like (sliced)."""

    def __init__(self, source):
        self.descriptor, self.array = None, source
        if isinstance(source, (str, Path)):
            with open(source, "rb") as file:
                version = np.lib.format.read_magic(file)
                shape, fortran_order, dtype = (np.lib.format.read_array_header_1_0(file) if version == (1, 0)
                                               else np.lib.format.read_array_header_2_0(file))
                offset = file.tell()
            if fortran_order or dtype.hasobject or len(shape) == 0:
                self.array = np.load(source, mmap_mode="r")  # rows are not contiguous: slice a memory map
            else:
                self.descriptor = os.open(source, os.O_RDONLY)
                self.shape, self.dtype, self.offset = shape, dtype, offset
                self.row_bytes = dtype.itemsize * int(np.prod(shape[1:], dtype=np.int64))
        if self.descriptor is None:
            if np.ndim(self.array) == 0:
                raise _validation.ArgumentError("source", "source holds a scalar; expected one row per observation.")
            self.shape = tuple(self.array.shape)
        self.num_rows = int(self.shape[0])

    def buffer(self, num_rows: int) -> np.ndarray | None:
        """An aligned buffer for ``num_rows`` rows that :meth:`read` can fill (``None`` for an array-like)."""
        if self.descriptor is None:
            return None
        return aligned_empty((num_rows,) + tuple(self.shape[1:]), self.dtype)

    def read(self, start: int, stop: int, out: np.ndarray | None = None) -> np.ndarray:
        """Rows ``start:stop``, in the first rows of ``out`` (from :meth:`buffer`) if given, else in new memory."""
        if self.descriptor is None:
            return np.array(self.array[start:stop])
        shape = (stop - start,) + tuple(self.shape[1:])
        rows = aligned_empty(shape, self.dtype) if out is None else out[:stop - start]
        view, position, done = memoryview(rows.reshape(-1).view(np.uint8)), self.offset + start * self.row_bytes, 0
        while done < len(view):
            read = os.preadv(self.descriptor, [view[done:]], position + done)
            if read == 0:
                raise OSError(f"the .npy file ended {len(view) - done} bytes early (truncated?).")
            done += read
        return rows

    def close(self) -> None:
        if self.descriptor is not None:
            os.close(self.descriptor)
            self.descriptor = None


class ParquetRows:
    """Row chunks of a Parquet file; the columns (all numeric) are the features, in file order."""

    def __init__(self, path):
        import pyarrow.parquet as pq

        self.file = pq.ParquetFile(path)
        self.num_rows = self.file.metadata.num_rows

    def close(self) -> None:
        self.file.close()

    def buffer(self, num_rows: int) -> None:
        del num_rows  # pyarrow hands out its own arrays

    def read(self, start: int, stop: int, out=None) -> np.ndarray:
        del out
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
    """``(params, chunk) -> (S_chunk, ℓ_chunk)``: the first chunk's call."""
    return jax.jit(model.expected_stats_and_loglik)


@functools.lru_cache(maxsize=16)
def _accumulating_estep(model):
    """``(params, chunk, (S, ℓ)) -> (S + S_chunk, ℓ + ℓ_chunk)``: one compiled call per later chunk."""
    def step(params, chunk, totals):
        stats, loglik = model.expected_stats_and_loglik(params, chunk)
        return jax.tree_util.tree_map(jnp.add, totals, (stats, loglik))

    return jax.jit(step)


@functools.lru_cache(maxsize=16)
def _chunk_loglik(model):
    """``(params, chunk) -> ℓ_chunk`` and ``(params, chunk, ℓ) -> ℓ + ℓ_chunk``: the last pass needs no statistics."""
    def add(params, chunk, total):
        return total + model.log_marginal(params, chunk)

    return jax.jit(model.log_marginal), jax.jit(add)


@functools.lru_cache(maxsize=16)
def _mstep(model):
    return jax.jit(model.m_step)


class _Chunks:
    """The chunks in file order, again and again; chunk ``i + 1`` is read (in a thread) while ``i`` is completed.

    A chunk goes through ``model.prepare_data`` the first time it is read. When
    that gave back the rows themselves as a float array (perhaps reshaped), later
    reads only reshape them; otherwise every read is prepared again.

    Reads from a ``.npy`` file go round three aligned buffers (fresh memory for
    every chunk would cost a page fault per page). On CPU JAX aliases them, so a
    buffer is refilled only once the E-step that read it is done: read ``c + 1``
    starts after chunk ``c − 2``'s E-step has finished (:meth:`dispatched_one`).
    """

    RING = 3

    def __init__(self, model, reader, bounds, pool):
        self.model, self.reader, self.bounds, self.pool = model, reader, bounds, pool
        self.checked, self.prepared_shape, self.reads = set(), None, 0
        largest = max(stop - start for start, stop in bounds)
        self.buffers = [reader.buffer(largest) for _ in range(self.RING)]
        self.dispatched = collections.deque()  # running sums of the chunks dispatched and not yet waited for
        self.pending = pool.submit(self._load, 0, self.buffers[0])

    def _load(self, index, buffer):
        # A prepared NumPy chunk is put on the device here, in the reading thread; a buffer read
        # from a .npy file is aligned, so on CPU JAX takes it without copying.
        rows = self.reader.read(*self.bounds[index], out=buffer)
        if index in self.checked and self.prepared_shape is not None and rows.dtype == np.float64:
            return jax.device_put(rows.reshape((rows.shape[0],) + self.prepared_shape))
        prepared = self.model.prepare_data(rows)
        self.checked.add(index)
        if not isinstance(prepared, np.ndarray):
            return prepared
        if prepared.dtype == np.float64 and prepared.size == rows.size and prepared.shape[0] == rows.shape[0]:
            self.prepared_shape = tuple(prepared.shape[1:])
        return jax.device_put(prepared)

    def __len__(self):
        return len(self.bounds)

    def dispatched_one(self, totals):
        """Note a dispatched chunk; wait for the one before it (its buffer is freed, one chunk stays queued)."""
        self.dispatched.append(totals)
        if len(self.dispatched) > 1:
            jax.block_until_ready(self.dispatched.popleft())

    def next(self, index):
        """Chunk ``index`` (the one read ahead), and the read of the one after it started."""
        chunk = self.pending.result()
        self.reads += 1
        self.pending = self.pool.submit(self._load, (index + 1) % len(self.bounds),
                                        self.buffers[self.reads % self.RING])
        return chunk


def _pass(params, chunks, first, step):
    """``first(params, chunk 0)``, then ``step(params, chunk, totals)`` for each later chunk: ``(Σ S, Σ ℓ)`` or ``Σ ℓ``."""
    totals = None
    for index in range(len(chunks)):
        chunk = chunks.next(index)
        totals = first(params, chunk) if totals is None else step(params, chunk, totals)
        del chunk
        chunks.dispatched_one(totals)  # across passes too: with one chunk a pass, passes do not pile up
    return totals


def fit_out_of_core(model, source, *, init=None, num_iters: int = 100, chunk_rows: int = 1 << 19,
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
        chunk_rows: rows per chunk; memory holds three buffers of the largest chunk (the last
            one takes the leftover rows: up to ``2 · chunk_rows − 1``).
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
    try:
        return _fit(model, reader, init, num_iters, chunk_rows, tol, key)
    finally:
        reader.close()


def _fit(model, reader, init, num_iters, chunk_rows, tol, key) -> FitResult:
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
        chunks = _Chunks(model, reader, bounds, pool)
        for _ in range(num_iters):
            stats, loglik = _pass(params, chunks, _chunk_estep(model), _accumulating_estep(model))
            params = mstep(stats)
            logliks.append(loglik)  # on the device: read back only where the tolerance needs it
            history.append(params)
            # As in ``fit``: the step that sees |ℓ(θ_t) − ℓ(θ_{t−1})| <= tol still makes θ_{t+1}.
            if tol is not None and len(logliks) > 1 and abs(float(logliks[-1]) - float(logliks[-2])) <= tol:
                converged = True
                break
        # ℓ(θ_T) as ``fit`` computes it: the model's log_marginal, a lighter pass than the E-step.
        if isinstance(model, TractableLikelihood):
            logliks.append(_pass(params, chunks, *_chunk_loglik(model)))
        else:
            logliks.append(_pass(params, chunks, _chunk_estep(model), _accumulating_estep(model))[1])
        if not chunks.pending.cancel():  # the read started for a next pass ends before the file closes
            chunks.pending.result()
    # Stacked on the host: a new number of iterations compiles nothing.
    stacked = jax.tree_util.tree_map(lambda *leaves: jnp.asarray(np.stack([np.asarray(leaf) for leaf in leaves])),
                                     *history)
    logliks = jnp.asarray(np.array([float(loglik) for loglik in logliks]))
    return FitResult(params, Trace(logliks, stacked), len(history) - 1, converged)

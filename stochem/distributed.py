"""One fit over several processes: data sharded along the observations with JAX's distributed runtime.

In a program started on every process with :func:`initialize` (a thin wrapper
of ``jax.distributed.initialize`` that picks gloo for CPU collectives), each
process holds its own rows of the data. :func:`shard_rows` assembles them into
one global ``jax.Array`` sharded along the observations over all processes'
devices (``jax.make_array_from_process_local_data``), and ``stochem.fit``
takes it as it takes any array:

- validation reads only metadata and global reductions (shape, dtype, "is any
  entry inf/NaN" computed where the rows live), never the rows themselves;
- every blocked pass over the points runs on each device's own rows and adds
  the statistics over all devices of all processes (``psum``, an all-reduce
  over gloo on CPU, NCCL on GPUs), so each EM iteration exchanges only the
  statistics, ``O(K·D²)`` numbers;
- the parameters and the trace come back replicated on every process.

Exact EM then equals the one-process fit up to the order of floating-point
additions. Sampled completions (Monte Carlo EM, stochastic EM, SAEM, online
EM) get the same key on every process, and handle it in one of two ways:

- draws made with ``jax.random`` on arrays of the global shape (the HMM, the
  numpyro models, the Gaussian mixture with missing entries, online EM's choice
  of rows) use JAX's partitionable threefry (:func:`initialize` turns it on):
  each number depends only on the key and its position in the global array,
  not on which process computes it, so the fit equals the one-process fit to
  rounding, whatever the number of processes;
- the blocked passes of a Gaussian mixture (its Monte Carlo counts and
  explicit draws) draw each device's share of the points with the key folded
  with the share's global block index (:mod:`stochem.models._blocks`): no two
  devices of any process share random numbers, and the draws equal those of
  one process with the same number of devices, but not those of one device.
  They come from the same distribution (tested by z-scores against exact EM).

:func:`read_npy_rows` makes the common case one call: every process reads its
share of the rows of one ``.npy`` file (memory-mapped, so only its share is
read from disk).

Example (run the same script on every process)::

    import stochem as se
    se.distributed.initialize("10.0.0.1:1234", num_processes=2, process_id=RANK)
    x = se.distributed.read_npy_rows("points.npy")
    result = se.fit(se.models.GaussianMixture(3), x, num_iters=100)
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from stochem import _validation

POINTS_AXIS = "points"


def initialize(coordinator_address: str, num_processes: int, process_id: int, **kwargs) -> None:
    """Join this process to a multi-process JAX program; CPU collectives run over gloo.

    Must run before JAX computes anything, on every process, with the same
    ``coordinator_address`` (``host:port`` of process 0) and ``num_processes``.

    Args:
        coordinator_address: ``"host:port"`` where process 0 listens.
        num_processes: how many processes take part.
        process_id: this process's rank, ``0 .. num_processes - 1``.
        **kwargs: passed on to ``jax.distributed.initialize`` (e.g.
            ``local_device_ids``, ``initialization_timeout``).
    """
    num_processes = _validation.as_int("num_processes", num_processes, minimum=1)
    process_id = _validation.as_int("process_id", process_id, minimum=0)
    if process_id >= num_processes:
        raise _validation.ArgumentError(
            "process_id", f"process_id must be in 0..{num_processes - 1} (num_processes={num_processes}), "
                          f"got {process_id}.")
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    # Random numbers tied to their position in the global array, not to the process computing them.
    jax.config.update("jax_threefry_partitionable", True)
    jax.distributed.initialize(coordinator_address=coordinator_address, num_processes=num_processes,
                               process_id=process_id, **kwargs)


def is_multi_process() -> bool:
    """Whether this program runs over several processes (``jax.distributed`` initialized with more than one)."""
    return jax.process_count() > 1


def is_global_array(value) -> bool:
    """Whether ``value`` is a ``jax.Array`` with rows on other processes (not fully addressable here)."""
    return isinstance(value, jax.Array) and not value.is_fully_addressable


def host_array(value) -> np.ndarray:
    """``value`` as a NumPy array on this host; a global array's rows are gathered from every process.

    Collective for a global array (every process must call it, in the same order).
    """
    if not is_global_array(value):
        return np.asarray(value)
    from jax.experimental import multihost_utils

    return np.asarray(multihost_utils.process_allgather(value, tiled=True))


def points_mesh() -> Mesh:
    """The one-axis mesh of every device of every process, in JAX's global device order."""
    return Mesh(np.asarray(jax.devices()), (POINTS_AXIS,))


def shard_rows(local_rows) -> jax.Array:
    """This process's rows, assembled with every other process's into one global array.

    The rows are split over this process's devices, and the global array
    holds the processes' rows in process order (process 0's first). Every
    process must call it, with the same number of rows and the same trailing
    shape (an even split keeps every device's share the same size).

    Args:
        local_rows: array ``[n, ...]`` of this process's observations.

    Returns:
        A ``jax.Array`` of shape ``[n · num_processes, ...]`` sharded along its first axis.
    """
    rows = np.asarray(local_rows)
    if rows.ndim == 0:
        raise _validation.ArgumentError("local_rows", "local_rows must have a leading rows axis; got a scalar.")
    if rows.shape[0] % jax.local_device_count():
        raise _validation.ArgumentError(
            "local_rows", f"local_rows has {rows.shape[0]} rows, not divisible by this process's "
                          f"{jax.local_device_count()} devices; give every device the same number of rows.")
    sharding = NamedSharding(points_mesh(), PartitionSpec(POINTS_AXIS))
    return jax.make_array_from_process_local_data(sharding, rows)


def shard_data(model, local_data):
    """``model.prepare_data`` on this process's part of the data, assembled into global arrays.

    Each process checks and prepares its own part (e.g. its sequences, padded
    as the model pads them); the processes then agree: if any part was
    rejected, every process raises (the one with the bad part raises its own
    error), so none is left waiting in a collective. Every leaf of the prepared
    data must have the same trailing shape on every process (e.g. the same
    number of features, HMM sequences padded to the same length).

    Args:
        model: the stochem model to be fitted.
        local_data: this process's observations, in the form the model takes.

    Returns:
        The prepared data with every array leaf a global array sharded along its first axis.
    """
    from jax.experimental import multihost_utils

    prepared, error = None, None
    try:
        prepared = model.prepare_data(local_data)
    except (ValueError, TypeError) as caught:
        error = caught
    failed = np.asarray(multihost_utils.process_allgather(np.asarray(error is not None))).reshape(-1)
    if error is not None:
        raise error
    if failed.any():
        raise _validation.ArgumentError(
            "local_data", f"the data of process(es) {np.flatnonzero(failed).tolist()} were rejected; "
                          "their own error says why.")
    leaves, treedef = jax.tree_util.tree_flatten(prepared)
    for index, leaf in enumerate(leaves):
        shapes = np.asarray(multihost_utils.process_allgather(np.asarray(np.shape(leaf)))).reshape(
            jax.process_count(), -1)
        if (shapes != shapes[0]).any():
            raise _validation.ArgumentError(
                "local_data", f"prepared data leaf {index} has shapes {shapes.tolist()} on the processes; "
                              "they must agree (the same number of rows or sequences on every process, the "
                              "same number of features, HMM sequences padded to one length).")
    return jax.tree_util.tree_unflatten(treedef, [shard_rows(np.asarray(leaf)) for leaf in leaves])


def row_share(num_rows: int, process_id: int | None = None, num_processes: int | None = None) -> slice:
    """The rows ``[start, stop)`` of a ``num_rows``-row file that a process reads: equal contiguous shares.

    Raises:
        ArgumentError: ``num_rows`` is not divisible by the number of devices
            (every device must hold the same number of rows).
    """
    process_id = jax.process_index() if process_id is None else process_id
    num_processes = jax.process_count() if num_processes is None else num_processes
    num_devices = num_processes * jax.local_device_count()
    if num_rows % num_devices:
        raise _validation.ArgumentError(
            "num_rows", f"the file has {num_rows} rows, not divisible by the {num_devices} devices; drop "
                        f"{num_rows % num_devices} row(s) or change the number of processes.")
    share = num_rows // num_processes
    return slice(process_id * share, (process_id + 1) * share)


def read_npy_rows(path) -> jax.Array:
    """Every process reads its share of the rows of one ``.npy`` file; returns the global array.

    The file is memory-mapped, so a process reads only its own rows from disk.
    Call it on every process (it is collective).
    """
    array = np.load(path, mmap_mode="r")
    if array.ndim == 0:
        raise _validation.ArgumentError("path", f"{path} holds a scalar; expected an array with one row per observation.")
    return shard_rows(np.array(array[row_share(array.shape[0])]))


@functools.lru_cache(maxsize=8)
def _has_inf_nan(sharding, shape, dtype):
    del shape, dtype  # cache keys: one compiled reduction per layout

    def flags(x):
        return jnp.isinf(x).any(), jnp.isnan(x).any()

    return jax.jit(flags, in_shardings=sharding, out_shardings=NamedSharding(sharding.mesh, PartitionSpec()))


def check_global_floats(name: str, array: jax.Array, *, allow_nan: bool = False) -> jax.Array:
    """:func:`stochem._validation.as_float_array` for a global array: the same checks, no rows fetched.

    Whether an entry is inf or NaN is reduced where the rows live; every process
    gets the same answer, so all of them raise (no process is left waiting in a
    collective).
    """
    if not (jnp.issubdtype(array.dtype, jnp.floating) or jnp.issubdtype(array.dtype, jnp.integer)
            or array.dtype == jnp.bool_):
        raise TypeError(f"{name} must be an array of numbers, got a jax.Array of {array.dtype}.")
    array = array.astype(jnp.result_type(float))
    has_inf, has_nan = _has_inf_nan(array.sharding, array.shape, array.dtype)(array)
    _validation.check_inf_nan(name, bool(has_inf), bool(has_nan), allow_nan=allow_nan)
    return array

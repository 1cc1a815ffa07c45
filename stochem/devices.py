"""Spreading EM over the devices JAX has: seeds across devices, or a large data set's points.

JAX gives one device per GPU, but by default only one device for the whole
CPU, and XLA runs the small per-block products of an E-step on one core.
:func:`use_cpu_cores` asks JAX for one CPU device per core; stochem then uses
every device of the default backend on its own:

- ``fit(..., key=[...])`` with a number of seeds divisible by the number of
  devices runs an equal share of the seeds on each device (:func:`seeds_mesh`);
- otherwise the blocked passes over a large data set (Gaussian mixtures) cut
  the points into one contiguous share per device and add the statistics
  across devices (:func:`points_mesh`).

With one device nothing changes. Results equal the one-device results up to the
order of floating-point additions; sampled completions draw other (equally
valid) random numbers, because a draw's stream is tied to its block of points.
"""

from __future__ import annotations

import contextlib
import contextvars
import os

import jax
import numpy as np
from jax.sharding import Mesh

from stochem import _validation, distributed

SEEDS_AXIS = "seeds"
POINTS_AXIS = distributed.POINTS_AXIS

# A device gets a share of the points only if the share has at least this many:
# below it, handing the work to the devices costs more than the share saves.
MIN_POINTS_PER_DEVICE = 8192

# True while a program spread over the seeds is being traced: every device is
# then busy with its own seeds, so passes over the data stay on their device.
_seeds_spread = contextvars.ContextVar("stochem_seeds_spread", default=False)


def available_cores() -> int:
    """The CPU cores this process may run on (its affinity mask where the OS has one)."""
    # A platform probe, not a capability probe: os.sched_getaffinity exists on Linux only.
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def use_cpu_cores(num_cores: int | None = None) -> int:
    """Ask JAX for one CPU device per core, so that stochem spreads its work over the cores.

    Must be called before JAX computes anything (JAX fixes its devices when it
    starts), e.g. right after ``import stochem``; setting the environment
    variable ``JAX_NUM_CPU_DEVICES`` before starting Python does the same.
    Calling it again with the number already in force is harmless.

    Args:
        num_cores: CPU devices to create; ``None`` means every core this process
            may use (:func:`available_cores`).

    Returns:
        The number of CPU devices JAX will have.

    Example:
        >>> import stochem as se
        >>> se.use_cpu_cores(1)  # doctest: +SKIP
        1
    """
    wanted = available_cores() if num_cores is None else _validation.as_int("num_cores", num_cores, minimum=1)
    try:
        jax.config.update("jax_num_cpu_devices", wanted)
    except RuntimeError:
        have = len(jax.devices("cpu"))
        if have != wanted:
            raise RuntimeError(
                f"use_cpu_cores({wanted}) came too late: JAX has already started with {have} CPU "
                "device(s). Call it before any JAX computation (right after `import stochem`), or set "
                f"JAX_NUM_CPU_DEVICES={wanted} in the environment before starting Python."
            ) from None
    return wanted


def on_accelerator() -> bool:
    """Whether JAX's default backend is an accelerator (GPU, TPU) rather than the CPU.

    Work sizes depend on it: a CPU wants small blocks that stay in its caches,
    an accelerator large ones, since each block's kernels run one after another.
    """
    return jax.default_backend() != "cpu"


def _mesh(axis_name: str) -> Mesh:
    return Mesh(np.asarray(jax.local_devices()), (axis_name,))


def seeds_mesh(num_seeds: int) -> Mesh | None:
    """A one-axis mesh to spread ``num_seeds`` vmapped seeds over, or ``None`` to keep them on one device.

    Seeds are spread when there are several devices and every device gets the
    same number of seeds.
    """
    num_devices = jax.local_device_count()
    if num_devices < 2 or num_seeds % num_devices or distributed.is_multi_process():
        return None
    return _mesh(SEEDS_AXIS)


def points_mesh(num_points: int) -> Mesh | None:
    """A one-axis mesh to cut ``num_points`` points over, or ``None`` to keep the pass on one device.

    ``None`` with one device, while the seeds are spread over the devices, or
    when a device's share would be under ``MIN_POINTS_PER_DEVICE`` points.
    Over several processes (:mod:`stochem.distributed`) the points are
    already spread over every process's devices, and every pass uses them all.
    """
    if distributed.is_multi_process():
        return distributed.points_mesh()
    num_devices = jax.local_device_count()
    if num_devices < 2 or _seeds_spread.get() or num_points < MIN_POINTS_PER_DEVICE * num_devices:
        return None
    return _mesh(POINTS_AXIS)


@contextlib.contextmanager
def spreading_seeds():
    """While tracing inside it, :func:`points_mesh` keeps passes on one device (the seeds use them all)."""
    token = _seeds_spread.set(True)
    try:
        yield
    finally:
        _seeds_spread.reset(token)

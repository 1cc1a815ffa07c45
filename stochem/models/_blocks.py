"""Passes over a data set in blocks of points, spread over the devices when there are several.

A pass applies ``fn(block_index, *blocks)`` to consecutive blocks of ``B``
points and adds up what it returns (statistics, log-likelihood terms), so
memory holds one block's intermediates at a time. The full blocks run in a
``fori_loop`` that slices the arrays in place; a shorter last block gets one
more call. ``block_index`` numbers the blocks of the whole pass (a sampled
completion folds it into its key), and every block gets a distinct index.

With several devices and enough points (:func:`stochem.devices.points_mesh`)
each device takes one contiguous share of the points, runs the same blocked
pass on it, and the sums are added across devices (``psum``); the points left
over after equal shares are one more block on the first device's side.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.sharding import PartitionSpec

from stochem import devices

# On a CPU a block's widest intermediates (``[K·D, B]`` whitened points and
# weighted points) hold about 2^14 numbers: small enough to stay in the L2 cache
# and to keep XLA from splitting each small operation over threads (which costs
# more than it gains at these sizes), large enough to amortize the per-block
# dispatch. Measured on a 2-core CPU: B = 256 for K·D = 40 and B = 4096 for
# K·D = 3 are best. On an accelerator a block's kernels run one after another
# and a small block leaves the device idle, so blocks hold up to 2^22 numbers
# (32 MiB in float64): on an H200, the 200,000-point mixture (K·D = 40) took
# 14.7 ms per exact iteration with CPU-sized blocks (782 blocks).
_BLOCK_NUMBERS = {"cpu": 2**14, "accelerator": 2**22}
_BLOCK_SIZE_RANGE = {"cpu": (64, 4096), "accelerator": (64, 2**20)}


def block_size_for(num_points: int, width: int) -> int:
    """The largest power of two ``B`` with ``B · width <= 2^14`` (``2^22`` on an accelerator), within
    64..4096 (64..2^20), at most ``num_points``."""
    kind = "accelerator" if devices.on_accelerator() else "cpu"
    smallest, largest = _BLOCK_SIZE_RANGE[kind]
    size = min(max(_BLOCK_NUMBERS[kind] // max(width, 1), smallest), largest)
    return min(1 << (size.bit_length() - 1), num_points)


def sum_blocks(fn, block_size: int, arrays, axes):
    """``Σ_b fn(b, *blocks b of arrays)``, each array cut along its points axis in ``axes``.

    ``fn`` returns a pytree of arrays; the pytrees are added over blocks.
    """
    mesh = devices.points_mesh(arrays[0].shape[axes[0]])
    if mesh is None:
        return _sum_blocks_here(fn, block_size, arrays, axes)

    def share_pass(share_fn, shares):
        return jax.lax.psum(_sum_blocks_here(share_fn, block_size, shares, axes), devices.POINTS_AXIS)

    total, leftover = _over_devices(mesh, share_pass, fn, block_size, arrays, axes, PartitionSpec())
    if leftover is not None:
        total = jax.tree_util.tree_map(jnp.add, total, leftover)
    return total


def map_and_sum_blocks(fn, block_size: int, arrays, axes):
    """``fn(b, *blocks b of arrays) -> (mapped, summed)`` for every block.

    Returns:
        ``(mapped, summed)``: the ``mapped`` arrays of all blocks joined along
        their last axis (the points), and the ``summed`` pytrees added over blocks.
    """
    num_points = arrays[0].shape[axes[0]]
    mesh = devices.points_mesh(num_points)
    if mesh is None:
        return map_and_sum_blocks_here(fn, block_size, arrays, axes)
    template, _ = jax.eval_shape(lambda: fn(0, *_blocks(arrays, axes, 0, block_size)))
    mapped_spec = PartitionSpec(*([None] * (len(template.shape) - 1) + [devices.POINTS_AXIS]))

    def share_pass(share_fn, shares):
        mapped, summed = map_and_sum_blocks_here(share_fn, block_size, shares, axes)
        return mapped, jax.lax.psum(summed, devices.POINTS_AXIS)

    (mapped, summed), leftover = _over_devices(mesh, share_pass, fn, block_size, arrays, axes,
                                               (mapped_spec, PartitionSpec()))
    if leftover is not None:
        mapped = jnp.concatenate([mapped, leftover[0]], axis=-1)
        summed = jax.tree_util.tree_map(jnp.add, summed, leftover[1])
    return mapped, summed


def _over_devices(mesh, share_pass, fn, block_size, arrays, axes, out_specs):
    """Run ``share_pass(fn_on_share, shares)`` on equal contiguous shares of the points, one per device.

    Device ``d``'s blocks are numbered from ``d · ⌈share / B⌉``; the points
    left after the equal shares (fewer than the number of devices) are one
    block numbered after all of them.

    Returns:
        ``(what share_pass returns, assembled by out_specs; fn on the leftover points or None)``.
    """
    num_points, num_devices = arrays[0].shape[axes[0]], mesh.size
    share = num_points // num_devices
    blocks_per_share = -(-share // block_size)
    shared = [jax.lax.slice_in_dim(array, 0, share * num_devices, axis=axis) for array, axis in zip(arrays, axes)]
    in_specs = tuple(PartitionSpec(*([None] * axis + [devices.POINTS_AXIS])) for axis in axes)

    def on_share(*shares):
        first_block = jax.lax.axis_index(devices.POINTS_AXIS) * blocks_per_share
        return share_pass(lambda index, *blocks: fn(first_block + index, *blocks), shares)

    # No varying-manual-axes check: under vmap (several seeds) it wraps a constant table that a
    # gather on a share indexes (the Stirling table of stochem.multinomial) in a second pvary,
    # which JAX rejects; every output here is either psum-ed or sharded along the points.
    result = jax.shard_map(on_share, mesh=mesh, in_specs=in_specs, out_specs=out_specs, check_vma=False)(*shared)
    leftover = None
    if share * num_devices < num_points:
        leftover = fn(num_devices * blocks_per_share, *_tails(arrays, axes, share * num_devices))
    return result, leftover


def _blocks(arrays, axes, index, block_size):
    """Block ``index`` of each array along its points axis."""
    return [jax.lax.dynamic_slice_in_dim(array, index * block_size, block_size, axis=axis)
            for array, axis in zip(arrays, axes)]


def _tails(arrays, axes, start):
    """What follows the full blocks, for each array."""
    return [jax.lax.slice_in_dim(array, start, array.shape[axis], axis=axis) for array, axis in zip(arrays, axes)]


def _sum_blocks_here(fn, block_size: int, arrays, axes):
    """:func:`sum_blocks` on one device. The first block starts the sum (no zeros of a guessed type)."""
    num_full, tail = divmod(arrays[0].shape[axes[0]], block_size)
    total = None
    if num_full:
        total = fn(0, *_blocks(arrays, axes, 0, block_size))

        def accumulate(index, acc):
            return jax.tree_util.tree_map(jnp.add, acc, fn(index, *_blocks(arrays, axes, index, block_size)))

        total = jax.lax.fori_loop(1, num_full, accumulate, total)
    if tail:
        last = fn(num_full, *_tails(arrays, axes, num_full * block_size))
        total = last if total is None else jax.tree_util.tree_map(jnp.add, total, last)
    return total


def map_and_sum_blocks_here(fn, block_size: int, arrays, axes):
    """:func:`map_and_sum_blocks` over the points at hand, not spread over devices (e.g. inside a pass
    over one device's share); the output is written block by block into one array."""
    num_points = arrays[0].shape[axes[0]]
    if num_points <= block_size:
        return fn(0, *arrays)
    num_full, tail = divmod(num_points, block_size)
    first, total = fn(0, *_blocks(arrays, axes, 0, block_size))
    output = jnp.zeros(first.shape[:-1] + (num_points,), first.dtype)
    output = jax.lax.dynamic_update_slice_in_dim(output, first, 0, axis=-1)

    def write(index, carry):
        out, total = carry
        block, summed = fn(index, *_blocks(arrays, axes, index, block_size))
        out = jax.lax.dynamic_update_slice_in_dim(out, block, index * block_size, axis=-1)
        return out, jax.tree_util.tree_map(jnp.add, total, summed)

    output, total = jax.lax.fori_loop(1, num_full, write, (output, total))
    if tail:
        start = num_full * block_size
        block, summed = fn(num_full, *_tails(arrays, axes, start))
        output = output.at[..., start:].set(block)
        total = jax.tree_util.tree_map(jnp.add, total, summed)
    return output, total

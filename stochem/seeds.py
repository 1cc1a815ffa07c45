"""Running one EM per seed in one compiled program: vmapped, shared out over devices, or in sequence."""

from __future__ import annotations

import jax
from jax.sharding import PartitionSpec

from stochem import devices


def map_over_seeds(run):
    """``run`` over a leading axis of keys with ``lax.map``: the seeds run in sequence.

    For completions whose transform says ``vmap_seeds=False`` (MCMC): their
    seeds do not gain from vectorization, and some inner loops misbehave under
    ``vmap`` (see :class:`stochem.completion.mcmc.Mcmc`). Results equal per-seed fits.
    """
    def mapped(keys, init_params, data):
        return jax.lax.map(lambda key: run(key, init_params, data), keys)

    return mapped


def spread_over_devices(run):
    """``run`` vmapped over seeds, with an equal share of them on each device when there are several.

    Each device runs its seeds under ``vmap`` (:func:`stochem.devices.seeds_mesh`);
    while they are traced, passes over the data stay on their own device. The
    seeds never exchange values, so no collective crosses devices (the
    replication check of ``shard_map`` is off: the loop's carries start as
    replicated zeros).
    """
    vmapped = jax.vmap(run, in_axes=(0, None, None))

    def spread(keys, init_params, data):
        mesh = devices.seeds_mesh(keys.shape[0])
        if mesh is None:
            return vmapped(keys, init_params, data)
        seeds, replicated = PartitionSpec(devices.SEEDS_AXIS), PartitionSpec()
        with devices.spreading_seeds():
            return jax.shard_map(vmapped, mesh=mesh, in_specs=(seeds, replicated, replicated),
                                 out_specs=seeds, check_vma=False)(keys, init_params, data)

    return spread

"""PRNG keys as users give them: an int seed, a list of seeds, or JAX keys."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def keys_from_user(key):
    """Return ``(keys, batched)``; ``keys`` has a leading seed axis when batched.

    Accepted: an int seed; a sequence / 1-D array of int seeds; a typed PRNG key
    (scalar, or 1-D for several seeds); a raw ``uint32`` key of shape ``[2]`` or
    ``[num_seeds, 2]``.

    Raises:
        TypeError, ValueError: naming ``key`` and what it accepts.
    """
    if isinstance(key, jax.Array) and jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        if key.ndim > 1:
            raise ValueError(f"key must be a scalar key or a 1-D array of keys, got shape {key.shape}.")
        return key, key.ndim == 1
    if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
        return jax.random.key(int(key)), False
    array = np.asarray(key)
    if array.dtype == np.uint32 and array.ndim in (1, 2) and array.shape[-1] == 2:
        keys = jax.random.wrap_key_data(jnp.asarray(array))
        return keys, array.ndim == 2
    if array.ndim == 1 and array.size > 0 and np.issubdtype(array.dtype, np.integer):
        return jax.vmap(jax.random.key)(jnp.asarray(array)), True
    raise TypeError(
        "key must be an int seed, a list of int seeds (one run per seed, vmapped), "
        f"or a jax PRNG key / array of keys; got {key!r}."
    )

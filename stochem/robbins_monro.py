"""The Robbins–Monro recursion, written once for SAEM, online EM and the stochastic Newton M-step.

A stochastic approximation averages noisy values ``Ŝ_k`` of a quantity with
step sizes ``γ_k``::

    S_k = S_{k-1} + γ_k (Ŝ_k − S_{k-1}).

With Σ γ_k = ∞ and Σ γ_k² < ∞ the noise averages out. The first value is taken
as it is (γ_0 = 1 whatever the schedule), so S never mixes in its zero initial
value. Schedules are plain ``count -> γ`` functions; optax schedules work as
they are.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def step_size_at(step_size, count, dtype=None):
    """γ_k: 1 at ``count == 0``, else ``step_size(count)``, as an array of ``dtype`` (default float)."""
    dtype = jnp.result_type(float) if dtype is None else dtype
    return jnp.where(count == 0, jnp.ones((), dtype), jnp.asarray(step_size(count), dtype=dtype))


def robbins_monro_step(average, new, gamma):
    """``average + γ (new − average)``, leaf by leaf (each leaf keeps its dtype)."""
    return jax.tree_util.tree_map(lambda old, value: old + jnp.asarray(gamma, old.dtype) * (value - old),
                                  average, new)

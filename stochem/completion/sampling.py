"""Drawing posterior completions and turning them into statistics.

Sample counts are Python ints where they fix array shapes. A sample count that
changes from one iteration to the next (a schedule, or the ascent-based rule)
lives in a *bounded buffer*: ``max_samples`` slots, of which the first
``num_samples`` (a traced int) are filled, batch by batch, in a
``lax.while_loop`` that stops after the last needed batch. Changing the count
therefore never recompiles, and the work done is proportional to the count in
force, not to the buffer's size.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

# Draws are computed in batches of this many (vmapped), bounding memory by one
# batch of completions while small sample counts still run fully vectorized.
SAMPLE_BATCH = 16


class DrawnStats(NamedTuple):
    """Per-draw statistics in a bounded buffer.

    Attributes:
        per_draw: pytree like ``model.suff_stats(...)`` with a leading axis of
            ``max_samples``; entry ``s`` is ``T(o, m_s)`` for ``s < num_samples``
            and zero beyond.
        num_samples: how many leading entries are draws (an int array).
        loglik: ℓ(θ) at the parameters drawn from, when the model's sampler
            computed it on the way (its ``stats_sampler``), else ``None``.
    """

    per_draw: Any
    num_samples: Any
    loglik: Any = None

    def mask(self):
        """``[max_samples]`` booleans: which entries are draws."""
        max_samples = jax.tree_util.tree_leaves(self.per_draw)[0].shape[0]
        return jnp.arange(max_samples) < self.num_samples

    def mean(self):
        """Average statistics of the draws, ``(1/S) Σ_s T(o, m_s)``."""
        count = jnp.asarray(self.num_samples, dtype=float)
        return jax.tree_util.tree_map(lambda s: jnp.sum(s, axis=0) / count, self.per_draw)

    def stderr(self):
        """Monte Carlo standard error of :meth:`mean`, entry by entry (0 for one draw)."""
        count = jnp.asarray(self.num_samples, dtype=float)
        mask = self.mask()

        def standard_error(draws):
            mean = jnp.sum(draws, axis=0) / count
            centred = jnp.where(mask.reshape((-1,) + (1,) * (draws.ndim - 1)), draws - mean, 0.0)
            variance = jnp.sum(centred**2, axis=0) / jnp.maximum(count - 1.0, 1.0)
            return jnp.sqrt(variance / count)

        return jax.tree_util.tree_map(standard_error, self.per_draw)


def draw_stats(model, key, params, data, num_samples, max_samples: int) -> DrawnStats:
    """Draw ``num_samples`` completions (at most ``max_samples``) and store their statistics.

    Draw ``s`` uses ``fold_in(key, s)``, so the draws do not depend on
    ``max_samples`` and a run with a fixed count equals one with a schedule that
    gives the same count. The per-draw function is the model's
    ``stats_sampler(params, data)``, built once before the draws; a buffer of
    one draw uses the model's ``sampled_stats`` (the same draw, from a fused
    pass where the model has one).

    Args:
        model: a :class:`stochem.capabilities.PosteriorSampler`.
        key: PRNG key.
        params: parameters of the posterior to draw from.
        data: prepared data.
        num_samples: a Python int or traced int in ``1..max_samples``.
        max_samples: the buffer size (a Python int).
    """
    if max_samples == 1:
        stats, loglik = model.sampled_stats(jax.random.fold_in(key, 0), params, data)
        per_draw = jax.tree_util.tree_map(lambda leaf: leaf[None], stats)
        return DrawnStats(per_draw, jnp.asarray(1), loglik)
    batch_size = min(SAMPLE_BATCH, max_samples)
    num_batches = -(-max_samples // batch_size)
    one_draw, loglik = model.stats_sampler(params, data)
    template = jax.eval_shape(one_draw, key)
    buffer = jax.tree_util.tree_map(
        lambda leaf: jnp.zeros((num_batches * batch_size,) + leaf.shape, leaf.dtype), template
    )
    num_samples = jnp.clip(jnp.asarray(num_samples), 1, max_samples)

    def needed(carry):
        batch, _ = carry
        return batch * batch_size < num_samples

    def fill_batch(carry):
        batch, buffer = carry
        indices = batch * batch_size + jnp.arange(batch_size)
        keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(indices)
        stats = jax.vmap(one_draw)(keys)
        keep = indices < num_samples
        stats = jax.tree_util.tree_map(
            lambda s: jnp.where(keep.reshape((-1,) + (1,) * (s.ndim - 1)), s, 0), stats
        )
        buffer = jax.tree_util.tree_map(
            lambda buf, s: jax.lax.dynamic_update_slice_in_dim(buf, s, batch * batch_size, axis=0),
            buffer, stats,
        )
        return batch + 1, buffer

    _, buffer = jax.lax.while_loop(needed, fill_batch, (jnp.asarray(0), buffer))
    per_draw = jax.tree_util.tree_map(lambda buf: buf[:max_samples], buffer)
    return DrawnStats(per_draw, num_samples, loglik)


def sampled_stats(model, key, params, data, num_samples: int):
    """Sufficient statistics of ``num_samples`` posterior draws, stacked on a leading axis."""
    return draw_stats(model, key, params, data, num_samples, num_samples).per_draw

"""Batch means: the Monte Carlo variance of an average of correlated draws (a Markov chain's).

For ``n`` consecutive values ``y_1 … y_n`` of a stationary chain, cut the
first ``a · b`` into ``a`` batches of ``b = ⌊√n⌋`` consecutive values
(``a = ⌊n / b⌋``) with means ``ȳ_k``; then::

    σ̂²_BM = b / (a − 1) · Σ_k (ȳ_k − ȳ)²,      Var(mean of n) ≈ σ̂²_BM / n,

where ``σ̂²_BM`` estimates the asymptotic variance ``σ² = lim n · Var(ȳ_n)``
(the per-draw variance times the integrated autocorrelation time). Batches of
size ``√n`` make the estimate consistent for geometrically ergodic chains
(Jones, Haran, Caffo & Neath 2006, "Fixed-width output analysis for Markov
chain Monte Carlo", JASA 101). For independent draws it estimates their
variance, like the sample variance but with fewer degrees of freedom.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def batch_means(values, num_values):
    """``(mean, σ̂²_BM)`` of the first ``num_values`` entries of ``values`` (``[M]``, chain order).

    ``num_values`` may be a traced int in ``1..M``; entries after it are ignored.
    The mean is over all ``num_values`` entries; ``σ̂²_BM`` over the first
    ``a · b`` of them (see the module docstring), with ``a − 1`` floored at 1.

    Example:
        >>> import jax.numpy as jnp
        >>> mean, variance = batch_means(jnp.arange(16.0), 16)  # 4 batches of 4
        >>> float(mean), round(float(variance), 4)
        (7.5, 106.6667)
    """
    values = jnp.asarray(values)
    capacity = values.shape[0]
    count = jnp.clip(jnp.asarray(num_values), 1, capacity)
    index = jnp.arange(capacity)
    mean = jnp.sum(jnp.where(index < count, values, 0.0)) / count
    size = jnp.maximum(jnp.floor(jnp.sqrt(count.astype(values.dtype))).astype(count.dtype), 1)
    num_batches = count // size
    used = index < num_batches * size
    batch = jnp.where(used, index // size, capacity)  # the last segment collects what is not used
    sums = jax.ops.segment_sum(jnp.where(used, values, 0.0), batch, num_segments=capacity + 1)[:capacity]
    batch_mean = sums / size
    grand_mean = jnp.sum(sums) / (num_batches * size)
    in_range = jnp.arange(capacity) < num_batches
    squares = jnp.sum(jnp.where(in_range, (batch_mean - grand_mean) ** 2, 0.0))
    variance = size * squares / jnp.maximum(num_batches - 1, 1)
    return mean, variance

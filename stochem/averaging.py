"""Polyak–Ruppert averaging of the iterates of stochastic EM, SAEM or online EM.

Averaging does not change the recursion, only what is reported, so it is
computed from the trace::

    θ̄_t = (1 / (t − b + 1)) Σ_{j=b}^{t} θ_j     for t ≥ b  (θ̄_t = θ_t before the burn-in b).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from stochem import _validation


def polyak_average(result, burn_in: int = 0):
    """Running Polyak–Ruppert averages of a fit's parameter trace.

    Args:
        result: a ``FitResult`` (one seed, or several: the iteration axis is
            then axis 1).
        burn_in: the first iteration included in the average.

    Returns:
        A params pytree like ``result.trace.params``: entry ``t`` is the average
        of iterates ``burn_in … t`` (the raw iterate before ``burn_in``); the
        last entry is the averaged estimate.

    Example:
        >>> import stochem as se
        >>> model = se.models.BinomialMixture(2, 10)
        >>> run = se.fit(model, [5, 9, 8, 4, 7], completion=se.monte_carlo(1),
        ...              init={"weights": [0.5, 0.5], "probs": [0.6, 0.5]}, num_iters=50)
        >>> averaged = se.polyak_average(run, burn_in=10)
    """
    burn_in = _validation.as_int("burn_in", burn_in, minimum=0)
    axis = 1 if jnp.ndim(result.trace.loglik) == 2 else 0
    length = jnp.shape(result.trace.loglik)[axis]
    if burn_in >= length:
        raise ValueError(f"burn_in={burn_in} leaves no iterate to average; the trace has {length} entries.")

    def average(leaf):
        leaf = jnp.moveaxis(leaf, axis, 0)
        after = leaf[burn_in:]
        counts = jnp.arange(1, after.shape[0] + 1).reshape((-1,) + (1,) * (after.ndim - 1))
        running = jnp.cumsum(after, axis=0) / counts
        return jnp.moveaxis(jnp.concatenate([leaf[:burn_in], running]), 0, axis)

    return jax.tree_util.tree_map(average, result.trace.params)

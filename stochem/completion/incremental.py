"""Incremental EM (Neal & Hinton 1998): statistics kept per data block, one block refreshed per step.

The data's rows are cut into ``num_blocks`` equal blocks. The state holds each
block's statistics; the first step uses a full E-step, and every later step
recomputes one block's statistics at the current θ (cyclically) and returns
the sum over blocks::

    S = Σ_b S_b,   S_b ← E[T(o_b, m_b) | o_b; θ]   for b = (k − 1) mod B.

Each step then costs 1/B of a full E-step, and the free energy F(q, θ) never
decreases.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from stochem import _validation
from stochem.base import CompletionTransform
from stochem.completion.blocks import num_rows, row_block


class IncrementalState(NamedTuple):
    block_stats: Any  # statistics of each block, leading axis num_blocks
    count: Any


@dataclasses.dataclass(frozen=True)
class Incremental:
    """Factory for incremental EM (see :func:`incremental`)."""

    num_blocks: int

    def __post_init__(self):
        _validation.as_int("num_blocks", self.num_blocks, minimum=1)

    def check_data(self, model, data):
        rows = num_rows(data)
        if rows % self.num_blocks:
            divisors = [d for d in range(1, min(rows, 64) + 1) if rows % d == 0]
            raise ValueError(f"num_blocks={self.num_blocks} must divide the {rows} data rows into equal "
                             f"blocks; divisors of {rows} up to 64: {divisors}.")

    def __call__(self, model) -> CompletionTransform:
        if not hasattr(model, "expected_stats"):
            raise TypeError(f"incremental(...) refreshes exact statistics; {type(model).__name__} has no "
                            "expected_stats.")
        num_blocks = self.num_blocks

        def block_stats_at(params, data):
            block_size = num_rows(data) // num_blocks
            return jax.vmap(lambda b: model.expected_stats(params, row_block(data, b, block_size)))(
                jnp.arange(num_blocks))

        def init(params, data):
            return IncrementalState(block_stats_at(params, data), jnp.asarray(0))

        def update(key, params, data, state):
            del key
            block = (state.count - 1) % num_blocks
            block_size = num_rows(data) // num_blocks
            fresh = model.expected_stats(params, row_block(data, block, block_size))
            refreshed = jax.tree_util.tree_map(lambda all_blocks, new: all_blocks.at[block].set(new),
                                               state.block_stats, fresh)
            # The first step uses the full E-step computed by init at the same θ.
            block_stats = jax.tree_util.tree_map(lambda old, new: jnp.where(state.count == 0, old, new),
                                                 state.block_stats, refreshed)
            total = jax.tree_util.tree_map(lambda stats: jnp.sum(stats, axis=0), block_stats)
            return total, IncrementalState(block_stats, state.count + 1)

        return CompletionTransform(init, update)


def incremental(num_blocks: int) -> Incremental:
    """Incremental EM: one of ``num_blocks`` equal row blocks refreshed per iteration.

    Example:
        >>> import stochem as se
        >>> completion = se.incremental(num_blocks=10)
    """
    return Incremental(num_blocks)

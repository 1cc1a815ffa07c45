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
from stochem.base import CompletionTransform, completion_info
from stochem.capabilities import ExactEStep, RowData, require


class IncrementalState(NamedTuple):
    block_stats: Any  # statistics of each block, leading axis num_blocks
    count: Any


@dataclasses.dataclass(frozen=True)
class Incremental:
    """Factory for incremental EM (see :func:`incremental`)."""

    num_blocks: int

    def __post_init__(self):
        _validation.as_int("num_blocks", self.num_blocks, minimum=1)

    def __call__(self, model) -> CompletionTransform:
        require(model, ExactEStep, "incremental(...)",
                "It refreshes exact statistics; use monte_carlo(...) or saem(...) instead.")
        require(model, RowData, "incremental(...)")
        num_blocks = self.num_blocks

        def check_data(data):
            rows = model.num_rows(data)
            if rows % num_blocks:
                divisors = [d for d in range(1, min(rows, 64) + 1) if rows % d == 0]
                raise _validation.ArgumentError(
                    "num_blocks", f"num_blocks={num_blocks} must divide the {rows} data rows into equal "
                                  f"blocks; divisors of {rows} up to 64: {divisors}.")

        def block_stats(params, data, block):
            """The full data's statistics from block ``block`` of the rows, at θ."""
            num_rows = model.num_rows(data)
            block_size = num_rows // num_blocks
            rows = block * block_size + jnp.arange(block_size)
            stats = model.expected_stats(params, model.take_rows(data, rows))
            return model.full_data_stats(stats, rows, num_rows)

        def init(params, data):
            every_block = jax.vmap(lambda block: block_stats(params, data, block))(jnp.arange(num_blocks))
            return IncrementalState(every_block, jnp.asarray(0))

        def update(key, params, data, state):
            del key
            block = (state.count - 1) % num_blocks
            fresh = block_stats(params, data, block)
            refreshed = jax.tree_util.tree_map(lambda all_blocks, new: all_blocks.at[block].set(new),
                                               state.block_stats, fresh)
            # The first step uses the full E-step computed by init at the same θ.
            every_block = jax.tree_util.tree_map(lambda old, new: jnp.where(state.count == 0, old, new),
                                                 state.block_stats, refreshed)
            total = jax.tree_util.tree_map(lambda stats: jnp.sum(stats, axis=0), every_block)
            return total, IncrementalState(every_block, state.count + 1), completion_info()

        return CompletionTransform(init, update, check_data=check_data)


def incremental(num_blocks: int) -> Incremental:
    """Incremental EM: one of ``num_blocks`` equal row blocks refreshed per iteration.

    Example:
        >>> import stochem as se
        >>> completion = se.incremental(num_blocks=10)
    """
    return Incremental(num_blocks)

"""Row blocks of a data set: every leaf of the prepared data shares a leading axis of rows."""

from __future__ import annotations

import jax
import numpy as np


def num_rows(data) -> int:
    """The common leading length of the data's leaves; ``ValueError`` if there is none."""
    leaves = jax.tree_util.tree_leaves(data)
    lengths = {np.shape(leaf)[0] if np.ndim(leaf) else None for leaf in leaves}
    if not leaves or None in lengths or len(lengths) != 1:
        raise ValueError("this completion needs data made of rows (every array sharing its first "
                         "axis), e.g. one row per observation; this model's data are not.")
    return lengths.pop()


def take_rows(data, rows):
    """The rows ``rows`` (an index array) of every leaf."""
    return jax.tree_util.tree_map(lambda leaf: leaf[rows], data)


def row_block(data, block, block_size: int):
    """Rows ``block * block_size`` … ``(block + 1) * block_size − 1`` (``block`` may be traced)."""
    return jax.tree_util.tree_map(
        lambda leaf: jax.lax.dynamic_slice_in_dim(leaf, block * block_size, block_size, axis=0), data
    )

"""The arguments of a numpyro model, split into static structure and array data.

``from_numpyro(model_fn, *args, **kwargs)`` keeps the model's arguments. Their
array leaves (numpy or JAX arrays, numpy scalars) are the *data*: ``fit`` passes
them into the compiled program as an argument, so they are never baked into it
as constants. Every other leaf (Python numbers, strings, ``None``, functions) is
*static* configuration, such as a size used by a plate, and is part of the
model's identity.

Two models built from the same function, the same static leaves and arrays of
the same shapes and dtypes are equal and share one compiled program; only the
array values differ, and those travel as data.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


def _is_array(leaf) -> bool:
    return isinstance(leaf, (np.ndarray, np.generic, jax.Array))


def _hashable(leaf):
    """``leaf`` itself when hashable, else a token for its identity."""
    try:
        hash(leaf)
    except TypeError:
        return ("unhashable object", id(leaf))
    return leaf


@dataclasses.dataclass(frozen=True, eq=False)
class ModelArguments:
    """``(args, kwargs)`` of a numpyro model, as static structure plus array data.

    Attributes:
        treedef: the pytree structure of ``(args, kwargs)``.
        static_leaves: the leaves, with ``None`` where an array sits.
        array_positions: the indices of the array leaves.
        arrays: the array leaves, as given (concrete).
    """

    treedef: Any
    static_leaves: tuple
    array_positions: tuple[int, ...]
    arrays: tuple

    @classmethod
    def from_call(cls, args: tuple, kwargs: dict) -> "ModelArguments":
        leaves, treedef = jax.tree_util.tree_flatten((tuple(args), dict(kwargs)))
        positions = tuple(i for i, leaf in enumerate(leaves) if _is_array(leaf))
        static = tuple(None if i in positions else leaf for i, leaf in enumerate(leaves))
        return cls(treedef, static, positions, tuple(leaves[i] for i in positions))

    def data(self) -> tuple:
        """The array leaves as JAX arrays: what ``fit`` passes as ``data``."""
        return tuple(jnp.asarray(array) for array in self.arrays)

    def rebuild(self, data) -> tuple[tuple, dict]:
        """``(args, kwargs)`` with the array leaves taken from ``data`` (arrays or tracers)."""
        leaves = list(self.static_leaves)
        for position, array in zip(self.array_positions, data):
            leaves[position] = array
        return jax.tree_util.tree_unflatten(self.treedef, leaves)

    def signature(self) -> tuple:
        """What the compiled program depends on: structure, static leaves, array shapes and dtypes."""
        return (
            self.treedef,
            tuple(_hashable(leaf) for leaf in self.static_leaves),
            self.array_positions,
            tuple((np.shape(array), str(jnp.asarray(array).dtype)) for array in self.arrays),
        )

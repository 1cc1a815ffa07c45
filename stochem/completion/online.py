"""Online EM (Cappé & Moulines 2009): statistics of random minibatches, smoothed by stochastic approximation.

Each iteration draws ``batch_size`` rows without replacement, completes them
(exactly, or by sampling), scales their statistics to the full data size
(N / batch_size: the statistics are sums over rows) and feeds them to the
Robbins–Monro recursion::

    S_k = S_{k-1} + γ_k ((N / B) T_batch(θ_{k-1}) − S_{k-1}),   θ_k = M(S_k).

For data that do not fit in memory, :func:`stochem.fit_stream` applies the same
recursion to chunks read one at a time.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax

from stochem import _validation
from stochem.base import CompletionTransform
from stochem.completion.blocks import num_rows, take_rows
from stochem.completion.chain import chain
from stochem.completion.exact import exact
from stochem.completion.stochastic_approximation import robbins_monro, saem_step_size


@dataclasses.dataclass(frozen=True)
class Minibatch:
    """Factory: a completion applied to a random minibatch of rows, scaled to the full data."""

    completion: Any
    batch_size: int

    def __post_init__(self):
        _validation.as_int("batch_size", self.batch_size, minimum=1)

    def check_data(self, model, data):
        rows = num_rows(data)
        if self.batch_size > rows:
            raise ValueError(f"batch_size={self.batch_size} is larger than the {rows} data rows; "
                             f"use batch_size <= {rows}.")

    def __call__(self, model) -> CompletionTransform:
        inner = self.completion(model)
        batch_size = self.batch_size

        def choose(key, data):
            rows = jax.random.choice(key, num_rows(data), (batch_size,), replace=False)
            return take_rows(data, rows)

        def init(params, data):
            return inner.init(params, choose(jax.random.key(0), data))

        def update(key, params, data, state):
            rows_key, inner_key = jax.random.split(key)
            stats, state = inner.update(inner_key, params, choose(rows_key, data), state)
            scale = num_rows(data) / batch_size
            return jax.tree_util.tree_map(lambda leaf: leaf * scale, stats), state

        return CompletionTransform(init, update)


def minibatch(completion, batch_size: int) -> Minibatch:
    """Apply ``completion`` to ``batch_size`` random rows per iteration, statistics scaled by N / B."""
    return Minibatch(completion, batch_size)


def online_em(batch_size: int, step_size=None, completion=None):
    """Online EM: ``chain(minibatch(completion, batch_size), robbins_monro(step_size))``.

    Args:
        batch_size: rows per iteration.
        step_size: ``count -> γ``; default ``(k + 1)^−0.6`` (Cappé & Moulines
            recommend exponents in (0.5, 1]; combine with Polyak averaging,
            :func:`stochem.polyak_average`).
        completion: the completion of each minibatch; default ``exact()``.

    Example:
        >>> import stochem as se
        >>> completion = se.online_em(batch_size=256)
    """
    step_size = saem_step_size(burn_in=0, exponent=0.6) if step_size is None else step_size
    return chain(minibatch(exact() if completion is None else completion, batch_size),
                 robbins_monro(step_size))

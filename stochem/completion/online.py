"""Online EM (Cappé & Moulines 2009): statistics of random minibatches, smoothed by stochastic approximation.

Each iteration draws ``batch_size`` rows without replacement (every subset
equally likely, at a cost that does not grow with the number of rows N:
:mod:`stochem.subsets`), completes them (exactly, or by sampling), scales
their statistics to the full data size (N / batch_size: the statistics are
sums over rows) and feeds them to the Robbins–Monro recursion::

    S_k = S_{k-1} + γ_k ((N / B) T_batch(θ_{k-1}) − S_{k-1}),   θ_k = M(S_k).

For data that do not fit in memory, :func:`stochem.fit_stream` applies the same
recursion to chunks read one at a time.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax

import numpy as np

from stochem import _validation, runtime
from stochem.base import CompletionTransform
from stochem.capabilities import RowData, require
from stochem.completion.chain import chain
from stochem.completion.exact import exact
from stochem.completion.stochastic_approximation import robbins_monro, saem_step_size
from stochem.subsets import distinct_rows


@dataclasses.dataclass(frozen=True)
class Minibatch:
    """Factory: a completion applied to a random minibatch of rows, scaled to the full data.

    The rows come from the model's ``take_rows`` and the batch's statistics are
    placed among the full data's by its ``full_data_stats`` (sums over rows:
    unchanged; per-row statistics: scattered to their rows), then scaled by
    ``N / B``, so their expectation over the choice of rows is the full data's.
    """

    completion: Any
    batch_size: int

    def __post_init__(self):
        _validation.as_int("batch_size", self.batch_size, minimum=1)

    def split_runtime(self, model):
        """The inner completion's run-time settings (:mod:`stochem.runtime`)."""
        static, values = runtime.split(self.completion, model)
        return runtime.replace_unchecked(self, completion=static), values

    def join_runtime(self, values):
        return runtime.replace_unchecked(self, completion=runtime.join(self.completion, values))

    def __call__(self, model) -> CompletionTransform:
        require(model, RowData, "minibatch(...) and online_em(...)")
        inner = self.completion(model)
        batch_size = self.batch_size

        def choose(key, data):
            return distinct_rows(key, model.num_rows(data), batch_size)

        def check_data(data):
            rows = model.num_rows(data)
            if batch_size > rows:
                raise _validation.ArgumentError(
                    "batch_size", f"batch_size={batch_size} is larger than the {rows} data rows; "
                                  f"use batch_size <= {rows}.")
            inner.check_data(model.take_rows(data, np.arange(batch_size)))

        def init(params, data):
            return inner.init(params, model.take_rows(data, choose(jax.random.key(0), data)))

        def update(key, params, data, state):
            rows_key, inner_key = jax.random.split(key)
            rows = choose(rows_key, data)
            stats, state, info = inner.update(inner_key, params, model.take_rows(data, rows), state)
            num_rows = model.num_rows(data)
            full = model.full_data_stats(stats, rows, num_rows)
            scale = num_rows / batch_size
            # ℓ of a batch is not ℓ(θ_t) of the data: EM evaluates it on the full data.
            info = info._replace(loglik=None, loglik_stderr=None)
            return jax.tree_util.tree_map(lambda leaf: leaf * scale, full), state, info

        return inner._replace(init=init, update=update, check_data=check_data)


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

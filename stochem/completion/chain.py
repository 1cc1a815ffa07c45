"""Compose a completion with statistics transforms, the way optax chains gradient transforms.

A *statistics transform* (:class:`stochem.base.StatsTransform`) post-processes
the statistics of the pieces before it. Its ``update`` gets the same arguments
as a completion's — the key, θ_t and the data — plus the statistics and the
info so far, and returns all three: a smoothing of the statistics
(Robbins–Monro), a stopping rule or a sample-size rule composes like any other
piece. Its factory is called with the model, so it can refuse statistics it
cannot handle.

``chain(completion, t1, t2, ...)`` is again a completion whose state holds the
parts' states. SAEM, for instance, is ``chain(monte_carlo(1), robbins_monro(schedule))``.
The chained completion keeps every static fact of the inner completion
(``check_data``, ``vmap_seeds``) and stops early when any piece has a stopping rule;
its ``default_mstep`` is that of the last piece that declares one.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax

from stochem import runtime
from stochem.base import CompletionTransform


class ChainState(NamedTuple):
    completion_state: Any
    transform_states: tuple


@dataclasses.dataclass(frozen=True)
class Chain:
    """Factory for a completion followed by statistics transforms (see :func:`chain`)."""

    completion: Any
    transforms: tuple

    def split_runtime(self, model):
        """The inner completion's run-time settings (:mod:`stochem.runtime`); the transforms are static."""
        static, values = runtime.split(self.completion, model)
        return Chain(static, self.transforms), values

    def join_runtime(self, values):
        return Chain(runtime.join(self.completion, values), self.transforms)

    def __call__(self, model) -> CompletionTransform:
        inner = self.completion(model)
        transforms = tuple(factory(model) for factory in self.transforms)

        def init(params, data):
            completion_state = inner.init(params, data)
            template = jax.eval_shape(
                lambda key: inner.update(key, params, data, completion_state)[0], jax.random.key(0)
            )
            return ChainState(completion_state, tuple(t.init(template, params, data) for t in transforms))

        def update(key, params, data, state):
            # The inner completion keeps the key it would have alone; each transform gets its own stream.
            stats, completion_state, info = inner.update(key, params, data, state.completion_state)
            transform_states = []
            for index, (transform, transform_state) in enumerate(zip(transforms, state.transform_states)):
                stats, transform_state, info = transform.update(
                    jax.random.fold_in(key, index + 1), params, data, transform_state, stats, info)
                transform_states.append(transform_state)
            return stats, ChainState(completion_state, tuple(transform_states)), info

        stops_early = inner.stops_early or any(t.stops_early for t in transforms)
        default_mstep = inner.default_mstep
        for transform in transforms:
            default_mstep = transform.default_mstep or default_mstep
        return inner._replace(init=init, update=update, stops_early=stops_early, default_mstep=default_mstep)


def chain(completion, *transforms) -> Chain:
    """A completion followed by statistics transforms, applied in order.

    Args:
        completion: a completion factory, e.g. ``stochem.monte_carlo(1)``.
        *transforms: statistics-transform factories, e.g.
            ``stochem.robbins_monro(schedule)``.

    Example:
        >>> import stochem as se
        >>> saem = se.chain(se.monte_carlo(1), se.robbins_monro(se.saem_step_size(burn_in=10)))
    """
    if not callable(completion):
        raise TypeError(f"chain's first argument must be a completion, got {completion!r}.")
    for transform in transforms:
        if not callable(transform):
            raise TypeError(f"chain's transforms must be statistics-transform factories, got {transform!r}.")
    return Chain(completion, tuple(transforms))

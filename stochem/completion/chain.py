"""Compose a completion with statistics transforms, the way optax chains gradient transforms.

A *statistics transform* post-processes the statistics a completion produced:
``init(stats_template) -> state`` and ``update(stats, state) -> (stats, state)``;
its factory is called with the model (so it can refuse statistics it cannot
handle).
``chain(completion, t1, t2, ...)`` is again a completion, whose state holds the
parts' states. SAEM, for instance, is ``chain(monte_carlo(1), robbins_monro(schedule))``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple

import jax

from stochem.base import CompletionTransform


class StatsTransform(NamedTuple):
    """A pure post-processing step for statistics.

    Attributes:
        init: ``init(stats_template) -> state``; the template has the shapes
            and dtypes of the statistics (``jax.ShapeDtypeStruct`` leaves).
        update: ``update(stats, state) -> (stats, state)``.
    """

    init: Callable[[Any], Any]
    update: Callable[[Any, Any], tuple[Any, Any]]


class ChainState(NamedTuple):
    completion_state: Any
    transform_states: tuple

    @property
    def diagnostics(self):
        """The inner completion's diagnostics, passed through."""
        return getattr(self.completion_state, "diagnostics", ())

    @property
    def loglik(self):
        """ℓ(θ_t), when the inner completion computed it on the way (else ``AttributeError``).

        Statistics transforms change the statistics, not θ_t, so the inner
        completion's ℓ(θ_t) still holds, and EM need not evaluate it again.
        """
        return self.completion_state.loglik


@dataclasses.dataclass(frozen=True)
class Chain:
    """Factory for a completion followed by statistics transforms (see :func:`chain`)."""

    completion: Any
    transforms: tuple

    @property
    def has_stopping_rule(self) -> bool:
        """Whether the inner completion can end the run (its diagnostics pass through)."""
        return getattr(self.completion, "has_stopping_rule", False)

    @property
    def vmap_seeds(self) -> bool:
        """Whether seeds may run under ``vmap``: as the inner completion says."""
        return getattr(self.completion, "vmap_seeds", True)

    def check_data(self, model, data):
        """Let the inner completion check the data before anything is traced."""
        if hasattr(self.completion, "check_data"):
            self.completion.check_data(model, data)

    def __call__(self, model) -> CompletionTransform:
        inner = self.completion(model)
        transforms = tuple(factory(model) for factory in self.transforms)

        def init(params, data):
            completion_state = inner.init(params, data)
            template = jax.eval_shape(
                lambda key: inner.update(key, params, data, completion_state)[0], jax.random.key(0)
            )
            return ChainState(completion_state, tuple(t.init(template) for t in transforms))

        def update(key, params, data, state):
            stats, completion_state = inner.update(key, params, data, state.completion_state)
            transform_states = []
            for transform, transform_state in zip(transforms, state.transform_states):
                stats, transform_state = transform.update(stats, transform_state)
                transform_states.append(transform_state)
            return stats, ChainState(completion_state, tuple(transform_states))

        return CompletionTransform(init, update)


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

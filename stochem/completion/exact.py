"""Exact completion: expected sufficient statistics under P(m | o; θ)."""

from __future__ import annotations

import dataclasses

from stochem.base import CompletionTransform, EmptyState


@dataclasses.dataclass(frozen=True)
class Exact:
    """Factory for the exact E-step; call it with a model to get the transform.

    The statistics are ``E[T(o, m) | o; θ]``, computed by the model's
    ``expected_stats(params, data)``. The key is accepted (every completion has
    the same signature) and ignored.
    """

    def __call__(self, model) -> CompletionTransform:
        if not hasattr(model, "expected_stats"):
            raise TypeError(
                f"completion=exact() needs a model with expected_stats(params, data); "
                f"{type(model).__name__} has none. Use completion=monte_carlo(num_samples) "
                "or mcmc(num_samples) instead."
            )

        def init(params, data):
            del params, data
            return EmptyState()

        def update(key, params, data, state):
            del key
            return model.expected_stats(params, data), state

        return CompletionTransform(init, update)


def exact() -> Exact:
    """Exact completion (classical EM).

    Example:
        >>> import stochem as se
        >>> completion = se.exact()
    """
    return Exact()

"""Exact completion: expected sufficient statistics under P(m | o; θ).

The E-step usually computes ℓ(θ) on the way (the normalizer of the
posterior). A model that offers ``expected_stats_and_loglik(params, data)``
returns both from one pass; the completion keeps ℓ(θ) in its state's
``loglik`` field and EM records it instead of evaluating ℓ a second time.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax.numpy as jnp

from stochem.base import CompletionTransform, EmptyState
from stochem.completion.monte_carlo import require_capabilities


class ExactState(NamedTuple):
    """ℓ(θ) at the parameters last completed (NaN before the first step)."""

    loglik: Any


@dataclasses.dataclass(frozen=True)
class Exact:
    """Factory for the exact E-step; call it with a model to get the transform.

    The statistics are ``E[T(o, m) | o; θ]``, computed by the model's
    ``expected_stats(params, data)``. The key is accepted (every completion has
    the same signature) and ignored.
    """

    def __call__(self, model) -> CompletionTransform:
        require_capabilities(model, "exact", "expected_stats",
                             hint="Use completion=monte_carlo(num_samples) or mcmc(num_samples) instead.")

        if hasattr(model, "expected_stats_and_loglik"):

            def init(params, data):
                del params, data
                return ExactState(loglik=jnp.asarray(jnp.nan))

            def update(key, params, data, state):
                del key, state
                stats, loglik = model.expected_stats_and_loglik(params, data)
                return stats, ExactState(loglik)

            return CompletionTransform(init, update)

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

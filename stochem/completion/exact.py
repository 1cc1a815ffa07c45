"""Exact completion: expected sufficient statistics under P(m | o; θ).

The E-step usually computes ℓ(θ) on the way (the normalizer of the
posterior): the model's ``expected_stats_and_loglik(params, data)`` returns
both from one pass, the completion reports ℓ(θ) in its info, and EM records it
instead of evaluating ℓ a second time.
"""

from __future__ import annotations

import dataclasses

from stochem.base import CompletionTransform, EmptyState, completion_info
from stochem.capabilities import ExactEStep, require


@dataclasses.dataclass(frozen=True)
class Exact:
    """Factory for the exact E-step; call it with a model to get the transform.

    The statistics are ``E[T(o, m) | o; θ]``, computed by the model's
    ``expected_stats_and_loglik(params, data)``. The key is accepted (every
    completion has the same signature) and ignored.
    """

    def __call__(self, model) -> CompletionTransform:
        require(model, ExactEStep, "completion=exact()",
                "Use completion=monte_carlo(num_samples) or mcmc(num_samples) instead.")

        def init(params, data):
            del params, data
            return EmptyState()

        def update(key, params, data, state):
            del key
            stats, loglik = model.expected_stats_and_loglik(params, data)
            return stats, state, completion_info(loglik)

        return CompletionTransform(init, update)


def exact() -> Exact:
    """Exact completion (classical EM).

    Example:
        >>> import stochem as se
        >>> completion = se.exact()
    """
    return Exact()

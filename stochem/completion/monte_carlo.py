"""Monte Carlo completion: the alternate EM principle.

Instead of weighting every value of the missing data by P(m | o; θ), draw
``num_samples`` completions ``m_s ~ P(m | o; θ)`` and average their sufficient
statistics::

    S_hat = (1 / S) Σ_s T(o, m_s),    E[S_hat] = E[T(o, m) | o; θ].

``num_samples=1`` is stochastic EM (Celeux & Diebolt 1985); large
``num_samples`` is Monte Carlo EM (Wei & Tanner 1990).
"""

from __future__ import annotations

import dataclasses
import operator

import jax
import jax.numpy as jnp

from stochem.base import CompletionTransform, EmptyState

# Samples are drawn in batches of this many under ``lax.map``: memory stays
# bounded by one batch of completions while small sample counts run fully
# vectorized.
_SAMPLE_BATCH = 16


def sampled_stats(model, key, params, data, num_samples: int):
    """Sufficient statistics of ``num_samples`` posterior draws, stacked.

    Returns:
        A pytree like ``model.suff_stats(...)`` with a leading axis of length
        ``num_samples``: entry ``s`` is ``T(o, m_s)``.
    """

    def one_draw(draw_key):
        return model.suff_stats(data, model.sample_latent(draw_key, params, data))

    keys = jax.random.split(key, num_samples)
    return jax.lax.map(one_draw, keys, batch_size=min(num_samples, _SAMPLE_BATCH))


@dataclasses.dataclass(frozen=True)
class MonteCarlo:
    """Factory for the sampled E-step with a fixed number of draws."""

    num_samples: int

    def __post_init__(self):
        if isinstance(self.num_samples, bool) or not isinstance(self.num_samples, int):
            try:
                as_int = operator.index(self.num_samples)
            except TypeError:
                raise TypeError(
                    f"num_samples must be a positive integer, got {self.num_samples!r}."
                ) from None
            object.__setattr__(self, "num_samples", as_int)
        if self.num_samples < 1:
            raise ValueError(
                f"num_samples must be >= 1 (1 is stochastic EM), got {self.num_samples}."
            )

    def __call__(self, model) -> CompletionTransform:
        for needed in ("sample_latent", "suff_stats"):
            if not hasattr(model, needed):
                raise TypeError(
                    f"completion=monte_carlo(...) needs a model with {needed}(...); "
                    f"{type(model).__name__} has none. Use completion=mcmc(num_samples)."
                )
        num_samples = self.num_samples

        def init(params, data):
            del params, data
            return EmptyState()

        def update(key, params, data, state):
            per_draw = sampled_stats(model, key, params, data, num_samples)
            return jax.tree_util.tree_map(lambda s: jnp.mean(s, axis=0), per_draw), state

        return CompletionTransform(init, update)


def monte_carlo(num_samples: int) -> MonteCarlo:
    """Complete the missing data by sampling it from P(m | o; θ).

    Args:
        num_samples: draws per observation and iteration (``1`` is stochastic
            EM). A Python int: it fixes array shapes in the compiled loop.

    Example:
        >>> import stochem as se
        >>> completion = se.monte_carlo(100)
    """
    return MonteCarlo(num_samples)

"""SQUAREM acceleration of exact EM (Varadhan & Roland 2008).

One SQUAREM iteration from θ0 (in the unconstrained coordinates u of
:mod:`stochem.unconstrained`) takes two EM steps, θ1 = M(θ0) and θ2 = M(θ1),
and extrapolates along them::

    r = u1 − u0,   v = (u2 − u1) − r,   α = −‖r‖ / ‖v‖   (scheme S3, α ≤ −1)
    u' = u0 − 2α r + α² v,

then stabilizes with one more EM step, θ_new = M(θ'). The safeguard keeps the
log-likelihood from decreasing: while ℓ(θ') < ℓ(θ0) (or is not finite), α is
moved halfway towards −1; at α = −1, u' = u2 and ℓ(θ2) ≥ ℓ(θ0) by EM's own
monotonicity. So every iteration costs three EM-map evaluations and never
lowers ℓ.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from stochem import _validation
from stochem.base import EMAlgorithm
from stochem.capabilities import Constrained, TractableLikelihood, require
from stochem.unconstrained import flat_unconstrained

EM_EVALUATIONS_PER_ITERATION = 3


class SquaremDiagnostics(NamedTuple):
    """Recorded in the trace each SQUAREM iteration.

    Attributes:
        em_evaluations: EM-map evaluations spent this iteration (3).
        step_length: the α finally used (−1 means a plain double EM step).
        halvings: how often the safeguard moved α towards −1.
    """

    em_evaluations: Any
    step_length: Any
    halvings: Any


@dataclasses.dataclass(frozen=True)
class Squarem:
    """Factory wrapping an EM algorithm into SQUAREM (see :func:`squarem`)."""

    max_halvings: int = 20

    def __post_init__(self):
        _validation.as_int("max_halvings", self.max_halvings, minimum=0)

    def check_model(self, model):
        require(model, TractableLikelihood, "accelerator=squarem()",
                "It needs the observed-data log-likelihood for its safeguard.")
        require(model, Constrained, "accelerator=squarem()")

    def __call__(self, algorithm: EMAlgorithm, model, data, fixed=()) -> EMAlgorithm:
        max_halvings = self.max_halvings
        free = tuple(name for name in model.constraints if name not in fixed)

        def step(key, state):
            key1, key2, key3 = jax.random.split(key, 3)
            state1, info = algorithm.step(key1, state)
            state2, _ = algorithm.step(key2, state1)
            u0, unflatten = flat_unconstrained(model, state.params, free)
            u1, _ = flat_unconstrained(model, state1.params, free)
            u2, _ = flat_unconstrained(model, state2.params, free)
            r = u1 - u0
            v = (u2 - u1) - r
            norm_v = jnp.linalg.norm(v)
            alpha = jnp.where(norm_v > 0, -jnp.linalg.norm(r) / jnp.where(norm_v > 0, norm_v, 1.0), -1.0)
            alpha = jnp.minimum(alpha, -1.0)

            def extrapolate(alpha):
                return unflatten(u0 - 2 * alpha * r + alpha**2 * v)

            def too_low(carry):
                alpha, halvings = carry
                loglik = model.log_marginal(extrapolate(alpha), data)
                bad = ~jnp.isfinite(loglik) | (loglik < info.loglik)
                return bad & (halvings < max_halvings) & (alpha < -1.0)

            def halve(carry):
                alpha, halvings = carry
                return (alpha - 1.0) / 2.0, halvings + 1

            alpha, halvings = jax.lax.while_loop(too_low, halve, (alpha, jnp.asarray(0)))
            # After max_halvings without success fall back to the plain double step.
            loglik = model.log_marginal(extrapolate(alpha), data)
            alpha = jnp.where(jnp.isfinite(loglik) & (loglik >= info.loglik), alpha, -1.0)
            extrapolated = jax.tree_util.tree_map(
                lambda safe, jumped: jnp.where(alpha == -1.0, safe, jumped),
                state2.params, extrapolate(alpha),
            )
            new_state, _ = algorithm.step(key3, state2._replace(params=extrapolated))
            diagnostics = SquaremDiagnostics(jnp.asarray(EM_EVALUATIONS_PER_ITERATION), alpha, halvings)
            return new_state, info._replace(diagnostics=diagnostics)

        def init(params):
            return algorithm.init(params)

        return EMAlgorithm(init, step)


def squarem(max_halvings: int = 20) -> Squarem:
    """SQUAREM acceleration for exact EM, with a safeguard that never lowers ℓ.

    Pass it to ``fit(..., accelerator=se.squarem())``. Each iteration of the
    trace is one SQUAREM cycle (three EM-map evaluations).

    Example:
        >>> import stochem as se
        >>> model = se.models.BinomialMixture(2, 10)
        >>> fast = se.fit(model, [5, 9, 8, 4, 7], init={"weights": [0.5, 0.5],
        ...               "probs": [0.6, 0.5]}, accelerator=se.squarem(), tol=1e-10)
    """
    return Squarem(max_halvings)

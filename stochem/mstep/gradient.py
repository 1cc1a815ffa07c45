"""Gradient M-step: ascend Q(θ) with any optax optimizer.

Q(θ) is the model's expected complete-data log-likelihood written through its
sufficient statistics, ``model.complete_loglik(params, stats)``. The ascent runs
in unconstrained space (:mod:`stochem.unconstrained`), so probabilities stay in
(0, 1), weights on the simplex and covariances positive definite. The
optimizer state is carried from one EM iteration to the next (warm start).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import optax

from stochem import _validation
from stochem.base import MStepTransform
from stochem.capabilities import CompleteLikelihood, require
from stochem.unconstrained import to_constrained, to_unconstrained


@dataclasses.dataclass(frozen=True)
class Gradient:
    """Factory for the gradient M-step.

    Attributes:
        optimizer: an ``optax.GradientTransformation``; create it once and reuse
            it, so that repeated fits share one compiled program.
        num_steps: optimizer steps per EM iteration.
    """

    optimizer: Any
    num_steps: int

    def __post_init__(self):
        if not isinstance(self.optimizer, optax.GradientTransformation):
            raise _validation.ArgumentTypeError(
                "optimizer", "optimizer must be an optax.GradientTransformation, e.g. optax.adam(1e-2); "
                f"got {type(self.optimizer).__name__}."
            )
        if isinstance(self.num_steps, bool) or not isinstance(self.num_steps, int) or self.num_steps < 1:
            raise _validation.ArgumentError("num_steps", f"num_steps must be a positive integer, got {self.num_steps!r}.")

    def __call__(self, model):
        require(model, CompleteLikelihood, "mstep=gradient(...)")
        # Optimizers such as optax.lbfgs need the objective's value and the
        # objective itself; plain ones ignore these extra arguments.
        optimizer = optax.with_extra_args_support(self.optimizer)
        num_steps = self.num_steps

        def init(params, data):
            del data
            return optimizer.init(to_unconstrained(model, params))

        def update(stats, state, params, data):
            def negative_q(unconstrained):
                return -model.complete_loglik(to_constrained(model, params, unconstrained), data, stats)

            def one_step(carry, _):
                unconstrained, opt_state = carry
                value, grads = jax.value_and_grad(negative_q)(unconstrained)
                updates, opt_state = optimizer.update(
                    grads, opt_state, unconstrained, value=value, grad=grads, value_fn=negative_q
                )
                return (optax.apply_updates(unconstrained, updates), opt_state), None

            start = to_unconstrained(model, params)
            (unconstrained, state), _ = jax.lax.scan(one_step, (start, state), None, length=num_steps)
            return to_constrained(model, params, unconstrained), state

        return MStepTransform(init, update)


def gradient(optimizer, num_steps: int = 1) -> Gradient:
    """Maximize Q(θ) by ``num_steps`` optax steps per EM iteration (generalized EM).

    Args:
        optimizer: any ``optax.GradientTransformation``; line-search optimizers
            such as ``optax.lbfgs()`` work too (they receive the value of -Q
            and -Q itself). L-BFGS reaches the exact maximizer in few steps;
            adam with a constant rate keeps a small jitter around it.
        num_steps: inner optimizer steps per EM iteration.

    Example:
        >>> import optax, stochem as se
        >>> mstep = se.gradient(optax.adam(0.05), num_steps=50)
    """
    return Gradient(optimizer, num_steps)

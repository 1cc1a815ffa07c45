"""Closed-form M-step: θ_new = argmax_θ Q(θ), solved by the model from statistics."""

from __future__ import annotations

import dataclasses

from stochem.base import EmptyState, MStepTransform


@dataclasses.dataclass(frozen=True)
class ClosedForm:
    """Factory for the closed-form M-step (``model.m_step(stats)``)."""

    def __call__(self, model) -> MStepTransform:
        if not hasattr(model, "m_step"):
            raise TypeError(
                f"mstep=closed_form() needs a model with m_step(stats); {type(model).__name__} "
                "has none. Use mstep=gradient(optimizer, num_steps)."
            )

        def init(params):
            del params
            return EmptyState()

        def update(stats, params, state):
            del params
            return model.m_step(stats), state

        return MStepTransform(init, update)


def closed_form() -> ClosedForm:
    """The model's own maximizer of Q(θ) (the default when the model has one)."""
    return ClosedForm()

"""Closed-form M-step: θ_new = argmax_θ Q(θ), solved by the model from statistics."""

from __future__ import annotations

import dataclasses

from stochem.base import EmptyState, MStepTransform
from stochem.capabilities import ClosedFormMStep, require


@dataclasses.dataclass(frozen=True)
class ClosedForm:
    """Factory for the closed-form M-step (``model.m_step(stats)``)."""

    def __call__(self, model) -> MStepTransform:
        require(model, ClosedFormMStep, "mstep=closed_form()", "Use mstep=gradient(optimizer, num_steps).")

        def init(params, data):
            del params, data
            return EmptyState()

        def update(stats, state, params, data):
            del params, data
            return model.m_step(stats), state

        return MStepTransform(init, update)


def closed_form() -> ClosedForm:
    """The model's own maximizer of Q(θ) (the default when the model has one)."""
    return ClosedForm()

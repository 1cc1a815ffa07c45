"""M-steps: closed form from statistics, or gradient ascent on Q(θ) with optax."""

from stochem.mstep.closed_form import ClosedForm, closed_form
from stochem.mstep.gradient import Gradient, gradient
from stochem.unconstrained import to_constrained, to_unconstrained

__all__ = ["ClosedForm", "Gradient", "closed_form", "gradient", "to_constrained", "to_unconstrained"]

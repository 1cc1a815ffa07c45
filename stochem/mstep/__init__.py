"""M-steps: closed form from statistics, or gradient ascent on Q(θ) with optax."""

from stochem.mstep.closed_form import ClosedForm, closed_form
from stochem.mstep.gradient import Gradient, gradient
from stochem.mstep.saem import SaemMStep, saem_mstep
from stochem.mstep.stochastic_newton import StochasticNewton, stochastic_newton
from stochem.unconstrained import to_constrained, to_unconstrained

__all__ = ["ClosedForm", "Gradient", "SaemMStep", "StochasticNewton", "closed_form", "gradient", "saem_mstep",
           "stochastic_newton", "to_constrained", "to_unconstrained"]

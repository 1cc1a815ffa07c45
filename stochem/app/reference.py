"""The exact-EM fixed point θ* of a scenario: what every run is measured against.

θ* is reached by exact EM (closed-form M-step) from the scenario's shared start
θ₀ with ``reference.num_iters`` iterations. It is computed once per scenario
and process (the cache), which is cheap next to the Monte Carlo runs. How well
it has converged is recorded: ``last_step`` is the distance between its last
two iterates, which bounds how small a distance to θ* can meaningfully be.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np

import stochem as se
from stochem.app.matching import distance
from stochem.app.scenarios import Scenario


class FixedPoint(NamedTuple):
    """The exact-EM fixed point of a scenario.

    Attributes:
        params: θ*, a dict field -> numpy array.
        loglik: ℓ(θ*), the observed-data log-likelihood there.
        num_iters: exact-EM iterations run to reach it.
        last_step: distance between the last two exact-EM iterates.
    """

    params: dict
    loglik: float
    num_iters: int
    last_step: float


def as_dict(params) -> dict:
    """A params NamedTuple as a dict of numpy arrays."""
    return {name: np.asarray(value) for name, value in params._asdict().items()}


@functools.lru_cache(maxsize=32)
def exact_fixed_point(scenario: Scenario, num_iters: int) -> FixedPoint:
    """Run exact EM from θ₀ for ``num_iters`` iterations (cached per scenario and ``num_iters``)."""
    result = se.fit(scenario.model, scenario.data, completion=se.exact(), mstep=se.closed_form(),
                    init=scenario.init, num_iters=num_iters, fixed=scenario.fixed)
    trace = as_dict(result.trace.params)
    final = {name: value[-1] for name, value in trace.items()}
    before = {name: value[-2] for name, value in trace.items()}
    return FixedPoint(params=final, loglik=float(result.trace.loglik[-1]), num_iters=num_iters,
                      last_step=distance(before, final, scenario.symmetry))

"""Failure is loud and loses nothing: a step with non-finite θ or ℓ, or a failed E-step, stops the run,
names the iteration and the cause, and keeps the trace and the last finite parameters."""

import dataclasses
import warnings
from typing import Any, NamedTuple

import jax.numpy as jnp
import numpy as np
import pytest

import stochem as se
from stochem.base import MStepTransform
from stochem.mstep.stochastic_newton import backtrack

HEADS = [5, 9, 8, 4, 7]
START = {"weights": [0.5, 0.5], "probs": [0.6, 0.5]}
MODEL = se.models.BinomialMixture(num_components=2, num_trials=10)


class _Counted(NamedTuple):
    inner: Any
    count: Any


@dataclasses.dataclass(frozen=True)
class BreaksAt:
    """The closed-form M-step, except that its update number ``at`` returns NaN probabilities."""

    at: int

    def __call__(self, model):
        inner = se.closed_form()(model)

        def init(params, data):
            return _Counted(inner.init(params, data), jnp.asarray(0))

        def update(stats, state, params, data):
            new, inner_state = inner.update(stats, state.inner, params, data)
            new = new._replace(probs=jnp.where(state.count == self.at, jnp.nan, new.probs))
            return new, _Counted(inner_state, state.count + 1)

        return MStepTransform(init, update)


@pytest.mark.parametrize("tol", [None, 1e-12])  # lax.scan and lax.while_loop
def test_a_nan_step_raises_naming_the_iteration_and_keeps_the_trace_and_last_finite_params(tol):
    reference = se.fit(MODEL, HEADS, init=START, num_iters=3)
    with pytest.raises(se.FitFailed, match="iteration 2: the M-step returned non-finite parameters") as caught:
        se.fit(MODEL, HEADS, init=START, num_iters=6, tol=tol, mstep=BreaksAt(2))
    result = caught.value.result
    assert result.num_iters == 2 and not result.converged
    assert "iteration 2" in result.failure
    # θ_0, θ_1, θ_2 kept; θ_2 is the last finite one and is what the fit returns.
    np.testing.assert_allclose(result.trace.params.probs, reference.trace.params.probs[:3], atol=1e-12)
    np.testing.assert_allclose(result.params.probs, reference.trace.params.probs[2], atol=1e-12)
    np.testing.assert_allclose(result.trace.loglik, reference.trace.loglik[:3], atol=1e-12)


def test_on_failure_warn_returns_the_result_and_seeds_fail_one_by_one():
    with pytest.warns(RuntimeWarning, match="iteration 1: the M-step returned non-finite"):
        result = se.fit(MODEL, HEADS, init=START, num_iters=4, mstep=BreaksAt(1), on_failure="warn")
    assert result.num_iters == 1 and np.all(np.isfinite(result.params.probs))
    with pytest.warns(RuntimeWarning, match="2 of 2 seeds failed; first: EM failed at iteration 1 \\(seed 0\\)"):
        batched = se.fit(MODEL, HEADS, init=START, num_iters=4, key=[0, 1], mstep=BreaksAt(1), on_failure="warn")
    assert list(batched.num_iters) == [1, 1] and len(batched.failure) == 2
    assert np.all(np.isnan(batched.trace.params.probs[:, 2:])) and np.all(np.isfinite(batched.params.probs))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert se.fit(MODEL, HEADS, init=START, num_iters=4).failure is None
    with pytest.raises(ValueError, match="on_failure must be 'raise' or 'warn'") as caught:
        se.fit(MODEL, HEADS, init=START, on_failure="ignore")
    assert caught.value.argument == "on_failure"


def test_an_mcmc_step_whose_transitions_all_diverge_is_a_failed_e_step():
    """A step size of 1e4 on a unit-scale posterior: every HMC transition has an energy error > 1000."""
    from tests.models import numpyro_examples as examples

    model = se.models.from_numpyro(examples.normal_normal, np.array([0.4, -1.3, 2.2]), 0.7)
    completion = se.mcmc(5, kernel="hmc", num_warmup=0, num_burnin=0, step_size=1e4, num_leapfrog_steps=3)
    with pytest.raises(se.FitFailed, match="iteration 0: the E-step failed.*num_divergent=5") as caught:
        se.fit(model, None, completion=completion, num_iters=3)
    result = caught.value.result
    assert result.num_iters == 0 and int(result.trace.diagnostics.num_divergent[0]) == 5
    np.testing.assert_allclose(result.params.mu, result.trace.params.mu[0])


def test_backtracking_halves_an_overshooting_step_and_refuses_a_descent_direction():
    def objective(x):
        return -jnp.sum(x**2)

    start = jnp.array([1.0])
    gradient = jnp.array([-2.0])
    # Full step to −3 loses; half to −1 gains nothing; a quarter reaches the maximum.
    assert float(backtrack(objective, start, gradient, jnp.array([-4.0]))) == 0.25
    assert float(backtrack(objective, start, gradient, jnp.array([-1.0]))) == 1.0
    assert float(backtrack(objective, start, gradient, jnp.array([1.0]))) == 0.0
    assert float(backtrack(lambda x: jnp.where(x[0] > 0.9, jnp.nan, -(x[0] - 2.0) ** 2), start * 0,
                           jnp.array([4.0]), jnp.array([2.0]))) == 0.25  # NaN beyond 0.9: only t = 1/4 stays finite

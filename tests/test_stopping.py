"""tol with sampled completions: the Booth–Hobert rule (relative parameter change within tol 3 times running)."""

import numpy as np
import pytest

import stochem as se
from stochem.loop import SAMPLED_TOL_OFFSET, SAMPLED_TOL_STREAK

HEADS = [5, 9, 8, 4, 7, 2, 9, 8, 3, 6]
START = {"weights": [0.5, 0.5], "probs": [0.6, 0.5]}
MODEL = se.models.BinomialMixture(num_components=2, num_trials=10)


def _relative_changes(params_trace):
    changes = []
    for old, new in zip(np.asarray(params_trace)[:-1], np.asarray(params_trace)[1:]):
        changes.append(np.max(np.abs(new - old) / (np.abs(old) + SAMPLED_TOL_OFFSET)))
    return np.array(changes)


@pytest.mark.parametrize("completion", [se.monte_carlo(4000), se.saem(se.monte_carlo(20))])
def test_a_sampled_run_stops_at_the_first_streak_of_small_relative_changes(completion):
    tol = 0.005
    result = se.fit(MODEL, HEADS, init=START, completion=completion, num_iters=400, tol=tol, key=2)
    assert result.converged and SAMPLED_TOL_STREAK <= result.num_iters < 400
    trace = result.trace.params
    both = np.concatenate([np.asarray(trace.weights), np.asarray(trace.probs)], axis=1)
    small = _relative_changes(both) <= tol
    assert small.shape == (result.num_iters,) and np.all(small[-SAMPLED_TOL_STREAK:])
    # No earlier streak of 3.
    runs = np.convolve(small[:-1].astype(int), np.ones(SAMPLED_TOL_STREAK, int), mode="valid")
    assert np.all(runs < SAMPLED_TOL_STREAK)
    # The stopped run is the fixed-length run cut at the same iteration (same keys).
    fixed_length = se.fit(MODEL, HEADS, init=START, completion=completion, num_iters=result.num_iters, key=2)
    np.testing.assert_allclose(fixed_length.params.probs, result.params.probs, atol=1e-12)


def test_a_tolerance_below_the_monte_carlo_noise_does_not_stop_the_run():
    """With 5 draws a step moves θ by far more than 1e-6 relative: the run never converges."""
    result = se.fit(MODEL, HEADS, init=START, completion=se.monte_carlo(5), num_iters=30, tol=1e-6, key=1)
    assert not result.converged and result.num_iters == 30

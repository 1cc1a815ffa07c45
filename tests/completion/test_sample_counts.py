"""Sample-count schedules and the Monte Carlo diagnostics recorded in the trace."""

import jax
import numpy as np
import pytest

import stochem as se

HEADS = [5, 9, 8, 4, 7, 2, 10, 6]
MODEL = se.models.BinomialMixture(num_components=2, num_trials=10)
START = {"weights": [0.4, 0.6], "probs": [0.7, 0.35]}


def test_geometric_schedule_is_followed_and_recorded():
    schedule = se.geometric_samples(4, 1.5)
    result = se.fit(MODEL, HEADS, completion=se.monte_carlo(schedule, max_samples=40), init=START, num_iters=8)
    expected = [min(int(np.ceil(4 * 1.5**k - 1e-9)), 40) for k in range(8)]
    np.testing.assert_array_equal(result.trace.diagnostics.num_samples, expected)


def test_draws_do_not_depend_on_the_buffer_size():
    fixed = se.fit(MODEL, HEADS, completion=se.monte_carlo(10), init=START, num_iters=3, key=5)
    scheduled = se.fit(MODEL, HEADS, completion=se.monte_carlo(lambda count: 10, max_samples=64),
                       init=START, num_iters=3, key=5)
    np.testing.assert_allclose(fixed.trace.params.probs, scheduled.trace.params.probs, atol=1e-12)


def test_recorded_standard_error_matches_the_spread_of_repeated_estimates():
    params = MODEL.prepare_params(START, None)
    data = MODEL.prepare_data(HEADS)
    transform = se.monte_carlo(20)(MODEL)
    state = transform.init(params, data)
    update = jax.jit(jax.vmap(lambda key: transform.update(key, params, data, state)))
    stats, _, infos = update(jax.random.split(jax.random.key(0), 400))
    estimates = np.asarray(stats.heads)
    reported = np.asarray(infos.diagnostics.stats_stderr.heads).mean(axis=0)
    # 400 replicates estimate a standard deviation to ~3.5% (1/sqrt(2·400)); 15% is > 4 of those.
    np.testing.assert_allclose(reported, estimates.std(axis=0, ddof=1), rtol=0.15)


def test_schedule_needs_a_bound():
    with pytest.raises(ValueError, match="max_samples"):
        se.monte_carlo(se.geometric_samples(5, 2.0))
    with pytest.raises(ValueError, match="max_samples only goes with"):
        se.monte_carlo(10, max_samples=20)
    with pytest.raises(ValueError, match="growth"):
        se.geometric_samples(5, 0.5)

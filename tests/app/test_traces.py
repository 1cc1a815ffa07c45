"""How a job turns a fit's trace into table rows: stopped runs, sample counts, time per iteration."""

from __future__ import annotations

import jax
import numpy as np
import pytest

import stochem as se
from stochem.app import traces
from stochem.completion.sampling import SAMPLE_BATCH


def test_time_is_spread_evenly_for_a_fixed_cost_per_iteration():
    elapsed = traces.elapsed_seconds(2.0, 4, np.full((3, 5), 10.0), varying=False)
    np.testing.assert_allclose(elapsed, [0, 0.5, 1.0, 1.5, 2.0])


def test_time_follows_the_draw_batches_when_the_sample_count_changes():
    counts = np.array([[np.nan, SAMPLE_BATCH, 3 * SAMPLE_BATCH, 0],
                       [np.nan, 1, 2 * SAMPLE_BATCH, 0]])  # seed 0 ran 3 iterations, seed 1 stopped after 2
    counts[1, 3] = np.nan
    elapsed = traces.elapsed_seconds(6.0, 3, counts, varying=True)
    # weights 1 + batches of the largest count: 2, 4, then 0 (no seed ran) -> 6 s in all
    np.testing.assert_allclose(elapsed, [0, 2.0, 6.0, 6.0])


def test_stopped_seeds_and_their_sample_counts_come_from_the_trace():
    jax.config.update("jax_enable_x64", True)
    model = se.models.BinomialMixture(2, 10)
    result = se.fit(model, [5, 9, 8, 4, 7], completion=se.ascent_monte_carlo(4, 64, tol=0.5),
                    init={"weights": [0.5, 0.5], "probs": [0.6, 0.5]}, fixed=("weights",), key=[0, 1, 2],
                    num_iters=30)
    lengths = traces.iterations_run(result, 3) + 1
    logliks = np.asarray(result.trace.loglik)
    for seed, length in enumerate(lengths):
        assert np.isfinite(logliks[seed, :length]).all() and np.isnan(logliks[seed, length:]).all()
    counts = traces.sample_counts(result, fixed=None)
    assert np.isnan(counts[:, 0]).all() and counts[0, 1] == 4  # no draw behind θ_0; the first sample
    assert traces.sample_counts(result, fixed=7)[1, 5] == 7


@pytest.mark.parametrize("average_from", [0, 5])
def test_averaged_iterates_are_running_means_with_their_loglik(average_from):
    jax.config.update("jax_enable_x64", True)
    model = se.models.BinomialMixture(2, 10)
    data = [5, 9, 8, 4, 7]
    result = se.fit(model, data, completion=se.monte_carlo(1), init={"weights": [0.5, 0.5], "probs": [0.6, 0.5]},
                    fixed=("weights",), key=[0, 1], num_iters=10)
    logliks, params = traces.averaged(result, model, model.prepare_data(data), average_from)
    probs = np.asarray(result.trace.params.probs)
    np.testing.assert_allclose(params.probs[:, -1], probs[:, average_from:].mean(axis=1))
    expected = model.log_marginal(jax.tree_util.tree_map(lambda leaf: leaf[1, -1], params), model.prepare_data(data))
    np.testing.assert_allclose(logliks[1, -1], expected)

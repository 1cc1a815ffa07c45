"""``FitResult.to_pandas``: one row per seed and iteration, named like the app's table."""

import subprocess
import sys

import numpy as np
import pytest

import stochem as se
from stochem.app.job import TABLE_COLUMNS

HEADS = [5, 9, 8, 4, 7]
MODEL = se.models.BinomialMixture(num_components=2, num_trials=10)
START = {"weights": [0.5, 0.5], "probs": [0.6, 0.5]}


def test_one_seed_gives_one_row_per_iteration_with_flattened_parameters():
    result = se.fit(MODEL, HEADS, init=START, num_iters=4)
    table = result.to_pandas()
    assert list(table.columns) == ["seed", "iteration", "loglik", "loglik_stderr",
                                   "weights[0]", "weights[1]", "probs[0]", "probs[1]"]
    assert {"seed", "iteration", "loglik"} <= set(TABLE_COLUMNS)
    assert list(table["iteration"]) == [0, 1, 2, 3, 4] and set(table["seed"]) == {0}
    np.testing.assert_array_equal(table["loglik"], result.trace.loglik)
    np.testing.assert_array_equal(table["probs[1]"], result.trace.params.probs[:, 1])
    np.testing.assert_array_equal(table["loglik_stderr"], 0.0)


def test_matrices_are_named_by_row_and_column():
    data = np.array([[0.0, 1.0], [0.5, 0.2], [4.0, 5.0], [4.5, 4.1], [0.1, 0.3]])
    result = se.fit(se.models.GaussianMixture(2, covariance_type="tied"), data, num_iters=2)
    columns = list(result.to_pandas().columns)
    assert columns[4:] == ["weights[0]", "weights[1]", "means[0,0]", "means[0,1]", "means[1,0]", "means[1,1]",
                           "covariances[0,0]", "covariances[0,1]", "covariances[1,0]", "covariances[1,1]"]
    np.testing.assert_array_equal(result.to_pandas()["means[1,0]"], result.trace.params.means[:, 1, 0])


def test_seeds_that_stop_early_keep_their_own_iterations_and_labels():
    runs = se.fit(MODEL, HEADS, key=[3, 4, 5], num_iters=300, tol=1e-9)
    assert len(set(np.asarray(runs.num_iters))) > 1, "the seeds should stop after different iterations"
    table = runs.to_pandas(seeds=[3, 4, 5])
    for index, seed in enumerate([3, 4, 5]):
        rows = table[table["seed"] == seed]
        assert list(rows["iteration"]) == list(range(int(runs.num_iters[index]) + 1))
        np.testing.assert_array_equal(rows["loglik"], runs.trace.loglik[index, : len(rows)])
    assert not table["loglik"].isna().any()
    with pytest.raises(ValueError, match="one label per seed"):
        runs.to_pandas(seeds=[1, 2])


def test_scalar_diagnostics_become_columns_aligned_with_the_iterate_they_produced():
    runs = se.fit(MODEL, HEADS, init=START, key=[0, 1], num_iters=3,
                  completion=se.monte_carlo(se.geometric_samples(10, 2.0), max_samples=200))
    table = runs.to_pandas()
    assert "num_samples" in table.columns
    first = table[table["seed"] == 0]
    assert np.isnan(first["num_samples"].iloc[0])
    np.testing.assert_array_equal(first["num_samples"].iloc[1:], runs.trace.diagnostics.num_samples[0])
    assert not any(name.startswith("stats_stderr") for name in table.columns)


def test_pandas_is_imported_only_when_a_table_is_asked_for():
    code = ("import sys, stochem as se; assert 'pandas' not in sys.modules; "
            "r = se.fit(se.models.BinomialMixture(2, 10), [5, 9, 8], num_iters=1); r.to_pandas(); "
            "assert 'pandas' in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)

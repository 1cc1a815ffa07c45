"""Random subsets of rows (``stochem.subsets.distinct_rows``): distinct, in range, every subset equally likely."""

from __future__ import annotations

import itertools
import math

import jax
import numpy as np
import pytest

from stochem.subsets import _FLOYD_WORK_PER_ROW, distinct_rows
from tests.mc_checks import assert_mean_matches


def _draws(num_rows, size, num_draws, seed=0):
    keys = jax.random.split(jax.random.key(seed), num_draws)
    return np.asarray(jax.jit(jax.vmap(lambda key: distinct_rows(key, num_rows, size)))(keys))


@pytest.mark.parametrize("num_rows, size", [(6, 3), (5, 1), (4, 4)])
def test_every_subset_is_equally_likely(num_rows, size):
    """Indicators of each of the C(N, B) subsets: their means against 1 / C(N, B) by z-scores."""
    draws = np.sort(_draws(num_rows, size, 40_000), axis=1)
    subsets = list(itertools.combinations(range(num_rows), size))
    indicators = np.stack([np.all(draws == np.array(subset), axis=1) for subset in subsets], axis=1)
    assert indicators.sum(axis=1).tolist() == [1] * len(draws)  # distinct values in range: one subset each
    assert_mean_matches(indicators.astype(float), np.full(len(subsets), 1 / math.comb(num_rows, size)))


def test_rows_of_a_larger_data_set_are_included_with_probability_b_over_n():
    """Floyd's steps at N = 200, B = 12: each row's inclusion frequency against B / N, pairs of the first
    rows against B(B − 1) / (N(N − 1)), by z-scores."""
    num_rows, size = 200, 12
    draws = _draws(num_rows, size, 20_000, seed=1)
    assert all(len(set(row)) == size for row in draws.tolist())
    assert draws.min() >= 0 and draws.max() < num_rows
    included = np.zeros((len(draws), num_rows))
    np.put_along_axis(included, draws, 1.0, axis=1)
    assert_mean_matches(included, np.full(num_rows, size / num_rows))
    pairs = np.stack([included[:, i] * included[:, j] for i, j in itertools.combinations(range(5), 2)], axis=1)
    assert_mean_matches(pairs, np.full(pairs.shape[1], size * (size - 1) / (num_rows * (num_rows - 1))))


def test_a_batch_that_is_a_large_share_of_the_rows_is_drawn_by_a_permutation():
    num_rows, size = 1000, 400
    assert size * size > _FLOYD_WORK_PER_ROW * num_rows  # the permutation's side of the rule
    rows = np.asarray(distinct_rows(jax.random.key(2), num_rows, size))
    assert len(set(rows.tolist())) == size and rows.min() >= 0 and rows.max() < num_rows

"""Exact EM over chunks read from disk equals the in-memory fit (same statistics, summed in another order)."""

from __future__ import annotations

import numpy as np
import pytest

import stochem as se
from stochem import out_of_core
from tests.models import numpyro_examples

NUM_POINTS = 1003  # not a multiple of the chunk size: the leftover rows join the last chunk
START = {"weights": [0.3, 0.3, 0.4], "means": [[-1.0, 0.0], [0.0, 1.0], [1.0, 0.0]],
         "covariances": np.stack([np.eye(2)] * 3)}


def points():
    rng = np.random.default_rng(3)
    centres = np.array([[-3.0, 0.0], [0.0, 2.0], [3.0, -1.0]])
    return centres[rng.integers(0, 3, NUM_POINTS)] + rng.standard_normal((NUM_POINTS, 2))


@pytest.fixture(scope="module")
def in_memory():
    return se.fit(se.models.GaussianMixture(3), points(), init=START, num_iters=12)


@pytest.fixture(scope="module")
def npy_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("out_of_core") / "points.npy"
    np.save(path, points())
    return path


def _assert_same_fit(result, reference):
    np.testing.assert_allclose(result.params.means, reference.params.means, rtol=0, atol=1e-10)
    np.testing.assert_allclose(result.params.covariances, reference.params.covariances, rtol=0, atol=1e-10)
    np.testing.assert_allclose(result.trace.loglik, reference.trace.loglik, rtol=0, atol=1e-8)
    assert result.num_iters == reference.num_iters
    assert reference.trace.loglik[-1] > reference.trace.loglik[0] + 10  # the fit moved


def test_a_npy_file_read_in_chunks_gives_the_in_memory_fit(in_memory, npy_path):
    result = se.fit_out_of_core(se.models.GaussianMixture(3), npy_path, init=START, num_iters=12,
                                chunk_rows=250)
    _assert_same_fit(result, in_memory)
    np.testing.assert_allclose(result.trace.params.means, in_memory.trace.params.means, rtol=0, atol=1e-10)


def test_a_memory_map_in_one_chunk_gives_the_in_memory_fit(in_memory, npy_path):
    result = se.fit_out_of_core(se.models.GaussianMixture(3), np.load(npy_path, mmap_mode="r"), init=START,
                                num_iters=12, chunk_rows=5000)
    _assert_same_fit(result, in_memory)


def test_a_npy_file_in_one_chunk_reuses_its_buffers_across_passes(in_memory, npy_path):
    """One chunk a pass: the reads of later passes refill buffers that earlier passes' E-steps read."""
    result = se.fit_out_of_core(se.models.GaussianMixture(3), npy_path, init=START, num_iters=12,
                                chunk_rows=5000)
    _assert_same_fit(result, in_memory)


def test_a_parquet_file_gives_the_in_memory_fit(in_memory, tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    x = points()
    path = tmp_path / "points.parquet"
    pq.write_table(pa.table({"x0": x[:, 0], "x1": x[:, 1]}), path, row_group_size=170)
    result = se.fit_out_of_core(se.models.GaussianMixture(3), path, init=START, num_iters=12, chunk_rows=250)
    _assert_same_fit(result, in_memory)


def test_tolerance_stops_where_the_in_memory_fit_stops(npy_path):
    reference = se.fit(se.models.GaussianMixture(3), points(), init=START, num_iters=200, tol=1e-3)
    result = se.fit_out_of_core(se.models.GaussianMixture(3), npy_path, init=START, num_iters=200, tol=1e-3,
                                chunk_rows=400)
    assert result.converged and reference.converged
    _assert_same_fit(result, reference)


def test_chunk_bounds_cover_every_row_once():
    for num_rows, chunk_rows in [(10, 3), (9, 3), (2, 5), (1, 1)]:
        bounds = out_of_core.chunk_bounds(num_rows, chunk_rows)
        covered = np.concatenate([np.arange(start, stop) for start, stop in bounds])
        np.testing.assert_array_equal(covered, np.arange(num_rows))
        assert all(stop - start < 2 * chunk_rows for start, stop in bounds)


def test_bad_arguments_are_named(npy_path, tmp_path):
    model = se.models.GaussianMixture(3)
    with pytest.raises(ValueError, match="chunk_rows") as caught:
        se.fit_out_of_core(model, npy_path, init=START, chunk_rows=0)
    assert caught.value.argument == "chunk_rows"
    with pytest.raises(ValueError, match="neither a .npy nor a .parquet") as caught:
        se.fit_out_of_core(model, tmp_path / "points.csv", init=START)
    assert caught.value.argument == "source"
    with pytest.raises(TypeError, match="closed-form|m_step|ClosedFormMStep"):
        se.fit_out_of_core(se.models.from_numpyro(numpyro_examples.coins, np.array([1, 7, 9]), 10), npy_path)


def test_a_nan_in_a_later_chunk_is_reported(tmp_path):
    x = points()
    x[900, 1] = np.nan
    path = tmp_path / "nan.npy"
    np.save(path, x)
    with pytest.raises(ValueError, match="contains NaN"):
        se.fit_out_of_core(se.models.GaussianMixture(3), path, init=START, num_iters=2, chunk_rows=250)


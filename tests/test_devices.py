"""Several devices give the one-device results: seeds spread over devices, points cut between them.

JAX fixes its devices when it starts, so the two-device runs happen in a child
process started with ``JAX_NUM_CPU_DEVICES=2`` (``tests/devices_child.py``);
this process (one device) computes the same things and compares.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import stochem as se
from stochem import devices
from tests import devices_child
from tests.mc_checks import assert_mean_matches

CHILD = Path(devices_child.__file__)


@pytest.fixture(scope="module")
def two_devices(tmp_path_factory):
    """The child's results, computed with two CPU devices."""
    output = tmp_path_factory.mktemp("devices") / "two_devices.npz"
    environment = dict(os.environ, JAX_NUM_CPU_DEVICES="2", JAX_PLATFORMS="cpu")
    finished = subprocess.run([sys.executable, str(CHILD), str(output)], env=environment, capture_output=True,
                              text=True, timeout=600)
    assert finished.returncode == 0, finished.stderr[-4000:]
    return dict(np.load(output))


def test_the_child_really_had_two_devices_and_cut_the_points(two_devices):
    assert int(two_devices["num_devices"]) == 2
    assert bool(two_devices["points_are_cut"])


def test_two_devices_give_the_one_device_results(two_devices):
    """Exact EM over cut points, gradients and vmap through a cut pass, seeds spread over devices."""
    here = devices_child.compare_across_devices()
    for name, value in here.items():
        np.testing.assert_allclose(two_devices[name], value, rtol=1e-10, atol=1e-10, err_msg=name)


def test_a_draw_over_cut_points_is_the_same_by_both_routes(two_devices):
    """The fused one-pass draw and the stored-posterior sampler number the blocks alike on two devices."""
    np.testing.assert_array_equal(two_devices["fused_counts"], two_devices["sampler_counts"])
    np.testing.assert_allclose(two_devices["fused_second"], two_devices["sampler_second"], rtol=1e-12)
    np.testing.assert_allclose(two_devices["fused_loglik"], two_devices["exact_loglik"], rtol=1e-12)
    np.testing.assert_allclose(two_devices["sampler_loglik"], two_devices["exact_loglik"], rtol=1e-12)


def test_draws_over_cut_points_follow_the_posterior(two_devices):
    """Component counts of many draws against the exact expected counts (z-scores); every point drawn once."""
    drawn = two_devices["drawn_counts"]
    np.testing.assert_allclose(drawn.sum(axis=1), devices_child.LARGE)
    assert_mean_matches(drawn, two_devices["exact_counts"])
    assert len({tuple(row) for row in drawn}) > 1  # the draws differ from key to key


def test_counts_over_cut_points_follow_the_posterior(two_devices):
    """S labels per point as counts in one pass over cut points (and the point left over): component
    counts and their reported variance against the exact ones (z-scores); the summed statistics are
    those of the returned shares, whose rows sum to one; ℓ is exact."""
    assert_mean_matches(two_devices["counted_counts"], two_devices["exact_counts"])
    assert_mean_matches(two_devices["counted_variances"], two_devices["counted_exact_variances"])
    assert np.all(two_devices["counted_gaps"] < 1e-8 * devices_child.LARGE)
    np.testing.assert_allclose(two_devices["counted_row_sums"], 1.0, rtol=1e-12)
    np.testing.assert_allclose(two_devices["counted_logliks"], two_devices["exact_loglik"], rtol=1e-12)
    assert len({tuple(row) for row in two_devices["counted_counts"]}) > 1


def test_each_device_draws_from_its_own_stream(two_devices):
    """Identical halves on the two devices: with one shared stream every count would be even."""
    counts = np.rint(two_devices["mirrored_counts"]).astype(int)
    assert np.any(counts % 2 == 1)


def test_one_device_keeps_everything_in_place():
    jnp.zeros(1).block_until_ready()  # JAX has started (with one device here)
    assert jax.device_count() == 1
    assert devices.points_mesh(10**8) is None
    assert devices.seeds_mesh(64) is None


def test_use_cpu_cores_checks_its_argument_and_when_it_is_called():
    jnp.zeros(1).block_until_ready()  # JAX has started with one CPU device
    with pytest.raises(ValueError, match="num_cores"):
        se.use_cpu_cores(0)
    with pytest.raises(TypeError, match="num_cores"):
        se.use_cpu_cores("2")
    assert se.use_cpu_cores(1) == 1  # the number already in force: harmless
    with pytest.raises(RuntimeError, match="JAX_NUM_CPU_DEVICES=2"):
        se.use_cpu_cores(2)

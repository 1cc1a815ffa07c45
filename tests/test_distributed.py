"""One fit over two processes (JAX's distributed runtime on localhost, CPU, gloo) equals the one-process fit.

Two children (``tests/distributed_child.py``) each hold half of every data set
as a global ``jax.Array`` sharded over both processes; this process fits the
whole data set alone. Exact EM must agree to rounding: means to 1e-10, ℓ to 1e-8.
Sampled completions whose random numbers depend only on the key and the global
position (online EM, the HMM's SAEM, numpyro's Monte Carlo EM) must agree as
well; the mixture's counts, drawn per device share, are judged by z-scores.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import stochem as se
from stochem import distributed
from tests import distributed_child
from tests.app.running import app_environment
from tests.mc_checks import z_threshold

CHILD = Path(distributed_child.__file__)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("localhost", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory):
    """The children's results (process 0 writes them)."""
    output = tmp_path_factory.mktemp("distributed") / "results.npz"
    # The app tests' compilation cache: a second run of the suite skips the children's compiles.
    environment = {**app_environment(), "JAX_NUM_CPU_DEVICES": "1"}
    port = str(_free_port())
    children = [subprocess.Popen([sys.executable, str(CHILD), str(rank), port, str(output)], env=environment,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                for rank in (0, 1)]
    logs = [child.communicate(timeout=900)[0] for child in children]
    for rank, (child, log) in enumerate(zip(children, logs)):
        assert child.returncode == 0, f"process {rank} failed:\n{log[-4000:]}"
    with np.load(output) as results:
        return dict(results)


@pytest.fixture(scope="module")
def one_process():
    return distributed_child.fits(distributed_child.all_rows)


def test_the_children_held_global_arrays(two_processes):
    assert bool(two_processes["was_global"])


def assert_same_fits(two_processes, one_process, prefix):
    """Every result named ``prefix…`` equal over two processes and one (ℓ to 1e-8, the rest to 1e-10),
    and the fit moved (the comparison is not of two untouched starts)."""
    for name in one_process:
        if name.startswith(prefix):
            tolerance = 1e-8 if name.endswith("loglik") else 1e-10
            np.testing.assert_allclose(two_processes[name], one_process[name], rtol=0, atol=tolerance,
                                       err_msg=name)
    assert one_process[f"{prefix}_loglik"][-1] > one_process[f"{prefix}_loglik"][0] + 1.0


@pytest.mark.parametrize("model", ["mixture", "hmm", "coins"])
def test_two_processes_give_the_one_process_fit(two_processes, one_process, model):
    assert_same_fits(two_processes, one_process, model)


@pytest.fixture(scope="module")
def one_process_sampled():
    return distributed_child.sampled_fits(distributed_child.all_rows)


@pytest.mark.parametrize("fit", ["online_mixture", "saem_hmm", "mc_coins"])
def test_sampled_completions_over_two_processes_draw_what_one_process_draws(two_processes, one_process_sampled,
                                                                              fit):
    assert_same_fits(two_processes, one_process_sampled, fit)


def test_monte_carlo_counts_over_two_processes_match_exact_em_by_their_standard_errors(two_processes):
    """Each seed's weights after one Monte Carlo step, against exact EM's step, in units of their reported error."""
    mixture = se.models.GaussianMixture(3)
    exact = se.fit(mixture, distributed_child.mixture_points(), init=distributed_child.MIXTURE_START,
                   num_iters=1).params.weights
    stderr = two_processes["draws_weights_stderr"]
    assert np.all(stderr > 1e-4)  # the draws vary
    z = (two_processes["draws_weights"] - np.asarray(exact)) / stderr
    assert np.all(np.abs(z) < z_threshold(z.size)), z
    # The seeds drew different numbers.
    assert len({tuple(row) for row in np.round(two_processes["draws_weights"], 12)}) == distributed_child.NUM_SEEDS


def test_each_process_draws_its_rows_with_its_own_numbers(two_processes):
    """Both processes hold the same rows: equal counts on both halves would mean one key for both."""
    counts = two_processes["repeated_rows_counts"]
    half = counts.shape[0] // 2
    np.testing.assert_allclose(counts.sum(axis=1), 1.0, atol=1e-12)
    assert not np.array_equal(counts[:half], counts[half:])


def test_a_nan_on_one_process_is_reported_by_every_process(two_processes):
    assert "contains NaN" in str(two_processes["rejected"])


def test_one_process_is_not_distributed():
    assert not distributed.is_multi_process()
    assert not distributed.is_global_array(np.zeros(3))


def test_bad_arguments_are_named_before_anything_starts():
    with pytest.raises(ValueError, match="process_id must be in 0..1") as caught:
        distributed.initialize("localhost:1", num_processes=2, process_id=2)
    assert caught.value.argument == "process_id"
    with pytest.raises(ValueError, match="not divisible by the .* devices; drop") as caught:
        distributed.row_share(7, process_id=0, num_processes=2)
    assert caught.value.argument == "num_rows"


def test_row_shares_cover_the_file_once():
    shares = [distributed.row_share(12, process_id=rank, num_processes=3) for rank in range(3)]
    np.testing.assert_array_equal(np.concatenate([np.arange(12)[share] for share in shares]), np.arange(12))


def test_read_npy_rows_in_one_process_reads_the_whole_file(tmp_path):
    rows = np.arange(12.0).reshape(6, 2)
    np.save(tmp_path / "rows.npy", rows)
    np.testing.assert_array_equal(np.asarray(distributed.read_npy_rows(tmp_path / "rows.npy")), rows)

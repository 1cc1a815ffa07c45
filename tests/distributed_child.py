"""What ``test_distributed.py`` fits in one process and, over two processes, in two children.

Run as a script it is one child of a two-process JAX program on localhost (CPU, gloo):
``python tests/distributed_child.py PROCESS_ID PORT OUT.npz``. Each child holds half of
every data set as a global array; process 0 writes the results of :func:`fits`,
:func:`sampled_fits`, :func:`mixture_draws` and :func:`counts_of_repeated_rows` to ``OUT.npz``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import jax
import numpy as np

jax.config.update("jax_enable_x64", True)

if __name__ == "__main__":  # a child: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import optax  # noqa: E402

import stochem as se  # noqa: E402
from stochem import distributed  # noqa: E402
from tests.models.numpyro_examples import coins  # noqa: E402  the two coins, a plate over the sets

NUM_POINTS = 1200
NUM_SEQUENCES, SEQUENCE_LENGTH = 40, 15
NUM_SETS, NUM_TRIALS = 200, 10
# Monte Carlo EM's first step on the mixture: seeds and draws per point.
NUM_SEEDS, NUM_DRAWS = 8, 20
# A start whose posteriors are far from 0 and 1 (the draws vary).
MIXTURE_START = {"weights": [1 / 3, 1 / 3, 1 / 3], "means": [[-2.0, 0.5], [0.5, 1.0], [2.0, -0.5]],
                 "covariances": [np.eye(2) * 2.0] * 3}


def mixture_points() -> np.ndarray:
    rng = np.random.default_rng(0)
    centres = np.array([[-3.0, 0.0], [0.0, 2.0], [3.0, -1.0]])
    return centres[rng.integers(0, 3, NUM_POINTS)] + rng.standard_normal((NUM_POINTS, 2))


def hmm_sequences() -> np.ndarray:
    """``[S, T]`` draws of a two-state Gaussian HMM (states at -1 and 2, sticky)."""
    rng = np.random.default_rng(1)
    states = np.zeros((NUM_SEQUENCES, SEQUENCE_LENGTH), dtype=int)
    states[:, 0] = rng.integers(0, 2, NUM_SEQUENCES)
    for t in range(1, SEQUENCE_LENGTH):
        stay = rng.random(NUM_SEQUENCES) < 0.85
        states[:, t] = np.where(stay, states[:, t - 1], 1 - states[:, t - 1])
    return np.array([-1.0, 2.0])[states] + rng.standard_normal(states.shape)


def coin_heads() -> np.ndarray:
    rng = np.random.default_rng(2)
    probs = np.where(rng.random(NUM_SETS) < 0.4, 0.8, 0.35)
    return rng.binomial(NUM_TRIALS, probs)


def hmm_start():
    return {"initial_probs": [0.5, 0.5], "transition_matrix": [[0.7, 0.3], [0.3, 0.7]],
            "means": [-0.5, 0.5], "covariances": [1.0, 1.0]}


def fits(rows) -> dict:
    """Every fit compared; ``rows(model, array)`` is the data as ``fit`` gets it (all, or this process's share)."""
    results = {}
    mixture = se.models.GaussianMixture(3)
    fitted = se.fit(mixture, rows(mixture, mixture_points()), num_iters=15)  # seeded k-means++ start
    results["mixture_means"], results["mixture_loglik"] = fitted.params.means, fitted.trace.loglik
    hmm = se.models.HiddenMarkovModel(2, "gaussian")
    fitted = se.fit(hmm, rows(hmm, list(hmm_sequences())), init=hmm_start(), num_iters=10)
    results["hmm_means"], results["hmm_loglik"] = fitted.params.means, fitted.trace.loglik
    results["hmm_transition"] = fitted.params.transition_matrix
    coins_model = se.models.from_numpyro(coins, rows(None, coin_heads()), NUM_TRIALS)
    # Adam, not L-BFGS: L-BFGS's line search flips on rounding (in one process, reordering the
    # rows alone moves its ℓ by 1e-2 after a few iterations), Adam is a smooth map of the sums.
    fitted = se.fit(coins_model, None, mstep=se.gradient(optax.adam(0.05), 10), num_iters=8)
    results["coins_probs"], results["coins_loglik"] = fitted.params.probs, fitted.trace.loglik
    return {name: np.asarray(value) for name, value in results.items()}


def sampled_fits(rows) -> dict:
    """Sampled completions whose random numbers do not depend on how the rows are split.

    Online EM draws its minibatch from the replicated key; the HMM (SAEM over
    stochastic EM) and the numpyro model (Monte Carlo EM) draw with JAX's
    partitionable threefry, whose numbers depend only on the key and the
    position in the global array. So every process count gives the same fit.
    """
    results = {}
    mixture = se.models.GaussianMixture(3)
    fitted = se.fit(mixture, rows(mixture, mixture_points()), init=MIXTURE_START, completion=se.online_em(100),
                    num_iters=4)
    results["online_mixture_means"], results["online_mixture_loglik"] = fitted.params.means, fitted.trace.loglik
    hmm = se.models.HiddenMarkovModel(2, "gaussian")
    fitted = se.fit(hmm, rows(hmm, list(hmm_sequences())), init=hmm_start(), num_iters=4,
                    completion=se.saem(se.monte_carlo(1), se.saem_step_size(burn_in=1)))
    results["saem_hmm_means"], results["saem_hmm_loglik"] = fitted.params.means, fitted.trace.loglik
    coins_model = se.models.from_numpyro(coins, rows(None, coin_heads()), NUM_TRIALS)
    fitted = se.fit(coins_model, None, completion=se.monte_carlo(3), mstep=se.gradient(optax.adam(0.05), 10),
                    num_iters=3)
    results["mc_coins_probs"], results["mc_coins_loglik"] = fitted.params.probs, fitted.trace.loglik
    return {name: np.asarray(value) for name, value in results.items()}


def mixture_draws(rows) -> dict:
    """Monte Carlo EM's first step on the mixture from :data:`MIXTURE_START`, :data:`NUM_SEEDS` seeds.

    The mixture draws its counts on each device's share of the points with a
    key of that share, so other splits draw other numbers: the weights are
    compared with exact EM's by their reported standard errors.
    """
    mixture = se.models.GaussianMixture(3)
    fitted = se.fit(mixture, rows(mixture, mixture_points()), init=MIXTURE_START, num_iters=1,
                    completion=se.monte_carlo(NUM_DRAWS), key=list(range(NUM_SEEDS)))
    return {"draws_weights": np.asarray(fitted.params.weights),
            "draws_weights_stderr": np.asarray(fitted.trace.diagnostics.stats_stderr.counts[:, 0]) / NUM_POINTS}


def counts_of_repeated_rows() -> np.ndarray:
    """Counts ``c / S`` drawn for a global array whose processes hold the same rows (``[2 · n, K]``)."""
    mixture = se.models.GaussianMixture(3)
    points = mixture.prepare_data(distributed.shard_rows(mixture_points()[:NUM_POINTS // 2]))
    params = mixture.prepare_params(MIXTURE_START, points)
    draw = jax.jit(lambda key, params, points: mixture.sample_counts(key, params, points, NUM_DRAWS)[0])
    return distributed.host_array(draw(jax.random.key(0), params, points))


def all_rows(model, data):
    del model
    return data


def share_of_rows(model, data):
    """This process's half of ``data`` (rows or sequences), as global arrays."""
    half = len(data) // jax.process_count()
    mine = data[jax.process_index() * half:(jax.process_index() + 1) * half]
    if model is None:
        return distributed.shard_rows(np.asarray(mine))
    return distributed.shard_data(model, mine)


def rejected_message() -> str:
    """The error every process raises when one process's rows hold a NaN."""
    points = mixture_points()
    if jax.process_index() == 1:
        points[0, 0] = np.nan
    try:
        se.fit(se.models.GaussianMixture(3), distributed.shard_rows(points[:NUM_POINTS // 2]), num_iters=1)
    except ValueError as error:
        return str(error)
    return ""


if __name__ == "__main__":
    process_id, port, output = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    distributed.initialize(f"localhost:{port}", num_processes=2, process_id=process_id)
    results = {**fits(share_of_rows), **sampled_fits(share_of_rows), **mixture_draws(share_of_rows)}
    results["repeated_rows_counts"] = counts_of_repeated_rows()
    data = share_of_rows(se.models.GaussianMixture(3), mixture_points())
    results["was_global"] = np.asarray(distributed.is_global_array(data))
    results["rejected"] = np.asarray(rejected_message())
    if process_id == 0:
        np.savez(output, **results)

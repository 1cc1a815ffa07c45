"""A fit's trace as the per-seed curves a job writes: stopped runs, averaging, time per iteration.

* **Runs that stop early** (``ascent_monte_carlo`` has its own stopping rule):
  with several seeds the library's trace is NaN after a seed's last
  iteration. The job's table is *truncated* there: seed ``s`` has rows
  ``0 … num_iters[s]`` only (no padded rows), so the last row of a seed is its
  final θ.
* **Polyak–Ruppert averaging** (``average_from``): the reported θ_t is the
  running mean of the iterates from ``average_from`` to ``t``
  (``stochem.polyak_average``), and ℓ is evaluated again at those averages.
* **Time per iteration**: the compiled loop runs all seeds together and is
  timed as a whole, so its run time is spread over the iterations. With a
  fixed cost per iteration the spread is even. When the sample count changes
  over the run (a schedule, the ascent rule) iteration ``t`` is given the
  weight ``1 + ceil(S_t / b)``: the draws are made in batches of ``b``
  (``stochem.completion.sampling.SAMPLE_BATCH``) and the batches run for the
  largest ``S_t`` over the seeds; the ``1`` stands for the rest of the
  iteration (posterior pass, ℓ, M-step), about the cost of one batch. This
  split is an estimate; the total is measured.
"""

from __future__ import annotations

import jax
import numpy as np

import stochem as se
from stochem.completion.sampling import SAMPLE_BATCH
from stochem.em import observed_loglik


def iterations_run(result, num_seeds: int) -> np.ndarray:
    """``[num_seeds]``: the iterations each seed ran (``num_iters`` unless it stopped early)."""
    return np.broadcast_to(np.asarray(result.num_iters, dtype=int), (num_seeds,)).copy()


def sample_counts(result, fixed: int | None) -> np.ndarray | None:
    """``[num_seeds, T + 1]`` draws per observation behind each θ_t (row 0: none, NaN).

    ``fixed`` is the job's fixed count; otherwise the counts come from the
    trace's diagnostics (``None`` when the completion draws nothing).
    """
    logliks = np.asarray(result.trace.loglik)
    if fixed is not None:
        return np.full(logliks.shape, float(fixed))
    counts = getattr(result.trace.diagnostics, "num_samples", None)
    if counts is None:
        return None
    counts = np.asarray(counts, dtype=float).reshape(logliks.shape[0], -1)
    return np.concatenate([np.full((counts.shape[0], 1), np.nan), counts], axis=1)


def elapsed_seconds(run_seconds: float, num_iters: int, counts: np.ndarray | None,
                    varying: bool) -> np.ndarray:
    """``[T + 1]`` EM seconds (all seeds together) up to each iteration; see the module docstring."""
    if varying and counts is not None:
        largest = np.nan_to_num(np.nanmax(counts[:, 1:], axis=0, initial=0.0), nan=0.0)
        weights = 1.0 + np.ceil(largest / SAMPLE_BATCH)
        weights[largest == 0] = 0.0  # no seed ran that iteration
    else:
        weights = np.ones(num_iters)
    cumulative = np.concatenate([[0.0], np.cumsum(weights)])
    return run_seconds * cumulative / max(cumulative[-1], 1e-300)


def averaged(result, model, data, average_from: int):
    """``(logliks [seeds, T + 1], params)``: Polyak–Ruppert averages of θ_t and ℓ at them."""
    params = se.polyak_average(result, burn_in=average_from)
    loglik = jax.jit(jax.vmap(jax.vmap(lambda theta: observed_loglik(model, theta, data))))
    return np.asarray(loglik(params), dtype=float), params

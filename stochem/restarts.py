"""Restarts: fit several seeds at once (``key=[...]``, vmapped), then keep the best run.

``n_init`` restarts, as scikit-learn calls them, are seeds: with ``init=None``
each seed draws its own start from its key, and all of them run in one compiled
program. :func:`best_of` then keeps the seed whose final observed-data
log-likelihood ℓ(θ̂) is highest::

    runs = se.fit(model, data, key=list(range(10)))     # 10 starts, one program
    best = se.best_of(runs)                              # a one-seed FitResult

:func:`select_seed` takes any one seed out of a batched result.
"""

from __future__ import annotations

import jax
import numpy as np

from stochem import _validation
from stochem.results import FitResult, Trace


def is_batched(result) -> bool:
    """Whether ``result`` holds several seeds (a leading seed axis on every field)."""
    return np.ndim(result.trace.loglik) == 2


def final_loglik(result):
    """ℓ at each run's final parameters, the trace entry at ``num_iters``: a float, or ``[seeds]``.

    With ``fit(..., loglik=importance_loglik(...))`` it is that estimate; NaN
    where the model has no tractable ℓ and none was estimated.
    """
    logliks = np.asarray(result.trace.loglik, dtype=float)
    if not is_batched(result):
        return float(logliks[int(result.num_iters)])
    last = np.asarray(result.num_iters, dtype=int)
    return logliks[np.arange(logliks.shape[0]), last]


def final_loglik_stderr(result):
    """The Monte Carlo standard error of :func:`final_loglik` (0 where ℓ is exact)."""
    stderrs = np.asarray(result.trace.loglik_stderr, dtype=float)
    if not is_batched(result):
        return float(stderrs[int(result.num_iters)])
    last = np.asarray(result.num_iters, dtype=int)
    return stderrs[np.arange(stderrs.shape[0]), last]


def select_seed(result, index: int) -> FitResult:
    """Seed ``index`` of a batched result, as ``fit`` would have returned it for that seed alone.

    The trace is cut after the seed's last iteration (a run that stopped early
    has NaN there in the batched trace); ``num_iters`` and ``converged`` become
    a Python int and bool.

    Raises:
        ValueError: ``result`` holds one seed, or ``index`` is out of range.
    """
    if not is_batched(result):
        raise _validation.ArgumentError("result", "select_seed needs a result with several seeds "
                                                  "(fit(..., key=[0, 1, ...])); this one has one.")
    num_seeds = np.shape(result.trace.loglik)[0]
    index = _validation.as_int("index", index, minimum=0)
    if index >= num_seeds:
        raise _validation.ArgumentError("index", f"index must be below the number of seeds, {num_seeds}; "
                                                 f"got {index}.")
    iterations = int(np.asarray(result.num_iters)[index])
    length = iterations + 1

    def take(leaf, stop):
        return leaf[index][:stop]

    trace = result.trace
    one = Trace(
        loglik=take(trace.loglik, length),
        params=jax.tree_util.tree_map(lambda leaf: take(leaf, length), trace.params),
        diagnostics=jax.tree_util.tree_map(lambda leaf: take(leaf, iterations), trace.diagnostics),
        loglik_stderr=None if trace.loglik_stderr is None else take(trace.loglik_stderr, length),
    )
    params = jax.tree_util.tree_map(lambda leaf: leaf[index], result.params)
    return FitResult(params, one, iterations, bool(np.asarray(result.converged)[index]))


def best_seed(result) -> int:
    """The index of the seed with the highest final ℓ (the first one on ties; NaN runs lose).

    Raises:
        ValueError: one seed only, or no seed has a finite final ℓ (the model
            has no tractable ℓ: fit with ``loglik=stochem.importance_loglik(...)``).
    """
    if not is_batched(result):
        raise _validation.ArgumentError("result", "best_of needs a result with several seeds "
                                                  "(fit(..., key=[0, 1, ...])); this one has one.")
    logliks = final_loglik(result)
    if not np.any(np.isfinite(logliks)):
        raise _validation.ArgumentError(
            "result", "no seed has a finite final log-likelihood to compare; for models without a "
                      "tractable likelihood fit with loglik=stochem.importance_loglik(...).")
    return int(np.argmax(np.where(np.isfinite(logliks), logliks, -np.inf)))


def best_of(result) -> FitResult:
    """The run with the highest final observed-data log-likelihood, out of a batch of seeds.

    ``n_init``-style restarts: ``best_of(fit(model, data, key=list(range(n))))``
    runs ``n`` seeded starts in one vmapped program and keeps the best.
    Selecting by a Monte Carlo estimate of ℓ (``loglik=importance_loglik``)
    picks the best *estimate*; compare the gap with its standard error.

    Args:
        result: a ``FitResult`` with several seeds.

    Returns:
        The best seed's ``FitResult`` (see :func:`select_seed`); its index is
        :func:`best_seed`.

    Example:
        >>> import numpy as np, stochem as se
        >>> data = np.concatenate([np.linspace(0.0, 1.0, 20), np.linspace(5.0, 6.0, 20)])
        >>> runs = se.fit(se.models.GaussianMixture(2), data, key=[0, 1, 2, 3], num_iters=20)
        >>> best = se.best_of(runs)
        >>> best.trace.loglik.shape
        (21,)
    """
    return select_seed(result, best_seed(result))

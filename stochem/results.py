"""What ``fit`` returns: the final parameters and the per-iteration trace."""

from __future__ import annotations

from typing import Any, NamedTuple


class Trace(NamedTuple):
    """Per-iteration record of a run.

    Attributes:
        loglik: observed-data log-likelihood, shape ``[T + 1]`` (entry 0 is the
            initial parameters; NaN where the model has no tractable likelihood
            and no ``loglik=`` estimator was asked for).
        params: the parameters stacked over iterations, leading axis ``T + 1``.
        diagnostics: what the completion recorded at each step, leading axis
            ``T`` (e.g. ``num_samples`` and ``stats_stderr`` for sampled
            completions; an empty tuple for exact completion).
        loglik_stderr: Monte Carlo standard error of ``loglik``, shape
            ``[T + 1]``: 0 where ℓ is exact, the importance sampling standard
            error with ``fit(..., loglik=importance_loglik(...))``, NaN where ℓ
            was not computed.
    """

    loglik: Any
    params: Any
    diagnostics: Any = ()
    loglik_stderr: Any = None


class FitResult(NamedTuple):
    """What ``fit`` returns.

    Attributes:
        params: final parameters.
        trace: a :class:`Trace`.
        num_iters: EM iterations run (``T``).
        converged: whether a stopping rule ended the run: the tolerance on the
            log-likelihood, or a completion's own rule (e.g. the ascent-based
            MCEM's upper bound). Always ``False`` when neither applies.

    With several seeds every field has a leading seed axis; ``num_iters`` and
    ``converged`` are arrays, and trace entries past a seed's ``num_iters`` are
    NaN.
    """

    params: Any
    trace: Trace
    num_iters: Any
    converged: Any

    def to_pandas(self, seeds=None):
        """The trace as a tidy ``pandas.DataFrame``: one row per seed and iteration.

        Columns ``seed``, ``iteration``, ``loglik`` (as in the app's
        ``table.csv``), ``loglik_stderr``, the completion's scalar diagnostics
        (e.g. ``num_samples``) and one column per parameter entry
        (``weights[0]``, ``means[1,0]``); see :mod:`stochem.tidy`.

        Args:
            seeds: labels for the ``seed`` column, one per seed (e.g. the int
                seeds given to ``fit``); default ``0, 1, ...``.

        Example:
            >>> import stochem as se
            >>> model = se.models.BinomialMixture(num_components=2, num_trials=10)
            >>> result = se.fit(model, [5, 9, 8, 4, 7], num_iters=3)
            >>> list(result.to_pandas().columns)
            ['seed', 'iteration', 'loglik', 'loglik_stderr', 'weights[0]', 'weights[1]', 'probs[0]', 'probs[1]']
        """
        from stochem.tidy import fit_result_frame

        return fit_result_frame(self, seeds)

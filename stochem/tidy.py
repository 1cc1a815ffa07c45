"""A fit's trace as a tidy table: one row per seed and iteration (``FitResult.to_pandas``).

Columns, in order:

* ``seed``, ``iteration``, ``loglik`` — named as in the app's ``table.csv``
  (:mod:`stochem.app.job`); ``seed`` is the seed's label (its index unless
  labels are given);
* ``loglik_stderr`` — the Monte Carlo standard error of ``loglik`` (0 when
  exact, NaN when ℓ was not computed);
* one column per scalar diagnostic of the completion (e.g. ``num_samples``,
  the draws of the E-step that produced θ_t; empty at iteration 0, which no
  E-step produced);
* one column per parameter entry, named by its field and index:
  ``weights[0]``, ``means[1,0]``, ``p_heads``.

A seed whose run stopped early has rows up to its last iteration only. pandas
is imported here, when a table is asked for, and not by ``import stochem``.
"""

from __future__ import annotations

import jax
import numpy as np

from stochem.restarts import is_batched


def _entry_names(name: str, shape: tuple) -> list[str]:
    """``name`` for a scalar, ``name[i]``, ``name[i,j]``, ... for each entry of an array of ``shape``."""
    if not shape:
        return [name]
    return [f"{name}[{','.join(str(i) for i in index)}]" for index in np.ndindex(*shape)]


def _param_columns(params, batched: bool) -> dict[str, np.ndarray]:
    """Params trace -> ``{column: [seeds, T + 1]}`` (fields of a NamedTuple in order)."""
    columns = {}
    for name, leaf in params._asdict().items():
        array = np.asarray(leaf, dtype=float)
        if not batched:
            array = array[None]
        entry_shape = array.shape[2:]
        flat = array.reshape(array.shape[0], array.shape[1], -1)
        for position, column in enumerate(_entry_names(name, entry_shape)):
            columns[column] = flat[:, :, position]
    return columns


def _diagnostic_columns(diagnostics, batched: bool, length: int) -> dict[str, np.ndarray]:
    """The scalar-per-iteration diagnostics ``[seeds, T]`` as ``[seeds, T + 1]`` columns (NaN at row 0)."""
    columns = {}
    leaves, _ = jax.tree_util.tree_flatten_with_path(diagnostics)
    for path, leaf in leaves:
        array = np.asarray(leaf, dtype=float)
        if not batched:
            array = array[None]
        if array.ndim != 2:  # per-statistic errors and other arrays stay in result.trace.diagnostics
            continue
        padded = np.full((array.shape[0], length), np.nan)
        padded[:, 1:1 + array.shape[1]] = array
        columns[jax.tree_util.keystr(path, simple=True, separator=".")] = padded
    return columns


def fit_result_frame(result, seeds=None):
    """The tidy table of a ``FitResult`` (see the module docstring).

    Args:
        result: a ``FitResult``, one seed or several.
        seeds: labels for the ``seed`` column, one per seed (e.g. the int seeds
            given to ``fit(key=...)``); default ``0, 1, ...``.

    Returns:
        A ``pandas.DataFrame``.
    """
    import pandas as pd

    batched = is_batched(result)
    logliks = np.asarray(result.trace.loglik, dtype=float)
    stderrs = np.asarray(result.trace.loglik_stderr, dtype=float)
    if not batched:
        logliks, stderrs = logliks[None], stderrs[None]
    num_seeds, length = logliks.shape
    labels = np.arange(num_seeds) if seeds is None else np.asarray(seeds)
    if labels.shape != (num_seeds,):
        raise ValueError(f"seeds must give one label per seed ({num_seeds}); got shape {labels.shape}.")
    last = np.broadcast_to(np.asarray(result.num_iters, dtype=int), (num_seeds,))
    keep = np.arange(length)[None, :] <= last[:, None]
    seed_index, iterations = np.nonzero(keep)
    columns = {"seed": labels[seed_index], "iteration": iterations, "loglik": logliks[keep],
               "loglik_stderr": stderrs[keep]}
    for name, values in _diagnostic_columns(result.trace.diagnostics, batched, length).items():
        columns[name] = values[keep]
    for name, values in _param_columns(result.trace.params, batched).items():
        columns[name] = values[keep]
    return pd.DataFrame(columns)

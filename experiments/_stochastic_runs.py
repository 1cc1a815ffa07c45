"""What the stochastic-EM comparison scripts share: timed fits, error curves, a table and a figure.

Used by ``experiments/{theophylline_saem,salamander_glmm,state_space_em}/run.py``;
each script runs from the repository root, ``python experiments/<name>/run.py``.
"""

from __future__ import annotations

import csv
import os
import sys
import time
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]
if str(REPOSITORY) not in sys.path:
    sys.path.insert(0, str(REPOSITORY))

import jax  # noqa: E402
import numpy as np  # noqa: E402

jax.config.update("jax_enable_x64", True)

import stochem as se  # noqa: E402


def timed_fit(model, data, *, completion, mstep=None, num_iters, seeds, init=None, fixed=()):
    """``(result, first_call_seconds, warm_seconds)``: the same fit twice, the second without compilation."""
    def run():
        start = time.perf_counter()
        result = se.fit(model, data, completion=completion, mstep=mstep, num_iters=num_iters, key=list(seeds),
                        init=init, fixed=fixed)
        jax.block_until_ready(result.params)
        return result, time.perf_counter() - start

    result, first = run()
    _, warm = run()
    return result, first, warm


def first_iteration_within(errors: np.ndarray, bounds: np.ndarray) -> int | None:
    """The first iteration from which every seed stays within ``bounds``: ``errors`` [seeds, T+1, P]."""
    inside = np.all(errors <= bounds, axis=(0, 2))
    for iteration in range(inside.shape[0]):
        if np.all(inside[iteration:]):
            return iteration
    return None


def write_rows(rows: list[dict], path: Path) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


CEILING = 1e3  # curves are drawn up to this value; a diverged run (inf, NaN) is drawn at it


def plot_curves(curves: dict, path: Path, ylabel: str, title: str) -> None:
    """Median over seeds (line) and min–max (band) of each ``label -> [seeds, T+1]`` curve, log scale.

    The curves are also saved beside the figure (``.npz``) so it can be redrawn.
    """
    np.savez(Path(path).with_suffix(".npz"), **{label: np.asarray(values) for label, values in curves.items()})
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4.2))
    for label, values in curves.items():
        values = np.minimum(np.nan_to_num(np.asarray(values, float), nan=CEILING, posinf=CEILING), CEILING)
        iterations = np.arange(values.shape[1])
        line, = axis.plot(iterations, np.median(values, axis=0), label=label,
                          linestyle="--" if "score" in label else "-")
        axis.fill_between(iterations, values.min(axis=0), values.max(axis=0), color=line.get_color(), alpha=0.15)
    axis.set_yscale("log")
    axis.set_xlabel("iteration")
    axis.set_ylabel(ylabel)
    axis.set_title(title)
    axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def load_line() -> str:
    """The machine's load (``os.getloadavg``) and core count, to print beside timings."""
    one, five, _ = os.getloadavg()
    return f"load average {one:.1f} (1 min), {five:.1f} (5 min) on {os.cpu_count()} cores"

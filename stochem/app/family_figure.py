"""The stochastic-family figure: accuracy reached against iterations and against seconds.

For one scenario, four panels (rows: distance ‖θ_t − θ*‖ and log-likelihood
gap ℓ(θ*) − ℓ(θ_t); columns: iteration t and EM seconds, compilation
excluded, all seeds of a job together), log scales. One line per completion
setting (its label): the median over seeds, a band from min to max. A seed
whose run stopped early (the ascent rule) keeps its final value for the later
iterations, so the medians are over all seeds. Exact EM is black.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from stochem.app.summary import COMPLETION_ORDER  # noqa: E402

_COLUMNS = ("distance", "loglik_gap")


def _filled(run: pd.DataFrame, last_iteration: int) -> pd.DataFrame:
    """One seed's rows indexed by iteration 0 … ``last_iteration``, the final row carried forward."""
    run = run.set_index("iteration")[["elapsed_seconds", *_COLUMNS]]
    return run.reindex(range(last_iteration + 1)).ffill()


def curves(frame: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """label -> per-iteration median/min/max of distance, gap and elapsed seconds, in completion order."""
    order = {name: index for index, name in enumerate(COMPLETION_ORDER)}
    labels = (frame[["completion", "label"]].drop_duplicates()
              .assign(_order=lambda table: table["completion"].map(order).fillna(len(order)))
              .sort_values(["_order", "label"]))
    result = {}
    for label in labels["label"]:
        chosen = frame[frame["label"] == label]
        last = int(chosen["iteration"].max())
        filled = pd.concat([_filled(run, last) for _, run in chosen.groupby(["job", "seed"])])
        result[label] = filled.groupby(level=0).agg(["median", "min", "max"])
    return result


def draw(axes, frame: pd.DataFrame, distance_tol: float) -> None:
    """Draw the four panels of one scenario on ``axes`` (2 × 2)."""
    palette = plt.get_cmap("tab10")
    lowest = {column: np.inf for column in _COLUMNS}  # the sampled runs' smallest values
    for index, (label, stats) in enumerate(curves(frame).items()):
        exact = label == "exact"
        color = "black" if exact else palette(index % 10)
        seconds = stats[("elapsed_seconds", "median")].to_numpy()
        for row, column in enumerate(_COLUMNS):
            median, low, high = (stats[(column, which)].to_numpy() for which in ("median", "min", "max"))
            if not exact:
                lowest[column] = min(lowest[column], np.nanmin(np.where(median > 0, median, np.inf)))
            for axis, x in ((axes[row][0], stats.index.to_numpy()), (axes[row][1], seconds)):
                shown = x > 0 if axis is axes[row][1] else np.ones_like(x, dtype=bool)
                axis.plot(x[shown], median[shown], color=color, label=label, linewidth=1.6 if exact else 1.2,
                          zorder=3 if exact else 2)
                axis.fill_between(x[shown], low[shown], high[shown], color=color, alpha=0.12, linewidth=0)
    for row, name in enumerate(("distance ‖θ_t − θ*‖", "ℓ(θ*) − ℓ(θ_t)")):
        axes[row][0].set_ylabel(name)
        for axis in axes[row]:
            axis.set_yscale("log")
            # exact EM reaches rounding error; show the sampled runs' range, not 15 decades
            if np.isfinite(lowest[_COLUMNS[row]]):
                axis.set_ylim(bottom=max(axis.get_ylim()[0], 1e-2 * lowest[_COLUMNS[row]]))
            axis.grid(True, which="major", alpha=0.3)
    for axis in axes[0]:
        axis.axhline(distance_tol, color="gray", linestyle=":", linewidth=1)
    axes[1][0].set_xlabel("iteration t")
    axes[1][1].set_xlabel("EM seconds (all seeds, compilation excluded)")
    axes[0][1].set_xscale("log")
    axes[1][1].set_xscale("log")


def family_figure(frame: pd.DataFrame, distance_tol: float, title: str):
    """The four-panel figure of one scenario, with the legend beside it."""
    figure, axes = plt.subplots(2, 2, figsize=(13, 7), layout="constrained", sharex="col")
    draw(axes, frame, distance_tol)
    handles, labels = axes[0][0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside right center", fontsize=8)
    figure.suptitle(title)
    return figure

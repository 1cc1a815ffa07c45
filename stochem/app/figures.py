"""Convergence figures: exact EM against sampled EM, one line per sample count.

For one scenario, three panels:

1. ℓ(θ_t) against iteration t;
2. ‖θ_t − θ*‖ against t on a log scale, with the scenario's tolerance dotted;
3. the final distance against the sample count S on log-log axes, with a
   ``S^(-1/2)`` guide through the smallest S (the Monte Carlo rate).

Lines are medians over seeds, bands span min to max over seeds; exact EM is
black, sample counts go from light to dark. Drawn with matplotlib's Agg
backend (no display needed).
"""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from PIL import Image  # noqa: E402

from stochem.app.files import replacing  # noqa: E402


def _nominal_samples(chosen: pd.DataFrame):
    """The run's fixed sample count, or NaN when it has none (exact) or it changes over the run."""
    counts = chosen.loc[chosen["iteration"] > 0, "num_samples"].dropna().unique()
    return int(counts[0]) if len(counts) == 1 and (chosen["completion"] == "monte_carlo").all() else np.nan


def _curves(frame: pd.DataFrame):
    """Yield ``(label, color, linestyle, fixed S or NaN, per-iteration quantiles)`` per completion setting."""
    settings = frame[["mstep", "completion", "label"]].drop_duplicates()
    runs = {(mstep, label): frame[(frame["mstep"] == mstep) & (frame["label"] == label)]
            for mstep, _, label in settings.itertuples(index=False)}
    sample_counts = sorted({count for chosen in runs.values() if not pd.isna(count := _nominal_samples(chosen))})
    colormap = plt.get_cmap("viridis")
    several_msteps = settings["mstep"].nunique() > 1
    for (mstep, name), chosen in runs.items():
        num_samples = _nominal_samples(chosen)
        if (chosen["completion"] == "exact").all():
            label, color = "exact EM", "black"
        elif not pd.isna(num_samples):
            position = sample_counts.index(num_samples) / max(len(sample_counts) - 1, 1)
            label, color = f"S = {num_samples}", colormap(0.85 - 0.75 * position)
        else:
            label, color = name, "tab:red"
        if several_msteps:
            label = f"{label} ({mstep})"
        linestyle = "--" if mstep == "gradient" else "-"
        stats = chosen.groupby("iteration")[["loglik", "distance"]].agg(["median", "min", "max"])
        yield label, color, linestyle, num_samples, stats


def draw_scenario(axes, frame: pd.DataFrame, distance_tol: float) -> None:
    """Draw the three panels of one scenario on ``axes`` (a sequence of 3)."""
    loglik_axis, distance_axis, final_axis = axes
    finals = []
    for label, color, linestyle, num_samples, stats in _curves(frame):
        iterations = stats.index.to_numpy()
        for axis, column in ((loglik_axis, "loglik"), (distance_axis, "distance")):
            axis.plot(iterations, stats[(column, "median")], color=color, linestyle=linestyle,
                      label=label, linewidth=1.4 if color == "black" else 1.1, zorder=3 if color == "black" else 2)
            axis.fill_between(iterations, stats[(column, "min")], stats[(column, "max")], color=color,
                              alpha=0.18, linewidth=0)
        last = stats.iloc[-1]
        finals.append((num_samples, color, label, last[("distance", "median")], last[("distance", "min")],
                       last[("distance", "max")]))

    sampled = sorted((row for row in finals if not pd.isna(row[0])), key=lambda row: row[0])
    floor = None
    if sampled:
        counts = np.array([row[0] for row in sampled], dtype=float)
        medians = np.array([row[3] for row in sampled])
        lower = medians - np.array([row[4] for row in sampled])
        upper = np.array([row[5] for row in sampled]) - medians
        final_axis.errorbar(counts, medians, yerr=[lower, upper], color="tab:blue", marker="o",
                            capsize=3, label="sampled EM (median, min–max)")
        final_axis.plot(counts, medians[0] * np.sqrt(counts[0] / counts), color="gray", linestyle=":",
                        label=r"$\propto S^{-1/2}$")
        final_axis.set_xscale("log")
        # Exact EM may sit at rounding error; show the sampled runs' range, not 15 decades.
        floor = 1e-3 * np.nanmin(frame.loc[frame["completion"] != "exact", "distance"])
    for row in finals:
        if pd.isna(row[0]) and row[3] > 0:
            if floor is None or row[3] >= floor / 10:
                final_axis.axhline(row[3], color="black", linewidth=1.2, label="exact EM")
            else:
                final_axis.plot([], [], color="black", label=f"exact EM: {row[3]:.1g} (below)")
    final_axis.set_yscale("log")

    distance_axis.set_yscale("log")
    distance_axis.axhline(distance_tol, color="gray", linestyle=":", linewidth=1, label="tolerance")
    if floor is not None and np.isfinite(floor) and floor > 0:
        distance_axis.set_ylim(bottom=max(distance_axis.get_ylim()[0], floor))
    loglik_axis.set_ylabel("log-likelihood ℓ(θ_t)")
    distance_axis.set_ylabel("distance ‖θ_t − θ*‖")
    final_axis.set_ylabel("final distance ‖θ_T − θ*‖")
    for axis in (loglik_axis, distance_axis):
        axis.set_xlabel("iteration t")
    final_axis.set_xlabel("samples per observation S")
    _zoom_loglik(loglik_axis, frame)
    for axis in axes:
        axis.grid(True, which="major", alpha=0.3)


def _zoom_loglik(axis, frame: pd.DataFrame) -> None:
    """Keep the first iterations' climb from flattening the end: show the top of the curves."""
    top = frame["loglik"].max()
    after_start = frame[frame["iteration"] >= max(1, frame["iteration"].max() // 10)]
    bottom = after_start["loglik"].min()
    if np.isfinite(top) and np.isfinite(bottom) and top > bottom:
        margin = 0.05 * (top - bottom)
        axis.set_ylim(bottom - margin, top + margin)


def scenario_figure(frame: pd.DataFrame, distance_tol: float, title: str):
    """A figure with the three panels for one scenario."""
    figure, axes = plt.subplots(1, 3, figsize=(13, 3.8), layout="constrained")
    draw_scenario(axes, frame, distance_tol)
    axes[0].legend(fontsize=8)
    axes[2].legend(fontsize=8)
    figure.suptitle(title)
    return figure


def overview_figure(frames: dict[str, tuple[pd.DataFrame, float]]):
    """One row of three panels per scenario (``frames``: name -> (table, distance_tol))."""
    figure, axes = plt.subplots(len(frames), 3, figsize=(13, 2.9 * len(frames)), layout="constrained",
                                squeeze=False)
    for row, (name, (frame, distance_tol)) in zip(axes, frames.items()):
        draw_scenario(row, frame, distance_tol)
        row[0].set_title(name, loc="left", fontweight="bold")
        row[0].legend(fontsize=7)
    return figure


def save(figure, path: Path, dpi: int = 100) -> Path:
    """Save ``figure`` as a small PNG (256-colour palette, atomically) and close it."""
    buffer = io.BytesIO()
    figure.savefig(buffer, dpi=dpi, format="png")
    plt.close(figure)
    image = Image.open(buffer).convert("RGB").quantize(colors=256)
    with replacing(path) as temporary:
        image.save(temporary, format="png", optimize=True)
    return Path(path)

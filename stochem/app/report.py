"""The sweep report: a Hydra callback that runs when a sweep (or a single run) ends.

It gathers every finished job below the sweep folder (including jobs skipped
because an earlier run finished them) and writes, in ``<sweep dir>/report/``:

* ``runs.csv`` — all jobs' tidy tables in one, with a ``job`` column;
* ``summary.csv`` — per scenario, M-step, completion and sample count (see
  :mod:`stochem.app.summary`);
* ``<scenario>.png`` — the convergence figure of each scenario, and
  ``overview.png`` with one row per scenario when there are several. A sweep
  of exact EM against Monte Carlo EM gets the sample-count figure
  (:mod:`stochem.app.figures`); a sweep with other members of the stochastic
  family gets, per scenario, accuracy against iterations and against seconds
  (:mod:`stochem.app.family_figure`), and no overview.

Enabled in ``configs/config.yaml`` under ``hydra.callbacks.report``.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from stochem.app import family_figure, figures, files
from stochem.app.summary import gather, summarize

REPORT_DIR = "report"
_SHOWN_COLUMNS = ["scenario", "label", "seeds", "iterations_median", "final_loglik_gap_median",
                  "final_distance_median", "reached", "iters_to_tol_median", "seconds_to_tol_median",
                  "seconds_per_iter", "compile_seconds"]
SAMPLE_COUNT_SWEEP = {"exact", "monte_carlo"}  # completions drawn by the sample-count figure


def write_report(root: Path) -> dict[str, Path] | None:
    """Write the report for the jobs below ``root``; return the written paths (None if no job)."""
    root = Path(root)
    runs, jobs = gather(root)
    if runs.empty:
        print(f"stochem: no finished job under {root}; no report written.")
        return None
    out = root / REPORT_DIR
    summary = summarize(runs, jobs)
    files.write_csv(out / "runs.csv", runs)
    files.write_csv(out / "summary.csv", summary)
    written = {"runs": out / "runs.csv", "summary": out / "summary.csv"}

    tolerance = jobs.set_index("job")["distance_tol"]
    family = not set(runs["completion"]) <= SAMPLE_COUNT_SWEEP
    frames = {}
    for name, frame in runs.groupby("scenario", sort=True):
        frames[name] = (frame, float(tolerance[frame["job"].iloc[0]]))
        if family:
            figure = family_figure.family_figure(frame, frames[name][1], title=f"{name}: the stochastic EM family")
        else:
            figure = figures.scenario_figure(frame, frames[name][1], title=f"{name}: exact vs sampled EM")
        written[f"figure {name}"] = figures.save(figure, out / f"{name}.png")
    if len(frames) > 1 and not family:
        written["overview"] = figures.save(figures.overview_figure(frames), out / "overview.png", dpi=55)

    shown = summary[_SHOWN_COLUMNS].copy()
    with pd.option_context("display.width", 220, "display.max_columns", 20):
        print(shown.to_string(index=False, float_format=lambda x: f"{x:.3g}"))
    print(f"stochem report ({len(jobs)} jobs) written to {out}:")
    for what, path in written.items():
        print(f"  {what:<16} {path}")
    return written


class SweepReport(Callback):
    """Hydra callback: write the report at the end of a sweep or a single run."""

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        write_report(Path(config.hydra.sweep.dir))

    def on_run_end(self, config: DictConfig, **kwargs) -> None:
        write_report(Path(config.hydra.run.dir))


if __name__ == "__main__":  # python -m stochem.app.report <sweep folder>: the report of a sweep run elsewhere
    import sys

    if len(sys.argv) != 2:
        print("usage: python -m stochem.app.report <sweep folder>", file=sys.stderr)
        raise SystemExit(2)
    if write_report(Path(sys.argv[1])) is None:
        raise SystemExit(1)

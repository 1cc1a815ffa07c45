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

A figure is drawn only when what it shows changed. Its key is a hash of the
table columns it draws (timings only for the family figure, whose panels have
a time axis), its title and tolerance, stochem's source and matplotlib's
version; ``figures.json`` beside the figures records each figure's key, and a
figure whose key is unchanged is left as it is. With the figure cache on
(``cache.figures``, :mod:`stochem.app.cache`) a figure drawn by an earlier run
with the same key is copied instead of drawn again (matplotlib is then not
even imported).

Enabled in ``configs/config.yaml`` under ``hydra.callbacks.report``.
"""

from __future__ import annotations

import importlib.metadata
import json
from collections.abc import Callable
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from stochem.app import cache, files

REPORT_DIR = "report"
FIGURE_KEYS = "figures.json"
_SHOWN_COLUMNS = ["scenario", "label", "seeds", "iterations_median", "final_loglik_gap_median",
                  "final_distance_median", "reached", "iters_to_tol_median", "seconds_to_tol_median",
                  "seconds_per_iter", "compile_seconds"]
SAMPLE_COUNT_SWEEP = {"exact", "monte_carlo"}  # completions drawn by the sample-count figure
# The columns each kind of figure draws (the family figure has a time axis).
_DRAWN = {"sample_count": ["mstep", "completion", "label", "seed", "iteration", "num_samples", "loglik", "distance"]}
_DRAWN["family"] = [*_DRAWN["sample_count"], "loglik_gap", "elapsed_seconds"]


def figure_key(kind: str, title: str, frames: list[tuple]) -> str:
    """The hash of what a figure shows: ``frames`` are ``(table, distance_tol)`` pairs."""
    import pandas as pd

    parts = [kind, title, cache.source_digest(), importlib.metadata.version("matplotlib")]
    for frame, tolerance in frames:
        drawn = frame[_DRAWN[kind]].reset_index(drop=True)
        parts += [repr(float(tolerance)), pd.util.hash_pandas_object(drawn, index=False).to_numpy()]
    return cache.digest(*parts)


def _figure(path: Path, key: str, draw: Callable[[Path], Path], keys: dict, figure_cache: Path | None) -> Path:
    """``path``, drawn by ``draw(path)`` unless it already shows ``key`` (or the cache has it)."""
    if keys.get(path.name) == key and path.is_file():
        return path
    cached = None if figure_cache is None else figure_cache / f"{key}.png"
    if cached is not None and cached.is_file():
        files.copy_file(cached, path)
    else:
        draw(path)
        if cached is not None:
            files.copy_file(path, cached)
    keys[path.name] = key
    return path


def _draw_sample_count(frame, tolerance: float, title: str) -> Callable[[Path], Path]:
    def draw(path: Path) -> Path:
        from stochem.app import figures

        return figures.save(figures.scenario_figure(frame, tolerance, title=title), path)

    return draw


def _draw_family(frame, tolerance: float, title: str) -> Callable[[Path], Path]:
    def draw(path: Path) -> Path:
        from stochem.app import family_figure, figures

        return figures.save(family_figure.family_figure(frame, tolerance, title=title), path)

    return draw


def _draw_overview(frames: dict) -> Callable[[Path], Path]:
    def draw(path: Path) -> Path:
        from stochem.app import figures

        return figures.save(figures.overview_figure(frames), path, dpi=55)

    return draw


def _read_keys(out: Path) -> dict:
    try:
        return json.loads((out / FIGURE_KEYS).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def write_report(root: Path, figure_cache: Path | None = None) -> dict[str, Path] | None:
    """Write the report for the jobs below ``root``; return the written paths (None if no job).

    ``figure_cache``: a folder of figures by key, shared between runs (``None``: off).
    """
    import pandas as pd

    from stochem.app.summary import gather, summarize

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
    keys = _read_keys(out)
    frames = {}
    for name, frame in runs.groupby("scenario", sort=True):
        frames[name] = (frame, float(tolerance[frame["job"].iloc[0]]))
        if family:
            kind, title, draw = "family", f"{name}: the stochastic EM family", _draw_family
        else:
            kind, title, draw = "sample_count", f"{name}: exact vs sampled EM", _draw_sample_count
        key = figure_key(kind, title, [frames[name]])
        written[f"figure {name}"] = _figure(out / f"{name}.png", key, draw(*frames[name], title), keys,
                                            figure_cache)
    if len(frames) > 1 and not family:
        key = figure_key("sample_count", "overview", list(frames.values()))
        written["overview"] = _figure(out / "overview.png", key, _draw_overview(frames), keys, figure_cache)
    files.write_json(out / FIGURE_KEYS, keys)

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
        write_report(Path(config.hydra.sweep.dir), cache.read_settings(config).figures_folder)

    def on_run_end(self, config: DictConfig, **kwargs) -> None:
        write_report(Path(config.hydra.run.dir), cache.read_settings(config).figures_folder)


if __name__ == "__main__":  # python -m stochem.app.report <sweep folder>: the report of a sweep run elsewhere
    import sys

    if len(sys.argv) != 2:
        print("usage: python -m stochem.app.report <sweep folder>", file=sys.stderr)
        raise SystemExit(2)
    if write_report(Path(sys.argv[1])) is None:
        raise SystemExit(1)

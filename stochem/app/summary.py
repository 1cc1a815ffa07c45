"""Gather the jobs of a sweep into one table, and summarize it per completion and sample count.

The summary has one row per ``(scenario, mstep, completion, label)`` (the
label tells settings apart: ``monte_carlo S=100``, ``saem S=1 burn_in=20
exponent=1``); spreads are over seeds (and over jobs, if several jobs share
those values):

* ``num_samples``: the fixed draws per observation and iteration (empty for
  exact completions and for counts that change over the run);
  ``final_num_samples_median``: the count in force at the last iteration;
* ``iterations_median``: iterations run (fewer than ``num_iters`` when a
  completion's own rule stopped the run, as the ascent rule does);

* ``final_loglik_gap_*``: ℓ(θ*) − ℓ(θ_T), the log-likelihood still missing at
  the last iteration (median, min, max);
* ``final_distance_*``: ‖θ_T − θ*‖ after component matching;
* ``reached``: how many seeds came within ``distance_tol`` of θ* at some
  iteration; ``iters_to_tol_*`` and ``seconds_to_tol_median``: the first such
  iteration and the EM time until then (``inf`` for a seed that never did);
* ``seconds_per_iter``: EM time per iteration run, for all seeds together
  (compilation excluded), ``compile_seconds``: compilation time of the job.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from stochem.app.job import RESULT_FILE, TABLE_FILE

GROUP = ["scenario", "mstep", "completion", "label"]
# The order of completions in tables and figures (others follow, by name).
COMPLETION_ORDER = ("exact", "monte_carlo", "stochastic_em", "monte_carlo_schedule", "ascent_monte_carlo",
                    "saem", "online_em", "incremental", "mcmc")


def _with_label(table: pd.DataFrame) -> pd.DataFrame:
    """Tables written before the ``label`` column: the label from completion and sample count."""
    if "label" in table:
        return table
    label = [name if pd.isna(count) else f"{name} S={int(count)}"
             for name, count in zip(table["completion"], table["num_samples"])]
    return table.assign(label=label)


def gather(root: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every finished job below ``root``.

    Returns:
        ``(runs, jobs)``: all tidy tables stacked, with a ``job`` column (the
        job folder relative to ``root``), and one row per job with its
        ``distance_tol``, ``num_iters``, ``num_samples``, ``iterations_run``
        (the most any seed ran), ``run_seconds`` and ``compile_seconds``.
    """
    root = Path(root)
    tables, jobs = [], []
    for table_path in sorted(root.glob(f"**/{TABLE_FILE}")):
        folder = table_path.parent
        name = folder.relative_to(root).as_posix()
        result = json.loads((folder / RESULT_FILE).read_text(encoding="utf-8"))
        table = _with_label(pd.read_csv(table_path, dtype={"num_samples": "Int64"})).assign(job=name)
        tables.append(table)
        jobs.append({"job": name, "distance_tol": result["distance_tol"], "num_iters": result["num_iters"],
                     "num_samples": result.get("num_samples"), "iterations_run": int(table["iteration"].max()),
                     "run_seconds": result["timing"]["run_seconds"],
                     "compile_seconds": result["timing"]["compile_seconds"]})
    if not tables:
        return pd.DataFrame(), pd.DataFrame()
    return pd.concat(tables, ignore_index=True), pd.DataFrame(jobs)


def _first_within(run: pd.DataFrame, tolerance: float) -> pd.Series:
    """Iteration and EM seconds at which one run (one seed of one job) first gets within ``tolerance``."""
    within = run[run["distance"] <= tolerance]
    if within.empty:
        return pd.Series({"iters_to_tol": np.inf, "seconds_to_tol": np.inf})
    first = within.loc[within["iteration"].idxmin()]
    return pd.Series({"iters_to_tol": first["iteration"], "seconds_to_tol": first["elapsed_seconds"]})


def _per_run(runs: pd.DataFrame, jobs: pd.DataFrame) -> pd.DataFrame:
    """One row per (job, seed): final gap and distance, first iteration within tolerance."""
    tolerance = jobs.set_index("job")["distance_tol"]
    rows = []
    for (job, seed), run in runs.groupby(["job", "seed"], sort=False):
        run = run.sort_values("iteration")
        last = run.iloc[-1]
        hit = _first_within(run, tolerance[job])
        rows.append({**{key: last[key] for key in GROUP}, "job": job, "seed": seed, "iterations": last["iteration"],
                     "final_num_samples": last["num_samples"], "final_loglik_gap": last["loglik_gap"],
                     "final_distance": last["distance"], **hit})
    return pd.DataFrame(rows)


def _median_min_max(group: pd.DataFrame, column: str) -> dict:
    """``{column}_median``, ``{column}_min`` and ``{column}_max`` over the seeds of one group."""
    values = group[column]
    return {f"{column}_median": values.median(), f"{column}_min": values.min(), f"{column}_max": values.max()}


def summarize(runs: pd.DataFrame, jobs: pd.DataFrame) -> pd.DataFrame:
    """The summary table (see the module docstring for the columns)."""
    per_run = _per_run(runs, jobs).merge(jobs, on="job")
    per_run["seconds_per_iter"] = per_run["run_seconds"] / per_run["iterations_run"].clip(lower=1)
    rows = []
    for key, group in per_run.groupby(GROUP, dropna=False, sort=False):
        reached = np.isfinite(group["iters_to_tol"])
        rows.append({
            **dict(zip(GROUP, key)),
            "num_samples": group["num_samples"].iloc[0],
            "seeds": len(group),
            "iterations_median": group["iterations"].median(),
            "final_num_samples_median": pd.to_numeric(group["final_num_samples"], errors="coerce").median(),
            **_median_min_max(group, "final_loglik_gap"),
            **_median_min_max(group, "final_distance"),
            "distance_tol": group["distance_tol"].iloc[0],
            "reached": f"{int(reached.sum())}/{len(group)}",
            **_median_min_max(group, "iters_to_tol"),
            "seconds_to_tol_median": group["seconds_to_tol"].median(),
            "seconds_per_iter": group["seconds_per_iter"].median(),
            "compile_seconds": group["compile_seconds"].median(),
        })
    summary = pd.DataFrame(rows)
    summary["num_samples"] = pd.array([None if pd.isna(count) else int(count) for count in summary["num_samples"]],
                                      dtype="Int64")
    order = summary["completion"].map({name: index for index, name in enumerate(COMPLETION_ORDER)})
    order = order.fillna(len(COMPLETION_ORDER))
    summary = summary.assign(_order=order).sort_values(["scenario", "mstep", "_order", "num_samples", "label"])
    return summary.drop(columns="_order").reset_index(drop=True)

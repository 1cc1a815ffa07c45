"""Gather the jobs of a sweep into one table, and summarize it per completion and sample count.

The summary has one row per ``(scenario, mstep, completion, num_samples)``;
spreads are over seeds (and over jobs, if several jobs share those values):

* ``final_loglik_gap_*``: ℓ(θ*) − ℓ(θ_T), the log-likelihood still missing at
  the last iteration (median, min, max);
* ``final_distance_*``: ‖θ_T − θ*‖ after component matching;
* ``reached``: how many seeds came within ``distance_tol`` of θ* at some
  iteration; ``iters_to_tol_*`` and ``seconds_to_tol_median``: the first such
  iteration and the EM time until then (``inf`` for a seed that never did);
* ``seconds_per_iter``: EM time per iteration for all seeds together
  (compilation excluded), ``compile_seconds``: compilation time of the job.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from stochem.app.job import RESULT_FILE, TABLE_FILE

GROUP = ["scenario", "mstep", "completion", "num_samples"]


def gather(root: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every finished job below ``root``.

    Returns:
        ``(runs, jobs)``: all tidy tables stacked, with a ``job`` column (the
        job folder relative to ``root``), and one row per job with its
        ``distance_tol``, ``num_iters``, ``run_seconds`` and ``compile_seconds``.
    """
    root = Path(root)
    tables, jobs = [], []
    for table_path in sorted(root.glob(f"**/{TABLE_FILE}")):
        folder = table_path.parent
        name = folder.relative_to(root).as_posix()
        result = json.loads((folder / RESULT_FILE).read_text(encoding="utf-8"))
        tables.append(pd.read_csv(table_path, dtype={"num_samples": "Int64"}).assign(job=name))
        jobs.append({"job": name, "distance_tol": result["distance_tol"], "num_iters": result["num_iters"],
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
        rows.append({**{key: last[key] for key in GROUP}, "job": job, "seed": seed,
                     "final_loglik_gap": last["loglik_gap"], "final_distance": last["distance"], **hit})
    return pd.DataFrame(rows)


def summarize(runs: pd.DataFrame, jobs: pd.DataFrame) -> pd.DataFrame:
    """The summary table (see the module docstring for the columns)."""
    per_run = _per_run(runs, jobs).merge(jobs, on="job")
    per_run["seconds_per_iter"] = per_run["run_seconds"] / per_run["num_iters"]
    rows = []
    for key, group in per_run.groupby(GROUP, dropna=False, sort=False):
        reached = np.isfinite(group["iters_to_tol"])
        rows.append({
            **dict(zip(GROUP, key)),
            "seeds": len(group),
            "final_loglik_gap_median": group["final_loglik_gap"].median(),
            "final_loglik_gap_min": group["final_loglik_gap"].min(),
            "final_loglik_gap_max": group["final_loglik_gap"].max(),
            "final_distance_median": group["final_distance"].median(),
            "final_distance_min": group["final_distance"].min(),
            "final_distance_max": group["final_distance"].max(),
            "distance_tol": group["distance_tol"].iloc[0],
            "reached": f"{int(reached.sum())}/{len(group)}",
            "iters_to_tol_median": group["iters_to_tol"].median(),
            "iters_to_tol_min": group["iters_to_tol"].min(),
            "iters_to_tol_max": group["iters_to_tol"].max(),
            "seconds_to_tol_median": group["seconds_to_tol"].median(),
            "seconds_per_iter": group["seconds_per_iter"].median(),
            "compile_seconds": group["compile_seconds"].median(),
        })
    summary = pd.DataFrame(rows)
    order = summary["completion"].map({"exact": 0}).fillna(1)
    summary = summary.assign(_order=order).sort_values(["scenario", "mstep", "_order", "num_samples"])
    return summary.drop(columns="_order").reset_index(drop=True)

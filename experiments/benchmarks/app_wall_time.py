"""Wall time of an app sweep (``python -m stochem experiment=gmm_mcem``), cold and then warm, with a breakdown.

    python experiments/benchmarks/app_wall_time.py [--quick] [--experiment NAME] [--baseline-summary CSV]

Both runs use a fresh temporary cache folder (``XDG_CACHE_HOME``; the app's
compiled programs, reference points and figures live there, see
``stochem/app/cache.py``), so the first run is cold — nothing compiled, no θ*,
no figure — and the second, into a new sweep folder, is warm. The breakdown
comes from the jobs' ``result.json`` timing fields:

* before the first job: process start, imports, Hydra composing the sweep;
* scenario: data and the start θ₀; reference: the exact-EM θ*;
* fits: ``se.fit`` of every job, split into compilation (tracing, lowering,
  XLA or reading the compiled program) and the EM itself;
* report: after the last job (gathering the tables, summary, figures);
* other: the rest (Hydra between jobs, distances to θ*, tables).

The warm run must give the cold run's results: the summary tables are
compared without their timing columns (and with ``--baseline-summary``, a
``summary.csv`` from another build, e.g. before a change, is compared too).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

REPOSITORY = Path(__file__).resolve().parents[2]
TIMING_COLUMNS = ("seconds_to_tol_median", "seconds_per_iter", "compile_seconds")
GOALS = {"cold": 15.0, "warm": 8.0}  # seconds, issue 13, for gmm_mcem on a quiet 2-core CPU
QUICK = ["num_iters=3", "seeds=[0,1]", "completion.num_samples=1,10"]


def app_environment(cache_home: Path) -> dict:
    """The caller's environment with the app's cache in ``cache_home`` and no JAX cache settings of its own."""
    env = {key: value for key, value in os.environ.items()
           if key not in ("JAX_COMPILATION_CACHE_DIR", "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS",
                          "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "HYDRA_FULL_ERROR")}
    env["XDG_CACHE_HOME"] = str(cache_home)
    env["PYTHONPATH"] = os.pathsep.join([str(REPOSITORY), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def run_sweep(arguments: list[str], sweep_dir: Path, env: dict) -> dict:
    """Run the app once; return its wall time and the breakdown of the jobs it ran."""
    started = time.time()
    process = subprocess.run([sys.executable, "-m", "stochem", *arguments, f"hydra.sweep.dir={sweep_dir}"],
                             cwd=REPOSITORY, env=env, capture_output=True, text=True)
    ended = time.time()
    if process.returncode != 0:
        raise SystemExit(f"the sweep failed:\n{process.stdout[-3000:]}\n{process.stderr[-3000:]}")
    timings = [json.loads(path.read_text())["timing"] for path in sorted(sweep_dir.glob("**/result.json"))]
    parts = {
        "before first job": min(timing["started_at"] for timing in timings) - started,
        "scenario (data, θ0)": sum(timing["scenario_seconds"] for timing in timings),
        "reference θ*": sum(timing["reference_seconds"] for timing in timings),
        "fits: compile": sum(timing["compile_seconds"] for timing in timings),
        "fits: EM": sum(timing["run_seconds"] for timing in timings),
        "report": ended - max(timing["finished_at"] for timing in timings),
    }
    parts["other"] = (ended - started) - sum(parts.values())
    return {"wall": ended - started, "parts": parts, "jobs": len(timings),
            "summary": pd.read_csv(sweep_dir / "report" / "summary.csv")}


def results_only(summary: pd.DataFrame) -> pd.DataFrame:
    return summary.drop(columns=[column for column in TIMING_COLUMNS if column in summary])


def same_results(first: pd.DataFrame, second: pd.DataFrame) -> bool:
    """Equal summary tables, timing columns left out (floats compared as written)."""
    first, second = results_only(first), results_only(second)
    return list(first.columns) == list(second.columns) and first.astype(str).equals(second.astype(str))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"a smoke run ({' '.join(QUICK)})")
    parser.add_argument("--experiment", default="gmm_mcem")
    parser.add_argument("--baseline-summary", type=Path, default=None,
                        help="a summary.csv of the same sweep from another build, to compare results with")
    parser.add_argument("--goals-json", default=None, help="also write the goal checks to this JSON file")
    args = parser.parse_args()
    arguments = [f"experiment={args.experiment}", *(QUICK if args.quick else [])]
    load_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as folder:
        env = app_environment(Path(folder) / "cache")
        runs = {name: run_sweep(arguments, Path(folder) / name, env) for name in ("cold", "warm")}
    load_end = os.getloadavg()[0]

    print(f"## `python -m stochem {' '.join(arguments)}`: wall time cold and warm\n")
    print(f"{os.cpu_count()} cores; load average (1 min) {load_start:.2f} at start, {load_end:.2f} at the end; "
          f"{runs['cold']['jobs']} jobs ran per sweep.\n")
    print("| seconds | cold | warm |")
    print("|---|---:|---:|")
    for part in runs["cold"]["parts"]:
        print(f"| {part} | {runs['cold']['parts'][part]:.2f} | {runs['warm']['parts'][part]:.2f} |")
    print(f"| **total (wall)** | **{runs['cold']['wall']:.2f}** | **{runs['warm']['wall']:.2f}** |\n")

    same = same_results(runs["cold"]["summary"], runs["warm"]["summary"])
    print(f"Warm run gives the cold run's summary (timings left out): {'yes' if same else 'NO'}")
    goals = [{"goal": "warm run gives the same results", "target": "identical summary",
              "measured": "identical" if same else "different", "met": same}]
    if args.baseline_summary is not None:
        baseline = pd.read_csv(args.baseline_summary)
        match = same_results(baseline, runs["cold"]["summary"])
        print(f"Cold run gives the summary of {args.baseline_summary}: {'yes' if match else 'NO'}")
        if not match:
            print("\n" + results_only(baseline).compare(results_only(runs["cold"]["summary"])).to_string())
        goals.append({"goal": "same results as the baseline summary", "target": "identical summary",
                      "measured": "identical" if match else "different", "met": match})
    if args.experiment == "gmm_mcem" and not args.quick:
        for name, limit in GOALS.items():
            goals.append({"goal": f"gmm_mcem sweep {name}", "target": f"<= {limit:g} s",
                          "measured": f"{runs[name]['wall']:.1f} s", "met": runs[name]["wall"] <= limit})
    print("\n### Goals\n\n| goal | target | measured | met |\n|---|---|---|---|")
    for goal in goals:
        print(f"| {goal['goal']} | {goal['target']} | {goal['measured']} | {'yes' if goal['met'] else 'NO'} |")
    if args.goals_json:
        Path(args.goals_json).write_text(json.dumps(goals, indent=2))


if __name__ == "__main__":
    main()

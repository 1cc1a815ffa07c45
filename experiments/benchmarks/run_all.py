"""Run every benchmark, each in a fresh process, and print their tables and one table of all goals.

    python experiments/benchmarks/run_all.py [--quick]

Each script's own tables are printed as it finishes (Markdown); the last table
gathers the goal checks of all of them (the ratios are measured side by side
inside each script, in the same process and the same minute). Exit status 0
even when a goal is missed: the table says which (``NO``).
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

HERE = Path(__file__).resolve().parent
SCRIPTS = ("gmm_vs_sklearn", "mc_cost", "repeated_fit", "seeds_batch", "memory", "hmm_vs_hmmlearn",
           "minibatch_rows", "app_wall_time")


def run_script(name: str, quick: bool, goals_path: Path) -> list:
    """Run ``name.py`` (its output goes straight to ours); return the goals it wrote."""
    command = [sys.executable, str(HERE / f"{name}.py"), "--goals-json", str(goals_path)]
    if quick:
        command.append("--quick")
    print(f"<!-- {' '.join(command[1:])} -->", flush=True)
    subprocess.run(command, check=True, cwd=HERE.parents[1])
    return json.loads(goals_path.read_text())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke sizes (the goals are then not meaningful)")
    parser.add_argument("--only", nargs="*", choices=SCRIPTS, default=SCRIPTS, help="run only these scripts")
    args = parser.parse_args()
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    load = os.getloadavg()[0]
    goals = []
    with tempfile.TemporaryDirectory() as folder:
        for name in args.only:
            for goal in run_script(name, args.quick, Path(folder) / f"{name}.json"):
                goals.append([name, goal["goal"], goal["target"], goal["measured"], "yes" if goal["met"] else "NO"])
    print(f"## All goals ({'quick smoke sizes, not the goal sizes' if args.quick else 'goal sizes'}; "
          f"started {started}, load {load:.2f} at start, {os.getloadavg()[0]:.2f} at the end)\n")
    print("| script | goal | target | measured | met |")
    print("|---|---|---|---|---|")
    for row in goals:
        print("| " + " | ".join(row) + " |")
    print(flush=True)


if __name__ == "__main__":
    main()

"""The benchmark scripts under experiments/benchmarks run, print their tables and check their results.

Speed goals are not asserted here (timings on a shared machine are no test);
the accuracy goals are: stochem must end where scikit-learn and hmmlearn end.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.process_settings import users_environment

REPOSITORY = Path(__file__).resolve().parents[2]
BENCHMARKS = REPOSITORY / "experiments" / "benchmarks"


def run(script, *arguments, timeout=300, as_users=False):
    """The script's output; ``as_users``: compiled as users' programs are, not with the tests' fast flags
    (the app benchmark requires exact EM identical to the build before, bit for bit)."""
    return subprocess.run([sys.executable, str(BENCHMARKS / script), *arguments], cwd=REPOSITORY,
                          capture_output=True, text=True, timeout=timeout, check=True,
                          env=users_environment() if as_users else None).stdout


def test_gmm_benchmark_matches_scikit_learn_in_quick_mode(tmp_path):
    goals_path = tmp_path / "goals.json"
    output = run("gmm_vs_sklearn.py", "--quick", "--goals-json", str(goals_path))
    assert "| covariance | N | D | K |" in output and "### Goals" in output
    goals = json.loads(goals_path.read_text())
    accuracy = [goal for goal in goals if "same final θ" in goal["goal"]]
    assert len(accuracy) == 1 and accuracy[0]["met"], accuracy
    assert float(accuracy[0]["measured"]) <= 1e-8


@pytest.mark.slow
def test_run_all_quick_prints_every_goal_and_the_results_agree():
    output = run("run_all.py", "--quick", timeout=900, as_users=True)
    summary = output[output.index("## All goals"):]
    rows = [line.split(" | ") for line in summary.splitlines() if line.startswith("| ") and "---" not in line][1:]
    scripts = {row[0].strip("| ") for row in rows}
    assert scripts == {"gmm_vs_sklearn", "mc_cost", "repeated_fit", "seeds_batch", "memory", "hmm_vs_hmmlearn",
                       "minibatch_rows", "app_wall_time"}
    for row in rows:
        if "same" in row[1] or "RSS" in row[1]:  # accuracy and memory goals hold at any size
            assert row[-1].strip(" |") == "yes", row


@pytest.mark.slow
def test_app_wall_time_runs_a_sweep_cold_then_warm_to_the_same_results_as_the_build_before(tmp_path):
    goals_path = tmp_path / "goals.json"
    output = run("app_wall_time.py", "--quick", "--goals-json", str(goals_path), timeout=1200, as_users=True)
    for part in ("before first job", "reference θ*", "fits: compile", "report", "total (wall)", "current / before"):
        assert part in output
    goals = json.loads(goals_path.read_text())
    same = {goal["goal"]: goal["met"] for goal in goals if "same results" in goal["goal"]}
    assert same == {"warm run gives the same results": True, "same results as the build before (91b21e2)": True}

"""``python -m stochem`` end to end, in subprocesses, for a couple of iterations.

Every experiment runs its own sweep (tiny overrides keep it fast) and must leave a
tidy table and final θ per job and the report (gathered table, summary, figures).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from stochem.app import job, main
from stochem.app.job import TABLE_COLUMNS
from tests.app.running import EXPERIMENTS, REPO, TINY, app_environment


def assert_succeeded(process: subprocess.CompletedProcess) -> None:
    assert process.returncode == 0, process.stdout[-3000:] + process.stderr[-3000:]


def job_tables(root: Path) -> list[Path]:
    return sorted(path for path in root.glob("**/table.csv") if "report" not in path.parts)


def check_job(table_path: Path, num_seeds: int, num_iters: int) -> pd.DataFrame:
    """A finished job: .hydra beside the table, rows per seed and iteration, final θ per seed."""
    folder = table_path.parent
    assert (folder / ".hydra" / "config.yaml").is_file()
    table = pd.read_csv(table_path)
    assert list(table.columns) == list(TABLE_COLUMNS)
    assert len(table) == num_seeds * (num_iters + 1)
    assert sorted(table["iteration"].unique()) == list(range(num_iters + 1))
    assert table[["loglik", "distance", "elapsed_seconds"]].notna().all().all()
    assert (table["distance"] >= 0).all()
    result = json.loads((folder / "result.json").read_text())
    assert [entry["seed"] for entry in result["final"]] == sorted(table["seed"].unique().tolist())
    assert set(result["final"][0]["params"]) == set(result["reference"]["params"])
    return table


def check_report(root: Path, scenarios: list[str], completions=("exact", "monte_carlo")) -> pd.DataFrame:
    report = root / "report"
    runs = pd.read_csv(report / "runs.csv")
    assert sorted(runs["scenario"].unique()) == sorted(scenarios)
    summary = pd.read_csv(report / "summary.csv")
    assert set(summary["completion"]) == set(completions)
    for name in scenarios:
        assert (report / f"{name}.png").stat().st_size > 1000
    if len(scenarios) > 1 and set(completions) == {"exact", "monte_carlo"}:
        assert (report / "overview.png").is_file()
    assert not list(root.glob("**/.*.tmp*")), "a temporary file was left behind"
    return summary


@pytest.mark.slow  # heavy (30–60 s); the default suite covers the path more cheaply elsewhere
def test_all_scenarios_sweep_runs_end_to_end(app, tmp_path):
    # Three scenarios here (each scenario also runs in its own experiment below).
    chosen = ["coins", "gmm1d", "missing"]
    process = app("experiment=all_scenarios", f"scenario={','.join(chosen)}", *TINY, "hydra.sweep.dir=sweep")
    assert_succeeded(process)
    root = tmp_path / "sweep"
    tables = job_tables(root)
    assert len(tables) == 2 * len(chosen)  # exact and Monte Carlo for every scenario
    for table_path in tables:
        check_job(table_path, num_seeds=2, num_iters=2)
    summary = check_report(root, chosen)
    assert len(summary) == 2 * len(chosen)
    assert "sweep/report/summary.csv" in process.stdout  # says where it wrote the report


# MCMC-EM against SAEM, with no exact EM: smoke-run in test_new_scenarios.py and
# test_published_scenarios.py; the state space sweeps three completions (test_published_scenarios.py);
# cbpp_loglik in test_loglik_experiment.py.
MCMC_EXPERIMENTS = ("cbpp_mcmc", "poisson_mcmc", "theophylline_saem", "salamander_glmm", "state_space_em",
                    "cbpp_loglik")


# Every scenario's model, data and start are built by tests/app/test_configs.py; end to end,
# the default suite runs the main job, an HMM and a missing-data sweep, the others are slow.
DEFAULT_END_TO_END = ("gmm_mcem", "casino_mcem", "faithful_missing_mcem")


@pytest.mark.parametrize("experiment", [
    pytest.param(name, marks=() if name in DEFAULT_END_TO_END else pytest.mark.slow)
    for name in EXPERIMENTS
    if name not in ("all_scenarios", "stochastic_family") and name not in MCMC_EXPERIMENTS])
def test_experiment_runs_end_to_end(app, tmp_path, experiment):
    process = app(f"experiment={experiment}", *TINY, "hydra.sweep.dir=sweep")
    assert_succeeded(process)
    root = tmp_path / "sweep"
    tables = job_tables(root)
    assert len(tables) == 2
    scenario = check_job(tables[0], num_seeds=2, num_iters=2)["scenario"].iloc[0]
    check_report(root, [scenario])


# The stochastic family with tiny settings: a couple of iterations, small sample buffers.
FAMILY_TINY = ["num_iters=3", "seeds=[0,1]", "reference.num_iters=5", "completion.max_samples=20"]


def check_family_sweep(root: Path, scenarios: list[str], completions: list[str]) -> None:
    tables = job_tables(root)
    assert len(tables) == len(scenarios) * len(completions)
    for table_path in tables:
        table = pd.read_csv(table_path)
        assert list(table.columns) == list(TABLE_COLUMNS)
        assert table[["loglik", "distance", "elapsed_seconds"]].notna().all().all()
        for _, run in table.groupby("seed"):  # rows 0 … last iteration run, no padding
            assert run["iteration"].tolist() == list(range(len(run)))
            assert 2 <= len(run) <= 4 and run["elapsed_seconds"].is_monotonic_increasing
    summary = check_report(root, scenarios, completions)
    assert summary["label"].is_unique or len(scenarios) > 1
    assert (summary["seconds_per_iter"] > 0).all()
    # Monte Carlo EM's program serves every sample count: stochastic EM (S = 1), which runs after
    # monte_carlo (S = 100) in the sweep, reuses it and compiles nothing; every other job compiles.
    reuses = (summary["completion"] == "stochastic_em") & ("monte_carlo" in completions)
    assert (summary.loc[reuses, "compile_seconds"] == 0).all()
    assert (summary.loc[~reuses, "compile_seconds"] > 0).all()


def test_stochastic_family_sweep_runs_end_to_end_cheaply(app, tmp_path):
    completions = ["exact", "ascent_monte_carlo", "online_em"]  # early stop; scenario-dependent batch size
    process = app("experiment=stochastic_family", "scenario=coins", f"completion={','.join(completions)}",
                  *FAMILY_TINY, "hydra.sweep.dir=sweep")
    assert_succeeded(process)
    check_family_sweep(tmp_path / "sweep", ["coins"], completions)
    assert "seconds_to_tol_median" in process.stdout


@pytest.mark.slow
def test_stochastic_family_sweep_runs_every_variant_on_both_scenarios(app, tmp_path):
    from stochem.app.paths import config_dir
    from omegaconf import OmegaConf

    params = OmegaConf.load(config_dir() / "experiment" / "stochastic_family.yaml").hydra.sweeper.params
    process = app("experiment=stochastic_family", *FAMILY_TINY, "hydra.sweep.dir=sweep")
    assert_succeeded(process)
    check_family_sweep(tmp_path / "sweep", params.scenario.split(","), params.completion.split(","))


def test_exact_jobs_crossed_with_sample_counts_run_once(app, tmp_path):
    process = app("experiment=coins_mcem", *TINY[:2], "reference.num_iters=5",
                  "completion.num_samples=2,3", "hydra.sweep.dir=sweep")
    assert_succeeded(process)
    tables = job_tables(tmp_path / "sweep")
    assert len(tables) == 3  # exact once, S = 2 and S = 3
    assert "same folder as a job earlier in this sweep" in process.stdout + process.stderr


def test_rerunning_a_sweep_into_its_folder_skips_finished_jobs(app, tmp_path):
    arguments = ("experiment=coins_mcem", *TINY, "hydra.sweep.dir=sweep")
    assert_succeeded(app(*arguments))
    tables = job_tables(tmp_path / "sweep")
    exact_table, sampled_table = sorted(tables, key=lambda path: "monte_carlo" in str(path))
    exact_written = exact_table.stat().st_mtime_ns
    figure = tmp_path / "sweep" / "report" / "coins.png"
    figure_written = figure.stat().st_mtime_ns
    sampled_table.unlink()  # as if the sweep had been stopped during that job

    again = app(*arguments)
    assert_succeeded(again)
    assert "finished in an earlier run" in again.stdout + again.stderr
    assert exact_table.stat().st_mtime_ns == exact_written  # not run again
    assert sampled_table.is_file()  # run again
    check_job(sampled_table, num_seeds=2, num_iters=2)
    check_report(tmp_path / "sweep", ["coins"])
    assert figure.stat().st_mtime_ns == figure_written  # the job ran again, to the same curves: not redrawn


def test_a_long_job_shows_a_progress_bar(app, tmp_path):
    long = app(*TINY, "progress_from=2", "hydra.run.dir=long")  # 2 iterations count as long here
    assert_succeeded(long)
    assert "EM: 100%" in long.stderr and "2/2" in long.stderr, long.stderr[-3000:]
    check_job(tmp_path / "long" / "table.csv", num_seeds=2, num_iters=2)


def test_single_runs_started_together_get_their_own_folders(tmp_path):
    command = [sys.executable, "-m", "stochem", "num_iters=2", "seeds=[0,1]", "reference.num_iters=5"]
    processes = [subprocess.Popen(command, cwd=tmp_path, env=app_environment(), stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    outputs = [process.communicate(timeout=400)[0] for process in processes]
    assert [process.returncode for process in processes] == [0, 0], outputs
    tables = job_tables(tmp_path / "outputs")
    assert len(tables) == 2 and tables[0].parent != tables[1].parent
    for table_path in tables:
        check_job(table_path, num_seeds=2, num_iters=2)
        assert (table_path.parent / "report" / "coins.png").is_file()


@pytest.mark.parametrize("arguments, words", [
    (["scenario=nope"], ["scenario", "coins", "gmm_nd"]),
    (["experiment=gmm_mcem", "completion.num_samples=0"], ["completion.num_samples", ">= 1"]),
    (["mstep=gradient", "mstep.optimizer=bfgs"], ["mstep.optimizer", "adam"]),
    (["scenario.model.num_components=0"], ["scenario.model.num_components", ">= 1"]),
    (["completion=saem", "completion.exponent=2"], ["completion.exponent", "(0.5, 1]"]),
    (["completion=incremental", "completion.num_blocks=3"], ["completion.num_blocks", "divide", "coins"]),
    (["completion=mcmc"], ["completion:", "mcmc", "coins"]),  # the coins have no continuous latent sites
])
def test_bad_options_stop_with_a_short_message(app, arguments, words):
    process = app(*arguments, "hydra.run.dir=run", "hydra.sweep.dir=sweep")
    output = process.stdout + process.stderr
    assert process.returncode != 0
    assert "Traceback" not in output
    for word in words:
        assert word in output
    error_lines = [line for line in process.stderr.splitlines() if line.strip()]
    assert len(error_lines) <= 25, process.stderr  # Hydra lists the available options
    if arguments != ["scenario=nope"]:  # the app's own one-line error, usage status
        assert process.returncode == 2
        assert f"stochem: error: {words[0].rstrip(':')}: " in process.stderr


@pytest.mark.slow
def test_works_from_a_regular_install_run_elsewhere(tmp_path):
    """``pip install .`` (not editable) into a folder, then run from an unrelated folder."""
    site = tmp_path / "site"
    install = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target",
                              str(site), str(REPO)], capture_output=True, text=True, timeout=600)
    assert install.returncode == 0, install.stderr[-3000:]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = app_environment()
    env["PYTHONPATH"] = str(site)
    process = subprocess.run([sys.executable, "-m", "stochem", "experiment=faithful_mcem", *TINY,
                              "hydra.sweep.dir=sweep"], cwd=elsewhere, env=env, capture_output=True,
                             text=True, timeout=400)
    assert_succeeded(process)
    where = subprocess.run([sys.executable, "-c", "import stochem.app.paths as p; print(p.config_dir())"],
                           cwd=elsewhere, env=env, capture_output=True, text=True)
    assert where.stdout.strip().startswith(str(site))  # the installed configs, not the checkout's
    check_report(elsewhere / "sweep", ["faithful"])
    assert os.path.isfile(site / "stochem" / "data" / "faithful.csv")


def test_a_job_process_freezes_its_imports_and_collects_garbage_less_often():
    probe = ("import gc; from stochem.app.main import GC_YOUNG_THRESHOLD, settle_the_heap; "
             "before = gc.get_threshold(); settle_the_heap(); settle_the_heap(); "
             "print(before[0] != GC_YOUNG_THRESHOLD, gc.get_threshold()[0] == GC_YOUNG_THRESHOLD, "
             "gc.get_threshold()[1:] == before[1:], gc.get_freeze_count() > 10_000, gc.isenabled())")
    report = subprocess.run([sys.executable, "-c", probe], env=app_environment(), capture_output=True, text=True,
                            check=True).stdout.split()
    assert report == ["True"] * 5


def test_a_job_settles_the_heap_before_it_runs(monkeypatch, tmp_path):
    calls = []
    monkeypatch.setattr(main, "prepare_jax", lambda: calls.append("prepare_jax"))
    monkeypatch.setattr(main, "settle_the_heap", lambda: calls.append("settle_the_heap"))
    monkeypatch.setattr(job, "run", lambda cfg, folder: calls.append(("run", folder)))
    hydra_config = SimpleNamespace(runtime=SimpleNamespace(output_dir=str(tmp_path)))
    monkeypatch.setattr(main.HydraConfig, "get", staticmethod(lambda: hydra_config))
    main.run_job(None)
    assert calls == ["prepare_jax", "settle_the_heap", ("run", tmp_path)]

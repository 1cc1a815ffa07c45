"""Sweeps launched by Hydra's joblib and submitit (local) launchers give the basic launcher's report.

Jobs then run in other processes (joblib's workers, submitit's local jobs) and
may finish in any order; the report gathers the job folders, so it must not
depend on either. Timing columns differ between runs and are left out.
"""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest

from tests.app.running import TINY, app_environment, run_app
from tests.app.test_cli import assert_succeeded

SWEEP = ("experiment=coins_mcem", *TINY)
TIMING = {"elapsed_seconds", "seconds_per_iter", "compile_seconds", "seconds_to_tol_median"}


def _report(root):
    tables = {name: pd.read_csv(root / "report" / f"{name}.csv") for name in ("runs", "summary")}
    kept = {name: table[[column for column in table.columns if column not in TIMING]]
            for name, table in tables.items()}
    return {name: table.sort_values(list(table.columns)).reset_index(drop=True) for name, table in kept.items()}


@pytest.fixture(scope="module")
def basic_report(tmp_path_factory):
    folder = tmp_path_factory.mktemp("basic")
    assert_succeeded(run_app(*SWEEP, "hydra.sweep.dir=sweep", cwd=folder))
    return _report(folder / "sweep")


def _assert_same_report(report, basic_report):
    for name in ("runs", "summary"):
        pd.testing.assert_frame_equal(report[name], basic_report[name], check_exact=False, rtol=1e-12,
                                      obj=name)
    assert len(report["runs"]) == 2 * 2 * 3  # two jobs (exact, S = 2), two seeds, three trace entries


def test_a_joblib_sweep_gives_the_basic_report(app, tmp_path, basic_report):
    process = app(*SWEEP, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "hydra.sweep.dir=sweep")
    assert_succeeded(process)
    assert "Joblib" in process.stdout + process.stderr  # the jobs really went through joblib
    _assert_same_report(_report(tmp_path / "sweep"), basic_report)


@pytest.mark.slow  # one more sweep of separate processes (about a minute on 2 cores); joblib covers the default suite
def test_a_submitit_local_sweep_gives_the_basic_report(app, tmp_path, basic_report):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    process = app(*SWEEP, "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10",
                  "hydra.sweep.dir=sweep")
    assert_succeeded(process)
    _assert_same_report(_report(tmp_path / "sweep"), basic_report)


def test_the_report_is_a_command_over_a_sweep_folder(app, tmp_path, basic_report):
    assert_succeeded(app(*SWEEP, "hydra.sweep.dir=sweep", "~hydra.callbacks.report"))
    assert not (tmp_path / "sweep" / "report").exists()
    process = subprocess.run([sys.executable, "-m", "stochem.app.report", "sweep"], cwd=tmp_path,
                             env=app_environment(), capture_output=True, text=True, timeout=300)
    assert_succeeded(process)
    _assert_same_report(_report(tmp_path / "sweep"), basic_report)

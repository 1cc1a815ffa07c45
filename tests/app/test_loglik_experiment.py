"""The cbpp_loglik experiment end to end, tiny: ℓ estimates with their errors beside the exact ℓ, and its figure."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest
from omegaconf import OmegaConf

from stochem.app import settings
from stochem.app.job import TABLE_COLUMNS
from stochem.app.settings import ConfigError
from tests.app.running import REPO
from tests.app.test_configs import compose_app

TINY = ["num_iters=2", "seeds=[0,1]", "completion.num_samples=4", "++completion.num_warmup=5",
        "++completion.initial_samples=4", "++completion.max_samples=8", "loglik.num_samples=20", "loglik.every=1",
        "reference.num_iters=5"]


# 80 s cold (three MCMC programs and the importance estimator); the app's MCMC path runs end to
# end in tests/app/test_new_scenarios.py, the loglik option is read below.
@pytest.mark.slow
def test_cbpp_loglik_runs_end_to_end_and_draws_its_figure(app, tmp_path):
    process = app("experiment=cbpp_loglik", *TINY, "hydra.sweep.dir=sweep")
    assert process.returncode == 0, process.stdout[-3000:] + process.stderr[-3000:]
    root = tmp_path / "sweep"
    tables = sorted(path for path in root.glob("**/table.csv") if "report" not in path.parts)
    assert len(tables) == 3  # mcmc, saem, ascent_mcmc
    for table_path in tables:
        table = pd.read_csv(table_path)
        assert list(table.columns) == list(TABLE_COLUMNS)
        # the exact ℓ by quadrature and, at every iteration (every=1), its estimate with an error
        # (inf where 20 importance draws are flagged unreliable by their Pareto k̂)
        assert table["loglik"].notna().all() and (table["loglik_gap"] > -1e-6).all()
        assert table["loglik_estimate"].notna().all() and (table["loglik_stderr"] > 0).all()
    figure = tmp_path / "figure.png"
    drawn = subprocess.run([sys.executable, str(REPO / "experiments" / "cbpp_loglik" / "figure.py"),
                            str(root / "report" / "runs.csv"), str(figure)], capture_output=True, text=True)
    assert drawn.returncode == 0, drawn.stderr[-3000:]
    assert figure.stat().st_size > 1000 and "within_2_se" in drawn.stdout


def test_the_loglik_option_builds_the_estimator_and_is_checked():
    job = settings.read(compose_app("experiment=cbpp_loglik", "completion=mcmc"))
    assert job.loglik is not None and job.loglik.every == 5
    assert settings.read(compose_app("completion=exact")).loglik is None
    cfg = compose_app("completion=exact")
    cfg.loglik = OmegaConf.create({"value": 3})
    with pytest.raises(ConfigError) as error:
        settings.read(cfg)
    assert error.value.option == "loglik"

"""Every config composes, and every composed job config passes the app's own checks."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from hydra import compose, initialize_config_module
from hydra.types import RunMode
from omegaconf import OmegaConf

from stochem.app import scenarios, settings
from stochem.app.paths import config_dir
from stochem.capabilities import TractableLikelihood
from tests.app.running import EXPERIMENTS, SCENARIOS

COMPLETIONS = sorted(path.stem for path in (config_dir() / "completion").glob("*.yaml"))


def compose_app(*overrides: str, hydra: bool = False):
    with initialize_config_module(version_base="1.3", config_module="stochem.app.configs"):
        return compose("config", overrides=list(overrides), return_hydra_config=hydra)


def test_the_required_experiments_and_scenarios_exist():
    assert {"gmm_mcem", "all_scenarios", "stochastic_family", "coins_mcem", "dice_mcem", "gmm1d_mcem", "faithful_mcem",
            "missing_mcem", "airquality_mcem", "shifted_die_mcem", "dice_sum_mcem"} <= set(EXPERIMENTS)
    assert {"coins", "dice", "gmm1d", "gmm_nd", "faithful", "missing", "airquality", "shifted_die",
            "dice_sum"} <= set(SCENARIOS)


def test_default_config_is_one_run_with_the_report_callback():
    cfg = compose_app(hydra=True)
    assert cfg.hydra.mode in (None, RunMode.RUN)
    assert cfg.hydra.callbacks.report._target_ == "stochem.app.report.SweepReport"
    assert settings.read(cfg).completion_name == "exact"


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_composes_into_a_sweep_comparing_completions(experiment):
    cfg = compose_app(f"experiment={experiment}", hydra=True)
    assert cfg.hydra.mode == RunMode.MULTIRUN
    params = cfg.hydra.sweeper.params
    completions = params["completion"].split(",")
    # exact vs Monte Carlo EM; MCMC-EM (and SAEM) where the posterior has no closed form
    assert set(completions) <= set(COMPLETIONS)
    assert {"exact", "monte_carlo"} <= set(completions) or {"mcmc", "group_metropolis"} & set(completions)
    if "completion.num_samples" in params:  # stochastic_family keeps each variant's own sample counts
        assert all(int(count) >= 1 for count in params["completion.num_samples"].split(","))
    # each job of the sweep composes and passes the app's checks (other swept keys at their first value)
    others = [f"{key}={value.split(',')[0]}" for key, value in params.items() if key not in ("scenario", "completion")]
    scenario_names = params["scenario"].split(",") if "scenario" in params else [cfg.scenario.name]
    for scenario in scenario_names:
        for completion in completions:
            job_cfg = compose_app(f"experiment={experiment}", f"scenario={scenario}", f"completion={completion}",
                                  *others)
            job = settings.read(job_cfg)
            assert job.completion_name == completion
            assert job.num_iters >= 1 and len(job.seeds) >= 2


def test_command_line_overrides_win_over_the_experiment():
    cfg = compose_app("experiment=gmm_mcem", "num_iters=3", "seeds=[7]")
    assert cfg.num_iters == 3 and list(cfg.seeds) == [7]
    assert cfg.scenario.name == "gmm_nd"


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_scenario_builds_its_model_data_and_start(scenario):
    cfg = compose_app(f"scenario={scenario}")
    assert cfg.scenario.name == scenario
    built = scenarios.build(cfg.scenario, init_seed=0)
    prepared = built.model.prepare_data(built.data)  # the model accepts the data it is given
    assert set(built.init._fields) == set(built.model.params_type._fields)
    for value in built.init:
        assert np.all(np.isfinite(value))
    if isinstance(built.model, TractableLikelihood):  # not for continuous latents (their ℓ: tests/app/test_new_scenarios.py)
        assert np.isfinite(float(jax.jit(built.model.log_marginal)(built.init, prepared)))
    assert built.distance_tol > 0


def test_synthetic_data_follow_their_recorded_seed():
    cfg = compose_app("scenario=gmm_nd")
    first = scenarios.build(cfg.scenario, 0).data
    again = scenarios.build(OmegaConf.merge(cfg.scenario, {"data": {"seed": 0}}), 0).data
    other = scenarios.build(OmegaConf.merge(cfg.scenario, {"data": {"seed": 1}}), 0).data
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


def test_red_blue_data_are_the_notebooks():
    np.random.seed(110)
    red = np.random.normal(3, 0.8, size=20)
    blue = np.random.normal(7, 2, size=20)
    built = scenarios.build(compose_app("scenario=gmm1d").scenario, 0)
    np.testing.assert_array_equal(built.data, np.concatenate([red, blue]))


def test_coins_scenario_is_the_papers_example():
    built = scenarios.build(compose_app("scenario=coins").scenario, 0)
    np.testing.assert_array_equal(built.data, [5, 9, 8, 4, 7])
    np.testing.assert_allclose(built.init.probs, [0.6, 0.5])
    assert built.fixed == ("weights",)


def test_airquality_keeps_its_missing_values():
    built = scenarios.build(compose_app("scenario=airquality").scenario, 0)
    assert built.data.shape == (153, 4)
    assert np.isnan(built.data).sum(axis=0).tolist() == [37, 7, 0, 0]
    np.testing.assert_allclose(np.nanmean(built.data, axis=0), 0, atol=1e-12)  # standardized


def test_stochastic_family_compares_the_required_variants_on_a_mixture_and_the_coins():
    cfg = compose_app("experiment=stochastic_family", hydra=True)
    params = cfg.hydra.sweeper.params
    assert {"exact", "monte_carlo", "ascent_monte_carlo", "stochastic_em", "saem", "online_em"} <= set(
        params["completion"].split(","))
    assert "coins" in params["scenario"].split(",") and "gmm1d" in params["scenario"].split(",")
    # online EM's batch and incremental EM's blocks follow the scenario's number of rows
    for scenario, rows in (("coins", 5), ("gmm1d", 40)):
        for completion, option in (("online_em", "batch_size"), ("incremental", "num_blocks")):
            job_cfg = compose_app("experiment=stochastic_family", f"scenario={scenario}", f"completion={completion}")
            value = job_cfg.completion[option]
            assert 1 <= value <= rows and (option != "num_blocks" or rows % value == 0)

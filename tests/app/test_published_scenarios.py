"""The theophylline, salamander and state-space scenarios of the app, their references and their sweeps.

* the theophylline reference is the quadrature MLE in the model's fields, and
  its ℓ(θ) is the quadrature's (maximal there);
* the salamander reference is Booth & Hobert's published estimate;
* the state-space scenario's data follow their seed and exact EM's fixed point
  (the app's θ*) is the scipy Kalman MLE, in units of its standard errors;
* the new completion and M-step choices (``group_metropolis``, ``saem``
  sampler ``group_metropolis``, ``mstep=default``, ``mstep=saem``) are read
  into the library's factories and bad options are named;
* the state-space sweep runs end to end (exact EM, Monte Carlo EM, SAEM); the
  theophylline sweep too (slow: its compilation alone takes a minute or more).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hydra import compose, initialize_config_module

import stochem as se
from stochem.app import reference, scenarios, settings
from stochem.app.job import TABLE_COLUMNS
from stochem.app.settings import ConfigError
from stochem.references import salamander as salamander_reference
from stochem.references import state_space
from stochem.references import theophylline as theophylline_reference


def compose_app(*overrides: str):
    with initialize_config_module(version_base="1.3", config_module="stochem.app.configs"):
        return compose("config", overrides=list(overrides))


def build(name: str) -> scenarios.Scenario:
    return scenarios.build(compose_app(f"scenario={name}").scenario, init_seed=0)


# --- references ---------------------------------------------------------------------------------


def test_theophylline_reference_is_the_quadrature_mle_with_its_loglik():
    built = build("theophylline")
    fixed_point = reference.fixed_point(built, 1)
    mle = theophylline_reference.QUADRATURE_MLE
    np.testing.assert_allclose(np.exp(fixed_point.params["log_mean"]), mle[:3], rtol=1e-12)
    np.testing.assert_allclose(fixed_point.params["omega"] ** 2, mle[3:6], rtol=1e-12)
    assert float(fixed_point.params["sigma"]) == pytest.approx(mle[6], rel=1e-12)
    assert set(fixed_point.params) == set(built.model.params_type._fields)
    # ℓ(θ*) recomputed by the quadrature equals the stored one, and θ₀ (saemix's start) is far below it
    assert fixed_point.loglik_of(fixed_point.params) == pytest.approx(fixed_point.loglik, abs=1e-5)
    start = {name: np.asarray(value) for name, value in built.init._asdict().items()}
    np.testing.assert_allclose(start["log_mean"], theophylline_reference.SAEMIX_START["log_mean"])
    assert fixed_point.loglik_of(start) < fixed_point.loglik - 50
    # one standard error either side in σ lowers ℓ by ½ SE² I_σσ ≥ ½ on average (SE² = (I⁻¹)_σσ ≥ 1 / I_σσ;
    # the average cancels the cubic term): θ* is the maximum, with the curvature of its standard errors
    drops = [fixed_point.loglik - fixed_point.loglik_of(dict(fixed_point.params, sigma=np.asarray(
        mle[6] + sign * theophylline_reference.QUADRATURE_STDERR[6]))) for sign in (-1, 1)]
    assert min(drops) > 0 and 0.49 < np.mean(drops) < 2.0


def test_salamander_reference_is_booth_and_hoberts_mcem_estimate():
    built = build("salamander")
    fixed_point = reference.fixed_point(built, 1)
    published_values = salamander_reference.published(salamander_reference.BOOTH_HOBERT_MCEM)
    as_params = built.model.params_type(**{name: np.asarray(value) for name, value in fixed_point.params.items()})
    np.testing.assert_allclose(salamander_reference.natural(as_params), published_values, rtol=1e-12)
    assert np.isnan(fixed_point.loglik) and fixed_point.loglik_of is None
    assert built.data is None and set(built.init._fields) == {"beta", "female_sd", "male_sd"}


def test_state_space_data_follow_their_seed_and_exact_em_reaches_the_scipy_mle():
    built = build("state_space")
    expected = state_space.simulate(state_space.local_level_ar(0.8, 0.5, 0.3), 200, seed=11)
    np.testing.assert_array_equal(built.data, expected)
    assert built.fixed == ("initial_cov", "emission")
    mle = state_space.scalar_mle(expected)
    fixed_point = reference.fixed_point(built, 400)
    found = np.array([fixed_point.params["initial_mean"][0], fixed_point.params["transition"][0, 0],
                      fixed_point.params["transition_cov"][0, 0], fixed_point.params["emission_cov"][0, 0]])
    target = np.array([mle.m0, mle.transition, mle.state_var, mle.noise_var])
    assert np.max(np.abs(found - target) / mle.stderr) < 0.01
    assert fixed_point.loglik == pytest.approx(mle.loglik, abs=1e-4)


def test_damped_random_walk_names_a_bad_option():
    with pytest.raises(ConfigError) as raised:
        scenarios.build(compose_app("scenario=state_space", "scenario.data.length=1").scenario, init_seed=0)
    assert "scenario.data" in str(raised.value) and "length" in str(raised.value)


# --- the new completion and M-step choices ------------------------------------------------------


def test_group_metropolis_and_its_saem_sampler_are_read_into_the_librarys_factories():
    job = settings.read(compose_app("scenario=theophylline", "completion=group_metropolis",
                                    "completion.num_samples=3", "mstep=default"))
    assert job.completion == se.group_metropolis(3, num_burnin=2, thin=1, target_accept=0.4, adapt_iters=100)
    assert job.mstep is None and job.mstep_name == "default"
    job = settings.read(compose_app("experiment=theophylline_saem", "completion=saem"))
    assert job.completion == se.saem(se.group_metropolis(1, num_burnin=2), se.saem_step_size(50, 1.0))
    assert job.mstep is None and job.num_iters == 200


def test_the_saem_mstep_reads_saemix_annealing_and_names_a_bad_factor():
    job = settings.read(compose_app("completion=saem", "mstep=saem", "mstep.annealing_iters=150"))
    assert job.mstep == se.saem_mstep(150, 0.97)
    with pytest.raises(ConfigError) as raised:
        settings.read(compose_app("completion=saem", "mstep=saem", "mstep.annealing_factor=1.5"))
    assert raised.value.option == "mstep.annealing_factor" and "(0, 1]" in str(raised.value)
    with pytest.raises(ConfigError) as raised:
        settings.read(compose_app("completion=group_metropolis", "completion.target_accept=1.0"))
    assert raised.value.option == "completion.target_accept"


def test_group_metropolis_is_refused_on_a_model_without_grouped_latents():
    job = settings.read(compose_app("scenario=coins", "completion=group_metropolis"))
    built = build("coins")
    with pytest.raises(ConfigError) as raised:
        settings.check_against(job, built.model, built.model.prepare_data(built.data), "coins")
    assert raised.value.option == "completion" and "group_metropolis" in str(raised.value)


# --- the sweeps, end to end -----------------------------------------------------------------------


def job_tables(root):
    return sorted(path for path in root.glob("**/table.csv") if "report" not in path.parts)


# 25 s cold; the scenario's data and exact EM are checked in the default suite above.
@pytest.mark.slow
def test_state_space_sweep_runs_end_to_end(app, tmp_path):
    """Exact EM, Monte Carlo EM and SAEM for two iterations; θ* is exact EM's, ℓ exact throughout."""
    process = app("experiment=state_space_em", "num_iters=2", "seeds=[0,1]", "completion.num_samples=2",
                  "reference.num_iters=50", "hydra.sweep.dir=sweep")
    assert process.returncode == 0, process.stdout[-3000:] + process.stderr[-3000:]
    tables = job_tables(tmp_path / "sweep")
    assert len(tables) == 3
    for table_path in tables:
        table = pd.read_csv(table_path)
        assert list(table.columns) == list(TABLE_COLUMNS) and (table["scenario"] == "state_space").all()
        assert table["loglik"].notna().all() and (table["distance"] > 0).all()
        # exact EM's ℓ never falls; every θ_t is below θ*'s ℓ (up to the reference's own convergence)
        assert (table["loglik_gap"] > -1e-3).all()
    summary = pd.read_csv(tmp_path / "sweep" / "report" / "summary.csv")
    assert set(summary["completion"]) == {"exact", "monte_carlo", "saem"}


@pytest.mark.slow
def test_theophylline_sweep_runs_end_to_end(app, tmp_path):
    """SAEM on statistics and MCMC-EM with group Metropolis; ℓ(θ_t) by the quadrature, below ℓ(θ*)."""
    process = app("experiment=theophylline_saem", "num_iters=2", "seeds=[0,1]", "completion.num_samples=2",
                  "hydra.sweep.dir=sweep", timeout=1200)
    assert process.returncode == 0, process.stdout[-3000:] + process.stderr[-3000:]
    tables = job_tables(tmp_path / "sweep")
    assert len(tables) == 2
    for table_path in tables:
        table = pd.read_csv(table_path)
        assert table["loglik"].notna().all() and (table["loglik_gap"] > 0).all()
        result = json.loads((table_path.parent / "result.json").read_text())
        assert set(result["reference"]["params"]) == {"log_mean", "omega", "sigma"}
        assert result["reference"]["loglik"] == pytest.approx(theophylline_reference.QUADRATURE_LOGLIK)


@pytest.mark.slow
def test_salamander_sweep_runs_end_to_end_without_a_loglik(app, tmp_path):
    """NUTS SAEM on statistics and MCMC-EM; θ* is published, ℓ unknown: distances only, and a report."""
    process = app("experiment=salamander_glmm", "num_iters=2", "seeds=[0,1]", "completion.num_samples=2",
                  "++completion.num_warmup=5", "hydra.sweep.dir=sweep", timeout=1200)
    assert process.returncode == 0, process.stdout[-3000:] + process.stderr[-3000:]
    tables = job_tables(tmp_path / "sweep")
    assert len(tables) == 2
    for table_path in tables:
        table = pd.read_csv(table_path)
        assert table["loglik"].isna().all() and (table["distance"] > 0).all()
    summary = pd.read_csv(tmp_path / "sweep" / "report" / "summary.csv")
    assert set(summary["completion"]) == {"saem", "mcmc"}

"""The casino, cbpp and poisson scenarios: data, HMM state matching, and the quadrature reference θ*.

* HMM states relabelled (``A ↦ P A Pᵀ``) are matched back, against brute force
  over every permutation;
* the adaptive Gauss–Hermite log-likelihood equals ``scipy.integrate.quad`` per
  group, and its maximum is confirmed by Nelder–Mead from another start and by
  lme4's published cbpp fit;
* the numpyro models of the scenarios have the log joint the quadrature
  integrates (numpy against numpyro's own log density), and their
  importance-sampled ℓ(θ*) agrees with the quadrature's (z-score);
* the MCMC experiments run end to end (the casino's experiment runs in
  ``test_cli.py`` with the others comparing exact and sampled EM).
"""

from __future__ import annotations

import itertools
import json

import jax
import numpy as np
import pandas as pd
import pytest
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf
from scipy import integrate, optimize, stats

import stochem as se
from stochem.app import datasets, quadrature, reference, scenarios, settings
from stochem.app.job import TABLE_COLUMNS
from stochem.app.matching import MAX_ENUMERATED_STATES, distance, symmetry_of
from stochem.app.settings import ConfigError
from stochem.models.numpyro_model import estimate_loglik
from tests.app.matching_checks import assert_every_relabelling_matches_back
from tests.mc_checks import z_threshold


def scenario_config(name: str, *overrides: str, **changes):
    """The composed scenario config, with top-level keys replaced by ``changes``."""
    with initialize_config_module(version_base="1.3", config_module="stochem.app.configs"):
        cfg = compose("config", overrides=[f"scenario={name}", *overrides]).scenario
    return OmegaConf.create({**OmegaConf.to_container(cfg), **changes})


def build(name: str, *overrides: str) -> scenarios.Scenario:
    return scenarios.build(scenario_config(name, *overrides), init_seed=0)


# --- the casino ---------------------------------------------------------------------------------


def test_casino_scenario_holds_several_sequences_of_rolls():
    built = build("casino")
    assert isinstance(built.data, list) and len(built.data) == 10
    assert all(sequence.shape == (300,) and set(np.unique(sequence)) <= set(range(6)) for sequence in built.data)
    prepared = built.model.prepare_data(built.data)
    assert prepared.observations.shape == (10, 300)
    assert np.isfinite(float(built.model.log_marginal(built.init, prepared)))
    assert built.fixed == ("initial_probs",)
    again = datasets.casino_rolls(10, 300, seed=1998)
    other = datasets.casino_rolls(10, 300, seed=1999)
    assert all(np.array_equal(a, b) for a, b in zip(built.data, again))
    assert not all(np.array_equal(a, b) for a, b in zip(built.data, other))


def test_casino_rolls_show_more_sixes_than_a_fair_die():
    """P(six) at stationarity is 2/3 · 1/6 + 1/3 · 1/2 = 5/18; a fair die gives 1/6."""
    rolls = np.concatenate(datasets.casino_rolls(20, 2000, seed=0))
    # 40,000 correlated rolls: the standard error of the frequency is a few 1e-3 at most.
    assert abs(np.mean(rolls == 5) - 5 / 18) < 0.02
    assert np.mean(rolls == 5) > 1 / 6 + 0.05


def random_hmm(rng, num_states, num_categories=3):
    return {"initial_probs": rng.dirichlet(np.ones(num_states)),
            "transition_matrix": rng.dirichlet(np.ones(num_states), size=num_states),
            "emission_probs": rng.dirichlet(np.ones(num_categories), size=num_states)}


def relabel(params, order):
    order = list(order)
    return {"initial_probs": params["initial_probs"][order],
            "transition_matrix": params["transition_matrix"][np.ix_(order, order)],
            "emission_probs": params["emission_probs"][order]}


def brute_force_hmm_distance(params, reference_params):
    num_states = len(params["initial_probs"])
    return min(np.sqrt(sum(np.sum((value - reference_params[name]) ** 2)
                           for name, value in relabel(params, order).items()))
               for order in itertools.permutations(range(num_states)))


HMM = symmetry_of(se.models.HiddenMarkovModel(3, "categorical", num_categories=3))


@pytest.mark.parametrize("num_states", [2, 3, 4])
def test_relabelled_hmm_states_are_matched_back(num_states):
    rng = np.random.default_rng(num_states)
    assert_every_relabelling_matches_back(random_hmm(rng, num_states), relabel, HMM, num_states)


@pytest.mark.parametrize("seed", range(6))
def test_hmm_matching_finds_the_best_relabelling(seed):
    rng = np.random.default_rng(seed)
    num_states = 2 + seed % 3
    params, reference_params = random_hmm(rng, num_states), random_hmm(rng, num_states)
    assert distance(params, reference_params, HMM) == pytest.approx(
        brute_force_hmm_distance(params, reference_params), rel=1e-12)


def test_many_states_fall_back_to_assignment_and_still_undo_a_relabelling():
    rng = np.random.default_rng(7)
    num_states = MAX_ENUMERATED_STATES + 2
    params = random_hmm(rng, num_states, num_categories=4)
    order = rng.permutation(num_states)
    assert distance(relabel(params, order), params, HMM) == pytest.approx(0.0, abs=1e-12)


def test_gaussian_hmm_states_carry_means_and_covariances():
    symmetry = symmetry_of(se.models.HiddenMarkovModel(2, "gaussian"))
    assert symmetry.component_fields == ("initial_probs", "means", "covariances")
    assert symmetry.square_fields == ("transition_matrix",)


# --- the random-intercept GLMMs ------------------------------------------------------------------


def grouped_counts(model) -> quadrature.GroupedCounts:
    _, arguments = model.arguments.rebuild(model.arguments.arrays)
    return quadrature.GroupedCounts(np.asarray(arguments["design"]), np.asarray(arguments["group"]),
                                    np.asarray(arguments["counts"]), int(arguments["num_groups"]),
                                    None if "trials" not in arguments else np.asarray(arguments["trials"]))


def log_lik_by_scipy(data: quadrature.GroupedCounts, group_index, beta, group_sd):
    """log ∫ Π_i p(y_i | x_iβ + u) N(u; 0, σ²) du for one group, by adaptive scipy quadrature."""
    rows = data.group == group_index
    linear = data.design[rows] @ beta

    def log_integrand(u):
        if data.trials is None:
            log_lik = stats.poisson.logpmf(data.counts[rows], np.exp(linear + u))
        else:
            log_lik = stats.binom.logpmf(data.counts[rows], data.trials[rows], 1 / (1 + np.exp(-linear - u)))
        return np.sum(log_lik) + stats.norm.logpdf(u, 0, group_sd)

    # Centre on the mode and scale out its height so quad sees a function of order one.
    mode = optimize.minimize_scalar(lambda u: -log_integrand(u), bounds=(-20, 20), method="bounded").x
    peak = log_integrand(mode)
    value, _ = integrate.quad(lambda u: np.exp(log_integrand(u) - peak), mode - 15 * group_sd,
                              mode + 15 * group_sd, points=[mode], epsabs=0, epsrel=1e-12, limit=200)
    return peak + np.log(value)


@pytest.mark.parametrize("name", ["cbpp", "poisson"])
def test_quadrature_matches_scipy_integration_per_group(name):
    data = grouped_counts(build(name).model)
    rng = np.random.default_rng(0)
    num_fixed = data.design.shape[1]
    for beta, group_sd in [(np.zeros(num_fixed), 1.0), (rng.normal(0, 0.5, num_fixed), 0.4),
                           (rng.normal(0, 0.5, num_fixed), 1.7)]:
        per_group = quadrature.group_log_likelihoods(data, beta, group_sd)
        for group_index in (0, 3, data.num_groups - 1):
            assert per_group[group_index] == pytest.approx(
                log_lik_by_scipy(data, group_index, beta, group_sd), abs=1e-6)


@pytest.mark.parametrize("name", ["cbpp", "poisson"])
def test_numpyro_log_joint_is_the_integrand_of_the_quadrature(name):
    """numpyro's log p(y, u; θ) at random (θ, u) equals Σ_g h_g(u_g), computed with scipy."""
    model = build(name).model
    data = grouped_counts(model)
    rng = np.random.default_rng(1)
    beta, group_sd = rng.normal(0, 0.5, data.design.shape[1]), 0.8
    intercepts = rng.normal(0, group_sd, data.num_groups)
    linear = data.design @ beta + intercepts[data.group]
    if data.trials is None:
        expected = np.sum(stats.poisson.logpmf(data.counts, np.exp(linear)))
    else:
        expected = np.sum(stats.binom.logpmf(data.counts, data.trials, 1 / (1 + np.exp(-linear))))
    expected += np.sum(stats.norm.logpdf(intercepts, 0, group_sd))
    params = model.params_type(beta=beta, group_sd=np.asarray(group_sd))
    actual = model.log_joint(params, model.prepare_data(None), {"intercept": intercepts})
    assert float(actual) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("name", [pytest.param("cbpp", marks=pytest.mark.slow), "poisson"])
def test_quadrature_reference_is_the_maximum(name):
    """θ* from the scenario's reference: gradient zero, and Nelder–Mead from elsewhere finds no higher ℓ."""
    built = build(name)
    fixed_point = reference.fixed_point(built, 10)
    assert built.reference["_target_"] == "stochem.app.reference.quadrature_mle"
    data = grouped_counts(built.model)
    beta, group_sd = fixed_point.params["beta"], float(fixed_point.params["group_sd"])
    assert fixed_point.loglik == pytest.approx(quadrature.log_likelihood(data, beta, group_sd), abs=1e-9)

    def negative(theta):
        return -quadrature.log_likelihood(data, theta[:-1], float(np.exp(theta[-1])))

    start = np.append(beta + 0.3, np.log(group_sd) - 0.3)
    simplex = optimize.minimize(negative, start, method="Nelder-Mead",
                                options={"xatol": 1e-9, "fatol": 1e-12, "maxiter": 20000, "maxfev": 20000})
    assert -simplex.fun <= fixed_point.loglik + 1e-6
    assert -simplex.fun == pytest.approx(fixed_point.loglik, abs=1e-6)
    np.testing.assert_allclose(simplex.x, np.append(beta, np.log(group_sd)), atol=1e-3)
    assert fixed_point.last_step < 1e-4


def test_cbpp_reference_is_lme4s_fit():
    """lme4's ``glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), binomial)``, AGQ."""
    fixed_point = reference.fixed_point(build("cbpp"), 10)
    np.testing.assert_allclose(fixed_point.params["beta"], [-1.40, -0.99, -1.13, -1.58], atol=0.01)
    assert abs(float(fixed_point.params["group_sd"]) - 0.64) < 0.015


@pytest.mark.slow
@pytest.mark.parametrize("name", ["cbpp", "poisson"])
def test_importance_sampled_loglik_at_the_reference_agrees_with_the_quadrature(name):
    """The numpyro model's ℓ(θ*) by importance sampling (its own estimator) equals the quadrature's."""
    built = build(name)
    fixed_point = reference.fixed_point(built, 10)
    params = built.model.params_type(beta=fixed_point.params["beta"], group_sd=fixed_point.params["group_sd"])
    estimate = estimate_loglik(built.model, params, jax.random.key(0), num_samples=2000)
    assert 0 < float(estimate.stderr) < 0.05
    assert abs(float(estimate.loglik) - fixed_point.loglik) / float(estimate.stderr) < z_threshold(2)


def test_numpyro_scenarios_hold_their_data_in_the_model():
    built = build("poisson")
    assert built.data is None
    assert built.model.params_type._fields == ("beta", "group_sd")
    np.testing.assert_array_equal(built.init.beta, [0.0, 0.0])
    other = build("poisson", "scenario.model.seed=1")
    assert not np.array_equal(grouped_counts(built.model).counts, grouped_counts(other.model).counts)


# --- a scenario's own reference --------------------------------------------------------------------


def constant_reference(model, value: float):
    """A reference target for the tests: every field of θ* set to ``value``."""
    fields = {name: np.full(np.shape(getattr(model.init_params(jax.random.key(0), model.prepare_data(None)),
                                             name)), value) for name in model.params_type._fields}
    return reference.FixedPoint(params=fields, loglik=-1.0, num_iters=0, last_step=0.0)


def not_a_fixed_point(model):
    return {"beta": 0.0}


def test_a_scenario_names_its_reference_target_and_options():
    cfg = scenario_config("poisson", reference={"_target_": f"{__name__}.constant_reference", "value": 2.5})
    fixed_point = reference.fixed_point(scenarios.build(cfg, 0), 10)
    np.testing.assert_array_equal(fixed_point.params["beta"], [2.5, 2.5])
    assert fixed_point.loglik == -1.0


@pytest.mark.parametrize("target, error, words", [
    ("not_a_fixed_point", TypeError, ["scenario.reference", "FixedPoint", "dict"]),
    ("no_such_function", ConfigError, ["scenario.reference", "cannot import"]),
])
def test_a_bad_reference_target_is_named(target, error, words):
    cfg = scenario_config("poisson", reference={"_target_": f"{__name__}.{target}"})
    with pytest.raises(error) as raised:
        reference.fixed_point(scenarios.build(cfg, 0), 10)
    for word in words:
        assert word in str(raised.value)


# --- the MCMC experiments, end to end -------------------------------------------------------------


@pytest.mark.parametrize("experiment, scenario", [
    ("cbpp_mcmc", "cbpp"),
    pytest.param("poisson_mcmc", "poisson", marks=pytest.mark.slow),  # the same code path as cbpp's, 30 s more
])
def test_mcmc_experiment_runs_end_to_end(app, tmp_path, experiment, scenario):
    """MCMC-EM and MCMC-SAEM for two iterations with two draws: tables, ℓ and θ* by quadrature, report."""
    process = app(f"experiment={experiment}", "num_iters=2", "seeds=[0,1]", "completion.num_samples=2",
                  "++completion.num_warmup=5", "hydra.sweep.dir=sweep")
    assert process.returncode == 0, process.stdout[-3000:] + process.stderr[-3000:]
    root = tmp_path / "sweep"
    with initialize_config_module(version_base="1.3", config_module="stochem.app.configs"):
        swept = compose("config", overrides=[f"experiment={experiment}"], return_hydra_config=True)
    completions = set(swept.hydra.sweeper.params["completion"].split(","))
    msteps = set(swept.hydra.sweeper.params["mstep"].split(","))
    assert msteps == {"gradient", "stochastic_newton"}  # MCMC-EM and MCMC-SAEM
    tables = sorted(path for path in root.glob("**/table.csv") if "report" not in path.parts)
    assert len(tables) == len(completions) * len(msteps)  # one sample count here
    for table_path in tables:
        table = pd.read_csv(table_path)
        assert list(table.columns) == list(TABLE_COLUMNS)
        assert len(table) == 2 * 3 and (table["scenario"] == scenario).all()
        assert table["distance"].notna().all() and (table["distance"] > 0).all()
        # ℓ(θ_t) by the reference's quadrature (the model has none): θ* is the maximum
        assert table["loglik"].notna().all() and (table["loglik_gap"] > -1e-6).all()
        result = json.loads((table_path.parent / "result.json").read_text())
        assert set(result["reference"]["params"]) == {"beta", "group_sd"}
        assert result["reference"]["loglik"] < 0
    summary = pd.read_csv(root / "report" / "summary.csv")
    assert set(summary["completion"]) == completions and set(summary["mstep"]) == msteps
    assert (root / "report" / f"{scenario}.png").stat().st_size > 1000


def test_the_quadrature_reference_fills_in_the_loglik_the_model_cannot_give():
    built = build("poisson")
    fixed_point = reference.fixed_point(built, 10)
    trace = {"beta": np.array([[[0.0, 0.0], [0.5, 0.3]], [[0.2, 0.1], [np.nan, np.nan]]]),
             "group_sd": np.array([[1.0, 0.7], [0.9, np.nan]])}
    filled = reference.loglik_trace(fixed_point, trace, np.full((2, 2), np.nan))
    data = grouped_counts(built.model)
    assert filled[0, 1] == pytest.approx(quadrature.log_likelihood(data, [0.5, 0.3], 0.7), abs=1e-12)
    assert np.isnan(filled[1, 1]) and np.all(filled[np.isfinite(filled)] < fixed_point.loglik)
    given = np.array([[-1.0, -2.0]])  # a model's own ℓ is kept
    np.testing.assert_array_equal(reference.loglik_trace(fixed_point, {"beta": trace["beta"][:1],
                                  "group_sd": trace["group_sd"][:1]}, given), given)


@pytest.mark.parametrize("name, override, words", [
    ("casino", "scenario.data.num_rolls=0", ["scenario.data", "num_rolls", ">= 1"]),
    ("poisson", "scenario.model.num_groups=0", ["scenario.model", "num_groups", ">= 1"]),
    ("poisson", "scenario.model.group_sd=-1", ["scenario.model", "group_sd", ">= 0"]),
])
def test_bad_data_options_are_named(name, override, words):
    with pytest.raises(ConfigError) as raised:
        build(name, override)
    for word in words:
        assert word in str(raised.value)


def test_the_saem_mstep_is_read_and_its_options_checked():
    with initialize_config_module(version_base="1.3", config_module="stochem.app.configs"):
        cfg = compose("config", overrides=["experiment=cbpp_mcmc", "completion=mcmc", "mstep=stochastic_newton"])
        bad = compose("config", overrides=["completion=mcmc", "mstep=stochastic_newton", "mstep.exponent=0.4"])
    job = settings.read(cfg)
    assert job.mstep_name == "stochastic_newton"
    assert job.mstep == se.stochastic_newton(se.saem_step_size(burn_in=50, exponent=1.0))
    with pytest.raises(ConfigError) as raised:
        settings.read(bad)
    assert raised.value.option == "mstep.exponent" and "(0.5, 1]" in str(raised.value)

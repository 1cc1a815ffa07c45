"""The missing-entries mixture scenarios and the scenarios' ``sample_weight``.

* ``faithful_missing`` removes waiting times at random given the eruption length
  (more after long eruptions), ``gmm_missing`` completely at random;
* a scenario's whole-number weights give the reference fit of the repeated rows
  (to 1e-8), and a job passes them to ``fit``;
* weights a model cannot take, or of the wrong length, are refused naming
  ``scenario.sample_weight`` before any fit.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

import stochem as se
from stochem.app import datasets, job, reference, scenarios
from stochem.app.settings import ConfigError


def scenario_config(name: str, **changes):
    with initialize_config_module(version_base="1.3", config_module="stochem.app.configs"):
        cfg = compose("config", overrides=[f"scenario={name}"]).scenario
    return OmegaConf.create({**OmegaConf.to_container(cfg), **changes})


def test_faithful_missing_loses_waiting_times_more_after_long_eruptions():
    built = scenarios.build(scenario_config("faithful_missing"), init_seed=0)
    full = datasets.csv_columns("faithful.csv", ["eruptions", "waiting"], standardize=True)
    missing = np.isnan(built.data)
    assert not missing[:, 0].any() and missing[:, 1].any()
    np.testing.assert_array_equal(built.data[~missing], full[~missing])  # the rest is the data as shipped
    long_eruptions = full[:, 0] > np.median(full[:, 0])
    assert missing[long_eruptions, 1].mean() > 2 * missing[~long_eruptions, 1].mean()  # MAR, not MCAR
    assert built.sample_weight is None


def test_removal_mechanisms_hit_their_average_rate():
    values = np.random.default_rng(0).normal(size=(20000, 3))
    for remove in (datasets.missing_completely_at_random, datasets.missing_at_random):
        removed = np.isnan(remove(np.random.default_rng(1), values, 0.3))
        rate, se_rate = removed[:, 1:].mean(), np.sqrt(0.3 * 0.7 / removed[:, 1:].size)
        assert not removed[:, 0].any()
        # given the driver column, entries are independent with average probability 0.3 (MAR's intercept is
        # solved on these data), so the binomial standard error bounds the spread
        assert abs(rate - 0.3) < 5 * se_rate


def test_weighted_scenario_reference_is_the_fit_of_the_repeated_rows():
    built = scenarios.build(scenario_config("gmm_missing"), init_seed=0)
    counts = built.sample_weight
    assert counts.shape == (200,) and set(np.unique(counts)) == {1.0, 2.0, 3.0}
    assert np.isnan(built.data).any()
    weighted = reference.exact_fixed_point(built, 60)
    repeated = se.fit(built.model, np.repeat(built.data, counts.astype(int), axis=0), init=built.init,
                      num_iters=60)
    for name, value in reference.as_dict(repeated.params).items():
        np.testing.assert_allclose(weighted.params[name], value, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(weighted.loglik, float(repeated.trace.loglik[-1]), rtol=1e-10)


def test_job_passes_the_scenario_weights_to_fit(tmp_path):
    with initialize_config_module(version_base="1.3", config_module="stochem.app.configs"):
        cfg = compose("config", overrides=["scenario=gmm_missing", "completion=exact", "num_iters=3", "seeds=[0]",
                                           "reference.num_iters=60"])
    job.run(cfg, tmp_path)
    built = scenarios.build(cfg.scenario, 0)
    result = se.fit(built.model, built.data, init=built.init, num_iters=3, sample_weight=built.sample_weight)
    unweighted = se.fit(built.model, built.data, init=built.init, num_iters=3)
    written = json.loads((tmp_path / job.RESULT_FILE).read_text())
    assert abs(float(unweighted.trace.loglik[-1]) - float(result.trace.loglik[-1])) > 1.0  # the weights matter
    np.testing.assert_allclose(written["final"][0]["loglik"], float(result.trace.loglik[-1]), rtol=1e-10)


@pytest.mark.parametrize(("name", "weights", "says"), [
    ("coins", [1.0] * 5, "SampleWeights"),
    ("gmm_missing", [1.0, 2.0], "shape (200,)"),
    ("gmm_missing", [-1.0] * 200, "non-negative"),
])
def test_bad_scenario_weights_are_refused_naming_the_option(name, weights, says):
    with pytest.raises(ConfigError, match="scenario.sample_weight") as error:
        scenarios.build(scenario_config(name, sample_weight=weights), init_seed=0)
    assert error.value.option == "scenario.sample_weight" and says in str(error.value)

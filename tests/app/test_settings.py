"""Bad option values are caught before any JAX work, with the option named."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

import stochem as se
from stochem.app.settings import ConfigError, read


def job_config(**changes):
    cfg = OmegaConf.create({
        "scenario": {"name": "coins"},
        "completion": {"name": "monte_carlo", "num_samples": 10},
        "mstep": {"name": "closed_form"},
        "num_iters": 5, "seeds": [0, 1], "init_seed": 0, "reference": {"num_iters": 100},
    })
    for dotted, value in changes.items():
        OmegaConf.update(cfg, dotted.replace("__", "."), value, force_add=True)
    return cfg


def test_a_good_config_gives_the_fit_arguments():
    job = read(job_config())
    assert job.completion == se.monte_carlo(10)
    assert job.mstep == se.closed_form()
    assert job.seeds == (0, 1) and job.num_iters == 5 and job.reference_iters == 100


def test_exact_completion_ignores_num_samples():
    job = read(job_config(completion__name="exact"))
    assert job.completion == se.exact() and job.num_samples is None


def test_gradient_mstep_reuses_one_optimizer_per_setting():
    changes = dict(mstep__name="gradient", mstep__optimizer="adam", mstep__learning_rate=0.1, mstep__num_steps=3)
    assert read(job_config(**changes)).mstep == read(job_config(**changes)).mstep  # same compiled program
    lbfgs = read(job_config(**{**changes, "mstep__optimizer": "lbfgs", "mstep__learning_rate": None}))
    assert lbfgs.mstep_name == "gradient"


@pytest.mark.parametrize("option, value, words", [
    ("completion.num_samples", 0, ["completion.num_samples", ">= 1"]),
    ("completion.num_samples", 2.5, ["completion.num_samples", "integer"]),
    ("completion.name", "magic", ["completion.name", "exact", "monte_carlo"]),
    ("mstep.name", "newton", ["mstep.name", "closed_form", "gradient"]),
    ("num_iters", 0, ["num_iters", ">= 1"]),
    ("seeds", [], ["seeds", "at least one"]),
    ("seeds", [1, 1], ["seeds", "repeat"]),
    ("seeds", 3, ["seeds", "list"]),
    ("init_seed", -1, ["init_seed"]),
    ("reference.num_iters", 0, ["reference.num_iters"]),
])
def test_bad_values_name_the_option_and_what_it_accepts(option, value, words):
    with pytest.raises(ConfigError) as error:
        read(job_config(**{option.replace(".", "__"): value}))
    assert error.value.option == option
    for word in words:
        assert word in str(error.value)


def test_bad_gradient_settings():
    base = dict(mstep__name="gradient", mstep__optimizer="adam", mstep__learning_rate=0.1, mstep__num_steps=3)
    for change, option in ((dict(mstep__optimizer="bfgs"), "mstep.optimizer"),
                           (dict(mstep__learning_rate=-1.0), "mstep.learning_rate"),
                           (dict(mstep__learning_rate=None), "mstep.learning_rate"),
                           (dict(mstep__num_steps=0), "mstep.num_steps")):
        with pytest.raises(ConfigError) as error:
            read(job_config(**{**base, **change}))
        assert error.value.option == option

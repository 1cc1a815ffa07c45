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


def test_long_jobs_show_a_progress_bar():
    assert read(job_config(num_iters=500, progress_from=500)).progress
    assert not read(job_config(num_iters=499, progress_from=500)).progress
    assert not read(job_config(num_iters=10**6, progress_from=None)).progress  # null: never
    assert not read(job_config()).progress  # no progress_from: never


def test_the_default_config_shows_progress_only_for_long_jobs():
    from stochem.app.paths import config_dir

    defaults = OmegaConf.load(config_dir() / "config.yaml")
    assert not read(job_config(num_iters=defaults.num_iters, progress_from=defaults.progress_from)).progress


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
    ("completion.name", "magic", ["completion.name", "exact", "monte_carlo", "saem", "online_em"]),
    ("mstep.name", "newton", ["mstep.name", "closed_form", "gradient"]),
    ("num_iters", 0, ["num_iters", ">= 1"]),
    ("seeds", [], ["seeds", "at least one"]),
    ("seeds", [1, 1], ["seeds", "repeat"]),
    ("seeds", 3, ["seeds", "list"]),
    ("init_seed", -1, ["init_seed"]),
    ("reference.num_iters", 0, ["reference.num_iters"]),
    ("progress_from", 0, ["progress_from", ">= 1", "null"]),
    ("progress_from", "often", ["progress_from", "integer"]),
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


# Every choice of the completion group: the options of its YAML file, and what it builds.
COMPLETION_OPTIONS = {
    "stochastic_em": {"num_samples": 1, "average_from": None},
    "monte_carlo_schedule": {"initial_samples": 10, "growth": 1.2, "max_samples": 500},
    "ascent_monte_carlo": {"initial_samples": 10, "max_samples": 1000, "alpha": 0.25, "beta": 0.25,
                           "gamma": 0.25, "tol": 1e-3, "growth_divisor": 3},
    "saem": {"sampler": "monte_carlo", "num_samples": 1, "burn_in": 20, "exponent": 1.0, "average_from": None,
             "kernel": "nuts", "num_warmup": 200, "num_burnin": 10, "thin": 1, "step_size": 0.1,
             "target_accept_prob": 0.8, "max_tree_depth": 10, "num_leapfrog_steps": None,
             "trajectory_length": None, "dense_mass": False},
    "online_em": {"batch_size": 100, "burn_in": 0, "exponent": 0.6, "average_from": None},
    "incremental": {"num_blocks": 10},
    "mcmc": {"num_samples": 100, "kernel": "nuts", "num_warmup": 200, "num_burnin": 10, "thin": 1,
             "step_size": 0.1, "target_accept_prob": 0.8, "max_tree_depth": 10, "num_leapfrog_steps": None,
             "trajectory_length": None, "dense_mass": False},
}


def completion_config(name, **changes):
    cfg = job_config()
    cfg.completion = {"name": name, **COMPLETION_OPTIONS[name]}
    for option, value in changes.items():
        OmegaConf.update(cfg, f"completion.{option}", value, force_add=True)
    return cfg


def test_every_variant_builds_the_library_composition():
    mcmc = se.mcmc(100, "nuts", num_warmup=200, num_burnin=10)
    expected = {
        "stochastic_em": (se.monte_carlo(1), 1),
        "monte_carlo_schedule": (se.monte_carlo(se.geometric_samples(10, 1.2), max_samples=500), None),
        "ascent_monte_carlo": (se.ascent_monte_carlo(10, 1000, tol=1e-3), None),
        "saem": (se.saem(se.monte_carlo(1), se.saem_step_size(20, 1.0)), 1),
        "online_em": (se.online_em(100, se.saem_step_size(0, 0.6)), None),
        "incremental": (se.incremental(10), None),
        "mcmc": (mcmc, 100),
    }
    labels = set()
    for name, (completion, num_samples) in expected.items():
        job = read(completion_config(name))
        assert job.completion_name == name
        assert job.completion == completion  # equal factories share one compiled program
        assert job.num_samples == num_samples
        labels.add(job.completion_label)
    assert len(labels) == len(expected)


def test_saem_over_mcmc_and_averaging():
    job = read(completion_config("saem", sampler="mcmc", num_samples=5, kernel="hmc", num_leapfrog_steps=8,
                                 average_from=30))
    assert job.completion == se.saem(se.mcmc(5, "hmc", num_leapfrog_steps=8), se.saem_step_size(20, 1.0))
    assert job.average_from == 30
    assert "mcmc" in job.completion_label and "hmc" in job.completion_label and "30" in job.completion_label


def test_labels_tell_settings_apart():
    def label(name, **changes):
        return read(completion_config(name, **changes)).completion_label

    assert label("saem") != label("saem", exponent=0.7) != label("saem", burn_in=5)
    assert label("online_em") != label("online_em", batch_size=50)
    assert label("ascent_monte_carlo") != label("ascent_monte_carlo", alpha=0.1)
    assert label("mcmc") != label("mcmc", thin=3)
    assert label("stochastic_em") != label("stochastic_em", average_from=10)


@pytest.mark.parametrize("name, option, value, words", [
    ("stochastic_em", "num_samples", 5, ["one sample", "monte_carlo"]),
    ("stochastic_em", "average_from", -1, [">= 0"]),
    ("monte_carlo_schedule", "growth", 0.9, [">= 1"]),
    ("monte_carlo_schedule", "max_samples", 5, ["at least initial_samples"]),
    ("monte_carlo_schedule", "initial_samples", "ten", ["integer"]),
    ("ascent_monte_carlo", "initial_samples", 1, [">= 2"]),
    ("ascent_monte_carlo", "alpha", 0.7, ["< 0.5"]),
    ("ascent_monte_carlo", "tol", 0, ["> 0"]),
    ("saem", "sampler", "gibbs", ["monte_carlo", "mcmc"]),
    ("saem", "exponent", 0.4, ["> 0.5", "<= 1"]),
    ("saem", "burn_in", -3, [">= 0"]),
    ("online_em", "batch_size", 0, [">= 1"]),
    ("online_em", "exponent", 1.5, ["<= 1"]),
    ("incremental", "num_blocks", 0, [">= 1"]),
    ("mcmc", "kernel", "metropolis", ["nuts", "hmc"]),
    ("mcmc", "target_accept_prob", 1.0, ["< 1"]),
    ("mcmc", "dense_mass", "yes", ["true or false"]),
    ("mcmc", "num_leapfrog_steps", 10, ["hmc"]),  # NUTS chooses its own path length (the library says so)
])
def test_bad_variant_options_name_the_option(name, option, value, words):
    with pytest.raises(ConfigError) as error:
        read(completion_config(name, **{option: value}))
    assert error.value.option == f"completion.{option}"
    for word in words:
        assert word in str(error.value)


def test_the_yaml_files_hold_exactly_the_documented_options():
    from stochem.app.paths import config_dir

    for name, options in COMPLETION_OPTIONS.items():
        yaml = OmegaConf.load(config_dir() / "completion" / f"{name}.yaml")
        assert yaml.name == name
        assert set(yaml) - {"name", "label"} == set(options) | {"num_samples"}, name
        for option, value in options.items():
            assert yaml[option] == value or option in ("max_samples", "num_samples"), (name, option)

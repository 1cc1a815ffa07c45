"""The completion and M-step configs build the library's objects; bad options are named, before any JAX work.

The configs are composed as ``python -m stochem`` composes them (Hydra), and
changed the way command-line overrides change them (``completion.OPTION=...``).
"""

from __future__ import annotations

import functools
import string

import pytest
from hydra import compose, initialize_config_module
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

import stochem as se
from stochem.app.labels import APP_KEYS
from stochem.app.paths import config_dir
from stochem.app.settings import ConfigError, read

COMPLETION_FILES = sorted(path.stem for path in (config_dir() / "completion").glob("*.yaml"))
MSTEP_FILES = sorted(path.stem for path in (config_dir() / "mstep").glob("*.yaml"))


@functools.lru_cache(maxsize=None)
def _composed(*choices: str):
    with initialize_config_module(version_base="1.3", config_module="stochem.app.configs"):
        return compose("config", overrides=list(choices))


def job_config(*choices: str, **changes):
    """The composed config for group ``choices`` (``"completion=saem"``), with options changed
    as overrides change them: ``completion__exponent=0.7`` is ``completion.exponent=0.7``."""
    cfg = _composed("num_iters=5", "seeds=[0,1]", "reference.num_iters=100", *choices).copy()
    for dotted, value in changes.items():
        OmegaConf.update(cfg, dotted.replace("__", "."), value, force_add=True)
    return cfg


def test_a_good_config_gives_the_fit_arguments():
    job = read(job_config("completion=monte_carlo", completion__num_samples=10))
    assert job.completion == se.monte_carlo(10)
    assert job.mstep == se.closed_form()
    assert job.seeds == (0, 1) and job.num_iters == 5 and job.reference_iters == 100
    assert job.completion_label == "monte_carlo S=10" and job.num_samples == 10


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
    job = read(job_config("completion=exact", completion__num_samples=10))
    assert job.completion == se.exact() and job.num_samples is None
    assert job.completion_label == "exact"


def test_gradient_mstep_reuses_one_optimizer_per_setting():
    changes = dict(mstep__optimizer="adam", mstep__learning_rate=0.1, mstep__num_steps=3)
    first = read(job_config("mstep=gradient", **changes)).mstep
    assert first == read(job_config("mstep=gradient", **changes)).mstep  # same compiled program
    assert first.num_steps == 3
    lbfgs = read(job_config("mstep=gradient", **{**changes, "mstep__optimizer": "lbfgs", "mstep__learning_rate": None}))
    assert lbfgs.mstep_name == "gradient"


@pytest.mark.parametrize("group, available", [("completion", COMPLETION_FILES), ("mstep", MSTEP_FILES)])
def test_an_unknown_choice_is_named_with_the_available_ones(group, available):
    with pytest.raises(ConfigCompositionException) as error:
        _composed(f"{group}=magic")
    assert f"{group}/magic" in str(error.value)
    for name in available:
        assert name in str(error.value)
    assert {"exact", "monte_carlo", "saem", "online_em"} <= set(COMPLETION_FILES)
    assert {"closed_form", "gradient", "stochastic_newton"} <= set(MSTEP_FILES)


@pytest.mark.parametrize("option, value, words", [
    ("completion.num_samples", 0, ["completion.num_samples", ">= 1"]),
    ("completion.num_samples", 2.5, ["completion.num_samples", "integer"]),
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
        read(job_config("completion=monte_carlo", **{option.replace(".", "__"): value}))
    assert error.value.option == option
    for word in words:
        assert word in str(error.value)


def test_bad_gradient_settings():
    base = dict(mstep__optimizer="adam", mstep__learning_rate=0.1, mstep__num_steps=3)
    for change, option, word in ((dict(mstep__optimizer="bfgs"), "mstep.optimizer", "adam"),
                                 (dict(mstep__learning_rate=-1.0), "mstep.learning_rate", "> 0"),
                                 (dict(mstep__learning_rate="fast"), "mstep.learning_rate", "> 0"),
                                 (dict(mstep__learning_rate=None), "mstep.learning_rate", "needs"),
                                 (dict(mstep__num_steps=0), "mstep.num_steps", "positive")):
        with pytest.raises(ConfigError) as error:
            read(job_config("mstep=gradient", **{**base, **change}))
        assert error.value.option == option and word in str(error.value)


# Every choice of the completion group: the options of its YAML file, and what it builds.
COMPLETION_OPTIONS = {
    "exact": {},
    "monte_carlo": {},
    "stochastic_em": {"average_from": None},
    "monte_carlo_schedule": {"initial_samples": 10, "growth": 1.2, "max_samples": 5000},
    "ascent_monte_carlo": {"initial_samples": 10, "max_samples": 10000, "alpha": 0.25, "beta": 0.25,
                           "gamma": 0.25, "tol": 1e-3, "growth_divisor": 3},
    "saem": {"sampler": "monte_carlo", "burn_in": 20, "exponent": 1.0, "average_from": None,
             "kernel": "nuts", "num_warmup": 200, "num_burnin": 10, "thin": 1, "step_size": 0.1,
             "target_accept_prob": 0.8, "max_tree_depth": 10, "num_leapfrog_steps": None,
             "trajectory_length": None, "dense_mass": False, "target_accept": 0.4, "adapt_iters": 100},
    "online_em": {"batch_size": 100, "burn_in": 0, "exponent": 0.6, "average_from": None},
    "incremental": {"num_blocks": 10},
    "mcmc": {"kernel": "nuts", "num_warmup": 200, "num_burnin": 10, "thin": 1,
             "step_size": 0.1, "target_accept_prob": 0.8, "max_tree_depth": 10, "num_leapfrog_steps": None,
             "trajectory_length": None, "dense_mass": False},
    "group_metropolis": {"num_burnin": 2, "thin": 1, "target_accept": 0.4, "adapt_iters": 100},
    "ascent_mcmc": {"initial_samples": 16, "max_samples": 1024, "alpha": 0.25, "beta": 0.25, "gamma": 0.25,
                    "tol": 1e-3, "growth_divisor": 3, "kernel": "nuts", "num_warmup": 200, "num_burnin": 10,
                    "thin": 1, "step_size": 0.1, "target_accept_prob": 0.8, "max_tree_depth": 10,
                    "num_leapfrog_steps": None, "trajectory_length": None, "dense_mass": False},
}
NUM_SAMPLES = {"monte_carlo": 100, "stochastic_em": 1, "saem": 1, "mcmc": 100, "group_metropolis": 1}  # null in the other files
SMALL_BUFFERS = {"monte_carlo_schedule": {"max_samples": 500}, "ascent_monte_carlo": {"max_samples": 1000}}


def completion_config(name, **changes):
    return job_config(f"completion={name}", **{f"completion__{option}": value for option, value in changes.items()})


def test_every_variant_builds_the_library_composition():
    mcmc = se.mcmc(100, "nuts", num_warmup=200, num_burnin=10)
    expected = {
        "exact": (se.exact(), None),
        "monte_carlo": (se.monte_carlo(100), 100),
        "stochastic_em": (se.monte_carlo(1), 1),
        "monte_carlo_schedule": (se.monte_carlo(se.geometric_samples(10, 1.2), max_samples=500), None),
        "ascent_monte_carlo": (se.ascent_monte_carlo(10, 1000, tol=1e-3), None),
        "saem": (se.saem(se.monte_carlo(1), se.saem_step_size(20, 1.0)), 1),
        "online_em": (se.online_em(100, se.saem_step_size(0, 0.6)), None),
        "incremental": (se.incremental(10), None),
        "mcmc": (mcmc, 100),
        "group_metropolis": (se.group_metropolis(1), 1),
        "ascent_mcmc": (se.ascent_mcmc(se.mcmc(16, "nuts", num_warmup=200, num_burnin=10), 1024, tol=1e-3), None),
    }
    assert set(expected) == set(COMPLETION_FILES)
    labels = set()
    for name, (completion, num_samples) in expected.items():
        job = read(completion_config(name, **SMALL_BUFFERS.get(name, {})))
        assert job.completion_name == name
        assert job.completion == completion  # equal factories share one compiled program
        assert job.num_samples == num_samples
        labels.add(job.completion_label)
    assert len(labels) == len(expected)


def test_saem_over_mcmc_and_averaging():
    job = read(completion_config("saem", sampler="mcmc", num_samples=5, kernel="hmc", num_leapfrog_steps=8,
                                 average_from=30))
    assert job.completion == se.saem(se.mcmc(5, "hmc", num_leapfrog_steps=8), se.saem_step_size(20, 1.0))
    assert job.average_from == 30 and job.num_samples == 5
    assert "mcmc" in job.completion_label and "hmc" in job.completion_label and "30" in job.completion_label


def test_labels_keep_their_text_and_tell_settings_apart():
    def label(name, **changes):
        return read(completion_config(name, **changes)).completion_label

    assert label("saem") == "saem S=1 burn_in=20 exponent=1"
    assert label("ascent_monte_carlo", max_samples=2000) == "ascent_monte_carlo S0=10<=2000 tol=0.001"
    assert label("monte_carlo_schedule", max_samples=2000) == "monte_carlo_schedule S=10*1.2^k<=2000"
    assert label("online_em", batch_size=10) == "online_em B=10 burn_in=0 exponent=0.6"
    assert label("mcmc", num_samples=50) == "mcmc nuts S=50"
    assert label("stochastic_em", average_from=10) == "stochastic_em avg>=10"
    assert label("saem") != label("saem", exponent=0.7) != label("saem", burn_in=5)
    assert label("online_em") != label("online_em", batch_size=50)
    assert label("ascent_monte_carlo") != label("ascent_monte_carlo", alpha=0.1)
    assert label("mcmc") != label("mcmc", thin=3) != label("mcmc", step_size=0.05)
    assert label("stochastic_em") != label("stochastic_em", average_from=10)
    assert label("exact") == label("exact", num_samples=10)  # exact ignores the swept sample count
    assert label("group_metropolis", num_samples=3) == "group_metropolis S=3"
    assert label("saem", sampler="group_metropolis") == "saem S=1 burn_in=20 exponent=1 sampler=group_metropolis"
    assert label("group_metropolis") != label("group_metropolis", target_accept=0.3)


def test_saem_over_group_metropolis_reads_its_options_only():
    job = read(completion_config("saem", sampler="group_metropolis", num_samples=2, num_burnin=3, adapt_iters=50,
                                 kernel="not read"))  # an mcmc option: not read with this sampler
    assert job.completion == se.saem(se.group_metropolis(2, num_burnin=3, adapt_iters=50), se.saem_step_size(20, 1.0))


def test_default_and_saem_msteps():
    default = read(job_config("completion=saem", "mstep=default"))
    assert default.mstep is None and default.mstep_name == "default"  # fit's own choice
    assert read(job_config("completion=saem", "mstep=saem")).mstep == se.saem_mstep(0, 0.97)
    with pytest.raises(ConfigError) as error:
        read(job_config("completion=saem", "mstep=saem", mstep__annealing_iters=-1))
    assert error.value.option == "mstep.annealing_iters" and ">= 0" in str(error.value)


@pytest.mark.parametrize("name, option, value, words", [
    ("stochastic_em", "num_samples", 5, ["one sample", "monte_carlo"]),
    ("stochastic_em", "average_from", -1, [">= 0"]),
    ("monte_carlo_schedule", "growth", 0.9, [">= 1"]),
    ("monte_carlo_schedule", "growth", "fast", ["number"]),
    ("monte_carlo_schedule", "max_samples", 5, ["at least initial_samples"]),
    ("monte_carlo_schedule", "initial_samples", "ten", ["integer"]),
    ("ascent_monte_carlo", "initial_samples", 1, [">= 2"]),
    ("ascent_monte_carlo", "alpha", 0.7, ["(0, 0.5)"]),
    ("ascent_monte_carlo", "tol", 0, ["positive"]),
    ("saem", "sampler", "gibbs", ["monte_carlo", "mcmc", "group_metropolis"]),
    ("saem", "exponent", 0.4, ["(0.5, 1]"]),
    ("saem", "burn_in", -3, [">= 0"]),
    ("saem", "target_accept_prob", 1.5, ["(0, 1)"]),  # an mcmc option, used with sampler=mcmc
    ("online_em", "batch_size", 0, [">= 1"]),
    ("online_em", "exponent", 1.5, ["(0.5, 1]"]),
    ("incremental", "num_blocks", 0, [">= 1"]),
    ("mcmc", "kernel", "metropolis", ["nuts", "hmc"]),
    ("mcmc", "target_accept_prob", 1.0, ["(0, 1)"]),
    ("mcmc", "dense_mass", "yes", ["True or False"]),
    ("mcmc", "num_leapfrog_steps", 10, ["hmc"]),  # NUTS chooses its own path length (the library says so)
    ("group_metropolis", "adapt_iters", -1, [">= 0"]),
    ("group_metropolis", "num_burnin", "two", ["integer"]),
    ("group_metropolis", "target_accept", 1.0, ["(0, 1)"]),
    ("saem", "adapt_iters", -1, [">= 0"]),  # a group_metropolis option, used with sampler=group_metropolis
])
def test_bad_variant_options_name_the_option(name, option, value, words):
    sampler = {"target_accept_prob": "mcmc", "adapt_iters": "group_metropolis"}.get(option) if name == "saem" else None
    changes = {option: value, **({"sampler": sampler} if sampler else {})}
    with pytest.raises(ConfigError) as error:
        read(completion_config(name, **changes))
    assert error.value.option == f"completion.{option}"
    assert str(error.value).startswith(f"completion.{option}: ")
    for word in words:
        assert word in str(error.value)


def test_a_group_without_a_factory_is_named():
    cfg = job_config("completion=exact")
    OmegaConf.set_struct(cfg, False)
    del cfg.completion["factory"]
    with pytest.raises(ConfigError) as error:
        read(cfg)
    assert error.value.option == "completion.factory"


@pytest.mark.parametrize("group, name", [("completion", name) for name in COMPLETION_FILES]
                         + [("mstep", name) for name in MSTEP_FILES])
def test_every_group_file_is_a_factory_to_instantiate(group, name):
    yaml = OmegaConf.load(config_dir() / group / f"{name}.yaml")
    assert yaml.name == name
    assert "_target_" in yaml.factory
    if group == "completion":
        options = set(yaml) - APP_KEYS
        fields = {field for _, field, _, _ in string.Formatter().parse(yaml.title) if field}
        assert fields <= options, name  # the title names options of the file


def test_the_yaml_files_hold_exactly_the_documented_options():
    for name, options in COMPLETION_OPTIONS.items():
        yaml = OmegaConf.load(config_dir() / "completion" / f"{name}.yaml")
        assert set(yaml) - (APP_KEYS - {"average_from"}) == set(options) | {"num_samples"}, name
        assert yaml.num_samples == NUM_SAMPLES.get(name), name
        for option, value in options.items():
            assert yaml[option] == value, (name, option)

"""A new completion reaches the app through its config file alone: nothing in ``stochem/app`` names it.

The config below is written to a folder outside the repository and added to
Hydra's search path, as a user's own config group file would be; its factory
is a function of this module, standing in for the new completion's library
module. The app must build it, label it from its ``title`` and name a bad
option from the library's ``ArgumentError.argument``.
"""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_module

import stochem as se
from stochem._validation import ArgumentError, as_int
from stochem.app.settings import ConfigError, read

POOLED_YAML = """\
# Monte Carlo EM whose draws come in equal batches (a stand-in for a new completion).
name: pooled
num_samples: 5        # draws per batch
batches: 2            # batches per observation and iteration (>= 1)
label: pooled_S${.num_samples}x${.batches}
title: pooled S={num_samples}x{batches}
fixed_num_samples: null
factory:
  _target_: tests.app.test_new_completion.pooled_monte_carlo
  num_samples: ${completion.num_samples}
  batches: ${completion.batches}
"""


def pooled_monte_carlo(num_samples: int, batches: int):
    """``se.monte_carlo(num_samples · batches)``; ``batches`` checked the library's way."""
    batches = as_int("batches", batches, 1)
    if num_samples * batches > 10_000:
        raise ArgumentError("batches", f"num_samples · batches must be at most 10000, got {num_samples * batches}.")
    return se.monte_carlo(num_samples * batches)


@pytest.fixture
def compose_with_pooled(tmp_path):
    (tmp_path / "completion").mkdir()
    (tmp_path / "completion" / "pooled.yaml").write_text(POOLED_YAML, encoding="utf-8")

    def composed(*overrides: str):
        with initialize_config_module(version_base="1.3", config_module="stochem.app.configs"):
            return compose("config", overrides=[f"hydra.searchpath=[file://{tmp_path}]", "completion=pooled",
                                                "num_iters=5", "seeds=[0,1]", *overrides])
    return composed


def test_a_completion_added_by_its_config_file_is_built_and_labelled(compose_with_pooled):
    job = read(compose_with_pooled("completion.batches=3"))
    assert job.completion == se.monte_carlo(15)
    assert job.completion_name == "pooled"
    assert job.completion_label == "pooled S=5x3"
    assert job.num_samples is None
    assert job.completion_options == {"num_samples", "batches"}


@pytest.mark.parametrize("override, words", [
    ("completion.batches=0", ["batches", ">= 1", "got 0"]),
    ("completion.batches=many", ["batches", "integer"]),
    ("completion.batches=4000", ["at most 10000", "got 20000"]),
])
def test_a_bad_option_of_the_new_completion_is_named_from_the_library_error(compose_with_pooled, override, words):
    with pytest.raises(ConfigError) as error:
        read(compose_with_pooled(override))
    assert error.value.option == "completion.batches"
    for word in words:
        assert word in str(error.value)

"""Jobs of one process that differ only in the sample count share one compiled program."""

from __future__ import annotations

from hydra import compose, initialize_config_module

from stochem.app import job
from tests.tracing import count_traces


def test_a_second_job_with_another_sample_count_traces_nothing(tmp_path):
    """As a sweep over ``completion.num_samples`` runs its jobs (basic launcher, one process): the
    second job rebuilds the scenario and calls ``fit`` as the first did, with only S changed, and
    reuses everything the first compiled (the scenario, θ*, the fit's program)."""
    overrides = ["scenario=coins", "completion=monte_carlo", "num_iters=3", "seeds=[0,1]",
                 f"cache.dir={tmp_path / 'cache'}", "cache.compilation=false"]
    with initialize_config_module(version_base="1.3", config_module="stochem.app.configs"):
        first = compose("config", overrides=[*overrides, "completion.num_samples=1"])
        second = compose("config", overrides=[*overrides, "completion.num_samples=10"])
    with count_traces() as first_job:
        job.run(first, tmp_path / "first")
    with count_traces() as second_job:
        job.run(second, tmp_path / "second")
    assert first_job.traces > 0  # the counter sees the first job's programs
    assert second_job.traces == 0
    assert (tmp_path / "second" / job.TABLE_FILE).is_file()

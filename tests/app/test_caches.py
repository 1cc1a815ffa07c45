"""The app's caches: where they live, the exact-EM reference kept on disk, figures keyed by what they draw."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from stochem.app import cache, reference, report, scenarios
from stochem.app.errors import ConfigError
from tests.app.running import app_environment, run_app


def test_the_cache_folder_follows_xdg_and_the_config(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache.cache_root() == tmp_path / "xdg" / "stochem"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache.cache_root() == Path.home() / ".cache" / "stochem"
    assert cache.cache_root(str(tmp_path / "mine")) == tmp_path / "mine"
    settings = cache.read_settings(OmegaConf.create({"cache": {"dir": str(tmp_path), "figures": False}}))
    assert settings.compilation_folder == tmp_path / "jax" and settings.reference_folder == tmp_path / "reference"
    assert settings.figures_folder is None
    with pytest.raises(ConfigError) as error:
        cache.read_settings(OmegaConf.create({"cache": {"reference": "yes"}}))
    assert error.value.option == "cache.reference"


def test_digests_tell_arrays_and_text_apart():
    assert cache.digest("a", np.zeros(2)) == cache.digest("a", np.zeros(2))
    assert cache.digest(np.zeros(2)) != cache.digest(np.zeros(3))
    assert cache.digest(np.zeros(2)) != cache.digest(np.zeros(2, dtype=np.float32))
    assert cache.digest("ab", "c") != cache.digest("a", "bc")
    assert len(cache.source_digest()) == 64


def coins(*overrides):
    with initialize_config_module(version_base="1.3", config_module="stochem.app.configs"):
        return scenarios.build(compose("config", overrides=["scenario=coins", *overrides]).scenario, 0)


def test_the_reference_is_kept_on_disk_and_read_back_bit_for_bit(tmp_path):
    scenario = coins()
    computed = reference.exact_fixed_point(scenario, 25, tmp_path)
    stored = list(tmp_path.glob("coins-*.npz"))
    assert len(stored) == 1
    reference.exact_fixed_point.cache_clear()  # as a later process would
    read_back = reference.exact_fixed_point(scenario, 25, tmp_path)
    for name, value in computed.params.items():
        np.testing.assert_array_equal(read_back.params[name], value)
        assert read_back.params[name].dtype == value.dtype
    assert (read_back.loglik, read_back.num_iters, read_back.last_step) == (
        computed.loglik, computed.num_iters, computed.last_step)
    # another number of iterations, another start: other entries
    reference.exact_fixed_point(scenario, 26, tmp_path)
    reference.exact_fixed_point(coins("scenario.init.probs=[0.55,0.5]"), 25, tmp_path)
    assert len(list(tmp_path.glob("coins-*.npz"))) == 3
    # a damaged entry is computed again
    stored[0].write_bytes(b"not an npz")
    reference.exact_fixed_point.cache_clear()
    again = reference.exact_fixed_point(scenario, 25, tmp_path)
    assert again.loglik == computed.loglik
    assert np.load(stored[0])["loglik"] == computed.loglik


def test_a_seeded_start_is_kept_on_disk_and_read_back(tmp_path):
    with initialize_config_module(version_base="1.3", config_module="stochem.app.configs"):
        cfg = compose("config", overrides=["scenario=missing"]).scenario
    computed = scenarios.build(cfg, 3, tmp_path).init
    stored = list(tmp_path.glob("missing-start-*.npz"))
    assert len(stored) == 1
    scenarios._build_cached.cache_clear()  # as a later process would
    again = scenarios.build(cfg, 3, tmp_path).init
    for field in computed._fields:
        np.testing.assert_array_equal(getattr(again, field), getattr(computed, field))
    scenarios.build(cfg, 4, tmp_path)
    assert len(list(tmp_path.glob("missing-start-*.npz"))) == 2  # another seed, another entry
    # what is on disk is what a later build uses
    shifted = {name: value + 1.0 if name == "mean" else value for name, value in computed._asdict().items()}
    cache.save_arrays(stored[0], shifted)
    scenarios._build_cached.cache_clear()
    np.testing.assert_array_equal(scenarios.build(cfg, 3, tmp_path).init.mean, computed.mean + 1.0)
    scenarios._build_cached.cache_clear()


def runs_table(distance_scale=1.0, seconds_scale=1.0):
    rows = [{"mstep": "closed_form", "completion": completion, "label": label, "seed": seed, "iteration": t,
             "num_samples": samples, "loglik": -10.0 + t, "distance": distance_scale / (t + 1 + seed),
             "loglik_gap": 1.0 / (t + 1), "elapsed_seconds": seconds_scale * t}
            for completion, label, samples in (("exact", "exact", None), ("monte_carlo", "monte_carlo S=10", 10))
            for seed in (0, 1) for t in range(4)]
    return pd.DataFrame(rows).astype({"num_samples": "Int64"})


def test_a_figure_key_changes_with_what_the_figure_draws_only():
    key = report.figure_key("sample_count", "t", [(runs_table(), 0.1)])
    assert key == report.figure_key("sample_count", "t", [(runs_table(), 0.1)])
    assert key == report.figure_key("sample_count", "t", [(runs_table(seconds_scale=2.0), 0.1)])  # no time axis
    assert key != report.figure_key("sample_count", "t", [(runs_table(distance_scale=2.0), 0.1)])
    assert key != report.figure_key("sample_count", "t", [(runs_table(), 0.2)])
    assert key != report.figure_key("sample_count", "other title", [(runs_table(), 0.1)])
    family = report.figure_key("family", "t", [(runs_table(), 0.1)])
    assert family != report.figure_key("family", "t", [(runs_table(seconds_scale=2.0), 0.1)])  # a time axis


def test_an_unchanged_figure_is_not_drawn_again_and_a_cached_one_is_copied(tmp_path):
    drawn = []

    def draw(path):
        drawn.append(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"png " + str(len(drawn)).encode())
        return path

    keys, figure_cache = {}, tmp_path / "figures"
    first = report._figure(tmp_path / "report" / "a.png", "k1", draw, keys, figure_cache)
    assert drawn == [first] and keys == {"a.png": "k1"} and (figure_cache / "k1.png").read_bytes() == b"png 1"
    report._figure(first, "k1", draw, keys, figure_cache)
    assert len(drawn) == 1  # same key: left as it is
    elsewhere = report._figure(tmp_path / "other" / "a.png", "k1", draw, {}, figure_cache)
    assert len(drawn) == 1 and elsewhere.read_bytes() == b"png 1"  # copied from the cache
    report._figure(first, "k2", draw, keys, figure_cache)
    assert len(drawn) == 2 and keys == {"a.png": "k2"} and first.read_bytes() == b"png 2"
    report._figure(tmp_path / "nocache" / "a.png", "k2", draw, {}, None)
    assert len(drawn) == 3  # no cache: drawn


def test_the_app_fills_its_cache_folder_and_a_second_run_reuses_it(tmp_path):
    """Defaults: compiled programs, θ* and figures under $XDG_CACHE_HOME/stochem; the second run reads them."""
    env = app_environment()
    env.pop("JAX_COMPILATION_CACHE_DIR")  # the app's own default folder
    env.pop("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS")  # the app keeps small programs itself
    env.pop("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES")
    env["XDG_CACHE_HOME"] = str(tmp_path / "xdg")
    arguments = ("num_iters=2", "seeds=[0,1]", "reference.num_iters=5")
    results = []
    for run in ("first", "second"):
        process = run_app(*arguments, f"hydra.run.dir={run}", cwd=tmp_path, env=env)
        assert process.returncode == 0, process.stderr[-3000:]
        results.append(json.loads((tmp_path / run / "result.json").read_text()))
        root = tmp_path / "xdg" / "stochem"
        assert any((root / "jax").iterdir()), "no compiled program was kept"
        assert len(list((root / "reference").glob("coins-*.npz"))) == 1
        assert len(list((root / "figures").glob("*.png"))) == 1
    assert results[0]["reference"] == results[1]["reference"]
    assert results[0]["final"] == results[1]["final"]
    keys = [json.loads((tmp_path / run / "report" / report.FIGURE_KEYS).read_text()) for run in ("first", "second")]
    assert keys[0] == keys[1] and list(keys[0]) == ["coins.png"]
    assert (tmp_path / "first" / "report" / "coins.png").read_bytes() == (
        tmp_path / "second" / "report" / "coins.png").read_bytes()

    off = run_app(*arguments, "hydra.run.dir=off", "cache.compilation=false", "cache.reference=false",
                  "cache.figures=false", f"cache.dir={tmp_path / 'unused'}", cwd=tmp_path, env=env)
    assert off.returncode == 0, off.stderr[-3000:]
    assert not (tmp_path / "unused").exists()

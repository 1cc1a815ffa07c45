"""Run-time settings of the compiled EM program (stochem.runtime): what is split out, and what it changes.

The retrace checks for a new ``num_iters`` or S live beside the fits they
reuse (tests/test_driver.py, tests/test_all_models.py); here: the split itself,
and that a run's iterates do not depend on the trace capacity it was compiled with.
"""

import numpy as np
import pytest

import stochem as se
from stochem import runtime

HEADS = [5, 9, 8, 4, 7, 2, 10]
START = {"weights": [0.4, 0.6], "probs": [0.7, 0.3]}
MIXTURE = se.models.BinomialMixture(num_components=2, num_trials=10)
HMM = se.models.HiddenMarkovModel(2, "categorical", num_categories=3)


@pytest.mark.parametrize("num_iters, capacity", [(0, 16), (1, 16), (16, 16), (17, 32), (100, 128), (1024, 1024)])
def test_trace_capacity_is_the_next_power_of_two_at_least_the_minimum(num_iters, capacity):
    assert runtime.trace_capacity(num_iters) == capacity


@pytest.mark.parametrize("num_samples, capacity", [(2, 1024), (1024, 1024), (1025, 2048), (5000, 8192)])
def test_draw_capacity_is_the_next_power_of_two_at_least_the_minimum(num_samples, capacity):
    assert runtime.draw_capacity(num_samples) == capacity


def test_monte_carlo_count_is_a_runtime_value_of_every_fixed_count():
    static, values = runtime.split(se.monte_carlo(37), MIXTURE)
    assert static.num_samples is runtime.RUNTIME and int(values) == 37
    # Every fixed count maps to the same static factory: one program for a sweep over S.
    assert static == runtime.split(se.monte_carlo(5), MIXTURE)[0]
    assert hash(static) == hash(runtime.split(se.monte_carlo(5), MIXTURE)[0])
    assert runtime.join(static, values).num_samples is values
    # Explicit draws (an HMM's paths) fill a buffer of draw_capacity(S) entries: every S up to it shares it.
    static, values = runtime.split(se.monte_carlo(37), HMM)
    assert static.num_samples is runtime.RUNTIME and static.max_samples == 1024 and int(values) == 37
    assert static == runtime.split(se.monte_carlo(900), HMM)[0]
    assert runtime.split(se.monte_carlo(2000), HMM)[0].max_samples == 2048
    joined = runtime.join(static, values)
    assert joined.num_samples is values and joined.max_samples == 1024
    # One explicit draw takes the model's fused pass, and a schedule is code: both stay static.
    assert runtime.split(se.monte_carlo(1), HMM) == (se.monte_carlo(1), ())
    scheduled = se.monte_carlo(se.geometric_samples(2, 1.5), max_samples=50)
    assert runtime.split(scheduled, MIXTURE) == (scheduled, ())
    # Completions without run-time settings are all static.
    assert runtime.split(se.exact(), MIXTURE) == (se.exact(), ())


def test_chain_passes_its_inner_completions_count_through():
    saem = se.chain(se.monte_carlo(3), se.robbins_monro(se.saem_step_size(burn_in=2)))
    static, values = runtime.split(saem, MIXTURE)
    assert static.completion.num_samples is runtime.RUNTIME and int(values) == 3
    assert static.transforms == saem.transforms
    assert runtime.join(static, values).completion.num_samples is values


@pytest.mark.parametrize("completion", [se.exact(), se.monte_carlo(4)], ids=["exact", "monte_carlo"])
def test_a_short_run_is_the_start_of_a_long_one_whatever_the_capacity(completion):
    """num_iters=5 (capacity 16) and 40 (capacity 64) compile two programs; iteration t uses the same key."""
    short = se.fit(MIXTURE, HEADS, init=START, completion=completion, num_iters=5, key=3)
    long = se.fit(MIXTURE, HEADS, init=START, completion=completion, num_iters=40, key=3)
    assert short.trace.loglik.shape == (6,) and long.trace.loglik.shape == (41,)
    assert short.num_iters == 5 and long.num_iters == 40
    np.testing.assert_array_equal(short.trace.params.probs, long.trace.params.probs[:6])
    np.testing.assert_array_equal(short.trace.loglik, long.trace.loglik[:6])


def test_explicit_draws_do_not_depend_on_the_buffer_they_are_kept_in():
    """S = 3 HMM paths kept in the shared buffer (S a traced value) are the draws of a buffer of 3."""
    import jax
    import jax.numpy as jnp

    from stochem.completion.sampling import draw_stats

    data = HMM.prepare_data([np.array([0, 1, 2, 2, 1, 0, 0, 2]), np.array([2, 2, 1, 0, 0, 1, 2, 1])])
    params = HMM.init_params(jax.random.PRNGKey(1), data)
    key = jax.random.PRNGKey(5)
    exact_size = draw_stats(HMM, key, params, data, 3, 3)
    shared = jax.jit(lambda count: draw_stats(HMM, key, params, data, count, 1024).mean())(jnp.asarray(3))
    for ours, reference in zip(jax.tree_util.tree_leaves(shared), jax.tree_util.tree_leaves(exact_size.mean())):
        np.testing.assert_allclose(ours, reference, rtol=1e-13, atol=1e-14)
    # and the draws are random: a fourth draw changes the average
    four = draw_stats(HMM, key, params, data, 4, 4).mean()
    assert any(not np.allclose(a, b) for a, b in zip(jax.tree_util.tree_leaves(four),
                                                      jax.tree_util.tree_leaves(exact_size.mean())))

"""The compiled driver: trace layout, tolerance stop, seeds in batch, caching, argument checks."""

import jax
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import stochem as se
from tests.tracing import count_traces
from stochem import driver

HEADS = [5, 9, 8, 4, 7]
START = {"weights": [0.5, 0.5], "probs": [0.6, 0.5]}
MODEL = se.models.BinomialMixture(num_components=2, num_trials=10)


def em_by_hand(params, num_iters):
    """Plain Python loop over the model's own pieces: the reference for the compiled driver."""
    data = MODEL.prepare_data(HEADS)
    trace = [params]
    for _ in range(num_iters):
        params = MODEL.m_step(MODEL.expected_stats(params, data))
        trace.append(params)
    return trace


def test_trace_starts_at_init_and_follows_the_em_map():
    result = se.fit(MODEL, HEADS, init=START, num_iters=7)
    by_hand = em_by_hand(MODEL.prepare_params(START, None), 7)
    assert result.trace.loglik.shape == (8,)
    assert result.trace.params.probs.shape == (8, 2)
    assert result.num_iters == 7 and result.converged is False
    np.testing.assert_allclose(result.trace.params.probs, [p.probs for p in by_hand], atol=1e-12)
    data = MODEL.prepare_data(HEADS)
    np.testing.assert_allclose(result.trace.loglik, [MODEL.log_marginal(p, data) for p in by_hand], atol=1e-12)
    np.testing.assert_allclose(result.params.probs, by_hand[-1].probs, atol=1e-12)


def test_init_accepts_the_params_namedtuple_and_a_dict():
    as_tuple = se.models.BinomialMixtureParams(weights=np.array([0.5, 0.5]), probs=np.array([0.6, 0.5]))
    a = se.fit(MODEL, HEADS, init=START, num_iters=3)
    b = se.fit(MODEL, HEADS, init=as_tuple, num_iters=3)
    np.testing.assert_array_equal(a.params.probs, b.params.probs)


def test_tolerance_stops_inside_the_loop_when_the_loglik_settles():
    tol = 1e-9
    result = se.fit(MODEL, HEADS, init=START, num_iters=500, tol=tol)
    assert result.converged and 1 < result.num_iters < 500
    loglik = np.asarray(result.trace.loglik)
    assert loglik.shape == (result.num_iters + 1,)
    changes = np.abs(np.diff(loglik))
    # Stopped at the first iteration whose change is within tol, not before.
    assert changes[result.num_iters - 2] <= tol
    assert np.all(changes[: result.num_iters - 2] > tol)
    long_run = se.fit(MODEL, HEADS, init=START, num_iters=result.num_iters)
    np.testing.assert_allclose(long_run.params.probs, result.params.probs, atol=1e-12)


def test_tolerance_not_reached_reports_not_converged():
    result = se.fit(MODEL, HEADS, init=START, num_iters=3, tol=1e-12)
    assert result.num_iters == 3 and not result.converged
    assert result.trace.loglik.shape == (4,)


def test_seeds_in_batch_equal_seeds_one_by_one():
    completion = se.monte_carlo(5)
    batch = se.fit(MODEL, HEADS, completion=completion, init=START, num_iters=4, key=[3, 11, 20])
    assert batch.trace.params.probs.shape == (3, 5, 2)
    for row, seed in enumerate([3, 11, 20]):
        single = se.fit(MODEL, HEADS, completion=completion, init=START, num_iters=4, key=seed)
        np.testing.assert_allclose(batch.trace.params.probs[row], single.trace.params.probs, atol=1e-12)


def test_batched_tolerance_pads_each_seed_after_its_stop_with_nan():
    result = se.fit(MODEL, HEADS, num_iters=300, tol=1e-8, key=[1, 2, 3])
    assert result.converged.all()
    for row, iterations in enumerate(np.asarray(result.num_iters)):
        loglik = np.asarray(result.trace.loglik[row])
        assert np.isfinite(loglik[: iterations + 1]).all()
        assert np.isnan(loglik[iterations + 1:]).all()


def test_key_forms_agree():
    completion = se.monte_carlo(3)
    by_int = se.fit(MODEL, HEADS, completion=completion, init=START, num_iters=2, key=4)
    by_key = se.fit(MODEL, HEADS, completion=completion, init=START, num_iters=2, key=jax.random.key(4))
    raw = jax.random.key_data(jax.random.key(4))
    by_raw = se.fit(MODEL, HEADS, completion=completion, init=START, num_iters=2, key=raw)
    np.testing.assert_array_equal(by_int.params.probs, by_key.params.probs)
    np.testing.assert_array_equal(by_int.params.probs, by_raw.params.probs)


def test_default_init_is_seeded_and_differs_between_seeds():
    a = se.fit(MODEL, HEADS, num_iters=0, key=[0, 1])
    b = se.fit(MODEL, HEADS, num_iters=0, key=[0, 1])
    np.testing.assert_array_equal(a.params.probs, b.params.probs)
    assert not np.allclose(a.params.probs[0], a.params.probs[1])


def test_second_call_with_same_shapes_does_not_retrace():
    model = se.models.BinomialMixture(num_components=2, num_trials=12)
    se.fit(model, [3, 4, 9, 10], completion=se.monte_carlo(7), init=START, num_iters=5, key=[0, 1])
    with count_traces() as counted:
        se.fit(model, [1, 2, 11, 12], completion=se.monte_carlo(7), init={"weights": [0.2, 0.8], "probs": [0.3, 0.9]},
               num_iters=5, key=[5, 6])
    assert counted.traces == 0


def test_new_num_iters_or_sample_count_reuses_the_compiled_program():
    """num_iters (up to the trace capacity) and monte_carlo's S on a model that draws counts are
    run-time values: no retrace, and a longer run starts with the shorter one (the same keys)."""
    model = se.models.BinomialMixture(num_components=2, num_trials=12)
    short = se.fit(model, HEADS, completion=se.monte_carlo(5), init=START, num_iters=4, key=[0, 1])
    with count_traces() as counted:
        longer = se.fit(model, HEADS, completion=se.monte_carlo(5), init=START, num_iters=11, key=[0, 1])
        more = se.fit(model, HEADS, completion=se.monte_carlo(500), init=START, num_iters=4, key=[0, 1])
    assert counted.traces == 0
    assert longer.trace.loglik.shape == (2, 12) and longer.trace.diagnostics.num_samples.shape == (2, 11)
    np.testing.assert_array_equal(longer.trace.params.probs[:, :5], short.trace.params.probs)
    np.testing.assert_array_equal(more.trace.diagnostics.num_samples, 500)
    assert np.asarray(more.trace.diagnostics.stats_stderr.heads).max() < np.asarray(
        short.trace.diagnostics.stats_stderr.heads).max()


@settings(max_examples=25, deadline=None)
@given(
    heads=st.lists(st.integers(0, 10), min_size=3, max_size=12),
    probs=st.lists(st.floats(0.02, 0.98), min_size=2, max_size=2),
    weight=st.floats(0.05, 0.95),
)
def test_exact_em_never_decreases_the_loglik(heads, probs, weight):
    init = {"weights": [weight, 1 - weight], "probs": probs}
    loglik = np.asarray(se.fit(MODEL, heads, init=init, num_iters=15).trace.loglik)
    assert np.all(np.diff(loglik) >= -1e-9 * np.abs(loglik[:-1]).max())


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"num_iters": -1}, ValueError, "num_iters"),
        ({"num_iters": 2.5}, TypeError, "num_iters"),
        ({"tol": -1.0}, ValueError, "tol"),
        ({"fixed": ("weight",)}, ValueError, r"fixed names unknown parameters \['weight'\]"),
        ({"key": "seed"}, TypeError, "key must be"),
        ({"completion": "exact"}, TypeError, "completion"),
    ],
)
def test_bad_arguments_are_rejected_before_tracing(kwargs, error, message):
    with count_traces() as counted:
        with pytest.raises(error, match=message):
            se.fit(MODEL, HEADS, **{"init": START, **kwargs})
    assert counted.traces == 0


def test_fixed_without_init_is_rejected():
    with pytest.raises(ValueError, match="fixed parameters need their values"):
        se.fit(MODEL, HEADS, fixed=("weights",))


@pytest.mark.parametrize("num_samples", [0, -3])
def test_num_samples_below_one_is_rejected(num_samples):
    with pytest.raises(ValueError, match=r"num_samples must be an integer >= 1.*stochastic EM"):
        se.monte_carlo(num_samples)


def test_num_samples_must_be_an_integer():
    with pytest.raises(TypeError, match="num_samples"):
        se.monte_carlo(2.5)


def test_exact_em_warns_when_its_loglik_falls_beyond_rounding():
    from stochem.driver import warn_if_loglik_decreases

    with pytest.warns(RuntimeWarning, match="decreased"):
        warn_if_loglik_decreases(np.array([-10.0, -9.0, -9.5]))
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_if_loglik_decreases(np.array([-10.0, -9.0, -9.0 - 1e-14]))
        # float32 rounding (1e-7 relative) is not a decrease.
        warn_if_loglik_decreases(np.array([-10.0, -9.0, -9.000001], dtype=np.float32))

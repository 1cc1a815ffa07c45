"""Incremental EM, online EM (minibatches and streamed chunks) and Polyak averaging."""

import jax
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import stochem as se
from tests.mc_checks import assert_mean_matches

MODEL = se.models.BinomialMixture(num_components=2, num_trials=10)
START = {"weights": [0.4, 0.6], "probs": [0.75, 0.3]}


def coin_data(num_sets=600, seed=0):
    rng = np.random.default_rng(seed)
    return rng.binomial(10, np.where(rng.random(num_sets) < 0.35, 0.75, 0.35))


def test_incremental_em_with_one_block_is_plain_em():
    heads = coin_data(60)
    plain = se.fit(MODEL, heads, init=START, num_iters=15)
    one_block = se.fit(MODEL, heads, init=START, num_iters=15, completion=se.incremental(1))
    np.testing.assert_allclose(one_block.trace.params.probs, plain.trace.params.probs, atol=1e-12)


def test_incremental_em_reaches_the_em_fixed_point():
    heads = coin_data()
    plain = se.fit(MODEL, heads, init=START, num_iters=2000, tol=1e-13)
    blocks = se.fit(MODEL, heads, init=START, num_iters=3000, completion=se.incremental(10))
    np.testing.assert_allclose(blocks.params.probs, plain.params.probs, atol=1e-7)


def free_energies(model, heads, trace_params, num_blocks):
    """F(q_k, θ_{k+1}) = Σ_n Σ_l q_nl (log p(o_n, l; θ_{k+1}) − log q_nl) along an incremental run.

    q_k holds, for each block, the posterior at the θ at which that block was
    last refreshed: all blocks at θ_0 first, then block (k − 1) mod B at θ_k.
    """
    data = model.prepare_data(heads)
    tables = np.asarray(jax.vmap(lambda params: model.log_joint_table(params, data))(trace_params))
    posteriors = np.exp(tables - np.logaddexp.reduce(tables, axis=-1, keepdims=True))
    logliks = np.logaddexp.reduce(tables, axis=-1).sum(axis=-1)
    block_size = len(heads) // num_blocks
    q = posteriors[0].copy()
    energies = []
    for k in range(tables.shape[0] - 1):
        if k > 0:
            block = (k - 1) % num_blocks
            rows = slice(block * block_size, (block + 1) * block_size)
            q[rows] = posteriors[k][rows]
        safe_q = np.where(q > 0, q, 1.0)
        energies.append(np.where(q > 0, q * (tables[k + 1] - np.log(safe_q)), 0.0).sum())
    return np.array(energies), logliks[1:]


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 10_000), num_blocks=st.sampled_from([2, 3, 5]),
       probs=st.lists(st.floats(0.05, 0.95), min_size=2, max_size=2), weight=st.floats(0.1, 0.9))
def test_incremental_em_never_decreases_the_free_energy(seed, num_blocks, probs, weight):
    """Neal & Hinton's guarantee: F(q, θ) never decreases and bounds ℓ(θ) from below.

    The observed log-likelihood itself may dip while some blocks are stale (seed
    227, 5 blocks, probs [0.75, 0.25], weights [0.5, 0.5] shows one), so the
    theorem, not ℓ's monotonicity, is what is tested.
    """
    heads = coin_data(30, seed)
    result = se.fit(MODEL, heads, init={"weights": [weight, 1 - weight], "probs": probs},
                    num_iters=40, completion=se.incremental(num_blocks))
    energies, logliks = free_energies(MODEL, heads, result.trace.params, num_blocks)
    scale = np.abs(logliks).max()
    assert np.all(np.diff(energies) >= -1e-9 * scale)
    assert np.all(energies <= logliks + 1e-9 * scale)


def test_the_loglik_of_incremental_em_can_dip_while_blocks_are_stale():
    heads = coin_data(30, 227)
    result = se.fit(MODEL, heads, init={"weights": [0.5, 0.5], "probs": [0.75, 0.25]},
                    num_iters=40, completion=se.incremental(5))
    assert np.diff(np.asarray(result.trace.loglik)).min() < -1e-3


def test_incremental_blocks_must_divide_the_rows():
    with pytest.raises(ValueError, match="num_blocks=7 must divide the 60 data rows"):
        se.fit(MODEL, coin_data(60), init=START, completion=se.incremental(7))


def test_online_em_reaches_the_exact_fixed_point():
    heads = coin_data(2000)
    exact = se.fit(MODEL, heads, init=START, num_iters=2000, tol=1e-13)
    seeds = list(range(12))
    online = se.fit(MODEL, heads, init=START, num_iters=800, key=seeds,
                    completion=se.online_em(batch_size=50, step_size=se.saem_step_size(burn_in=20, exponent=0.6)))
    averaged = se.polyak_average(online, burn_in=300)
    final = np.asarray(averaged.probs)[:, -1]
    assert_mean_matches(final, np.asarray(exact.params.probs))
    assert np.abs(final - np.asarray(exact.params.probs)).max() < 0.02


@pytest.mark.parametrize("model, data", [
    (MODEL, coin_data(200)),
    (se.models.GaussianMixture(2), np.random.default_rng(1).normal(size=300)),  # its E-step also gives ℓ
])
def test_online_em_records_the_loglik_of_the_whole_data(model, data):
    """ℓ in the trace is ℓ(θ_t) of all the data, not of the minibatch the step completed."""
    result = se.fit(model, data, completion=se.online_em(batch_size=20), num_iters=6, key=3)
    prepared = model.prepare_data(data)
    expected = [float(model.log_marginal(jax.tree_util.tree_map(lambda leaf: leaf[t], result.trace.params),
                                         prepared)) for t in range(7)]
    np.testing.assert_allclose(result.trace.loglik, expected, rtol=1e-12)


def test_online_em_fits_a_numpyro_model_like_the_hand_written_one():
    """Minibatches of a numpyro model's plate: its per-row statistics are placed at their rows."""
    from tests.models import numpyro_examples as examples
    import optax

    heads = coin_data(120)
    numpyro_model = se.models.from_numpyro(examples.coins, heads, 10)
    start = {"weights": [0.4, 0.6], "probs": [0.75, 0.3]}
    completion = se.online_em(batch_size=30)
    by_hand = se.fit(MODEL, heads, completion=completion, init=start, num_iters=8, key=4)
    from_numpyro = se.fit(numpyro_model, None, completion=completion, init=start, num_iters=8, key=4,
                          mstep=se.gradient(optax.lbfgs(), num_steps=40))
    # The same rows are drawn for the same key; L-BFGS solves each M-step of this concave Q to ~1e-8.
    np.testing.assert_allclose(from_numpyro.trace.params.probs, by_hand.trace.params.probs, atol=1e-6)
    np.testing.assert_allclose(from_numpyro.trace.loglik, by_hand.trace.loglik, rtol=1e-9)


def test_minibatch_checks_the_batch_size():
    with pytest.raises(ValueError, match="batch_size=100 is larger than the 60 data rows"):
        se.fit(MODEL, coin_data(60), init=START, completion=se.online_em(batch_size=100))


def test_streamed_chunks_match_in_memory_online_em_with_full_chunks():
    """With one chunk per pass over all the data, streaming online EM with γ = 1 is plain EM."""
    heads = coin_data(300)
    plain = se.fit(MODEL, heads, init=START, num_iters=5)
    streamed = se.fit_stream(MODEL, (heads for _ in range(5)), init=START, step_size=lambda count: 1.0)
    np.testing.assert_allclose(streamed.trace.params.probs, plain.trace.params.probs, atol=1e-10)


def test_streamed_chunks_converge_to_the_fixed_point():
    heads = coin_data(20000, seed=3)
    exact = se.fit(MODEL, heads, init=START, num_iters=2000, tol=1e-12)
    chunks = (heads[i:i + 500] for i in range(0, heads.size, 500))
    streamed = se.fit_stream(MODEL, chunks, init=START)
    assert streamed.num_iters == 40
    # One pass of 500-row chunks: the online estimate is within a few standard errors
    # of the full-data MLE (standard error ~ 0.005 at 20000 sets).
    np.testing.assert_allclose(streamed.params.probs, exact.params.probs, atol=0.03)
    with pytest.raises(ValueError, match="chunks was empty"):
        se.fit_stream(MODEL, [], init=START)


def test_polyak_average_is_the_running_mean_after_burn_in():
    run = se.fit(MODEL, coin_data(50), completion=se.monte_carlo(1), init=START, num_iters=30)
    averaged = np.asarray(se.polyak_average(run, burn_in=10).probs)
    trace = np.asarray(run.trace.params.probs)
    np.testing.assert_allclose(averaged[:10], trace[:10])
    np.testing.assert_allclose(averaged[-1], trace[10:].mean(axis=0), atol=1e-12)
    with pytest.raises(ValueError, match="burn_in"):
        se.polyak_average(run, burn_in=31)

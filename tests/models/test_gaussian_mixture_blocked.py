"""The blocked GaussianMixture passes equal a plain numpy EM written from the textbook formulas.

The data are long enough to be cut into several blocks plus a shorter last one
(and, in one case, exactly one block), so the ``fori_loop`` over blocks, the
tail and the accumulation of statistics across blocks are all exercised.
"""

import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import logsumexp

import stochem as se
from stochem import devices
from stochem.models import _blocks, gaussian_mixture

REG_COVAR = 1e-6


def plain_log_densities(x, means, covariances, covariance_type):
    """``log N(x_n; μ_k, Σ_k)``, ``[N, K]``, with explicit inverses and determinants."""
    num_components, num_features = means.shape
    if covariance_type == "full":
        full = covariances
    elif covariance_type == "tied":
        full = np.broadcast_to(covariances, (num_components, num_features, num_features))
    elif covariance_type == "diag":
        full = np.stack([np.diag(variances) for variances in covariances])
    else:
        full = np.stack([variance * np.eye(num_features) for variance in covariances])
    columns = []
    for mean, covariance in zip(means, full):
        deviation = x - mean
        quadratic = np.einsum("nd,de,ne->n", deviation, np.linalg.inv(covariance), deviation)
        columns.append(-0.5 * (num_features * np.log(2 * np.pi) + np.linalg.slogdet(covariance)[1] + quadratic))
    return np.stack(columns, axis=1)


def plain_em_step(x, params, covariance_type):
    """One EM iteration (scikit-learn's M-step numerics) and ℓ of the parameters it started from."""
    weights, means, covariances = params
    table = np.log(weights) + plain_log_densities(x, means, covariances, covariance_type)
    loglik = logsumexp(table, axis=1)
    responsibilities = np.exp(table - loglik[:, None])
    counts = responsibilities.sum(axis=0) + 10 * np.finfo(float).eps
    new_means = responsibilities.T @ x / counts[:, None]
    scatter = np.stack([(responsibilities[:, k, None] * (x - new_means[k])).T @ (x - new_means[k])
                        for k in range(len(counts))])  # Σ_n r_nk (x_n − μ_k)(x_n − μ_k)ᵀ
    num_features = x.shape[1]
    new_covariances = {
        "full": scatter / counts[:, None, None] + REG_COVAR * np.eye(num_features),
        "tied": scatter.sum(axis=0) / counts.sum() + REG_COVAR * np.eye(num_features),
        "diag": np.diagonal(scatter, axis1=1, axis2=2) / counts[:, None] + REG_COVAR,
        "spherical": np.trace(scatter, axis1=1, axis2=2) / counts / num_features + REG_COVAR,
    }[covariance_type]
    return (counts / counts.sum(), new_means, new_covariances), loglik.sum()


def clusters(num_points, num_features, num_components, seed):
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=3.0, size=(num_components, num_features)) + 50.0  # far from the origin
    labels = rng.integers(0, num_components, num_points)
    return centres[labels] + rng.standard_normal((num_points, num_features)) * rng.uniform(0.5, 2.0, num_features)


def start_for(x, num_components, covariance_type):
    num_features = x.shape[1]
    covariance = np.cov(x.T)
    covariances = {"full": np.stack([covariance] * num_components), "tied": covariance,
                   "diag": np.tile(np.diag(covariance), (num_components, 1)),
                   "spherical": np.full(num_components, np.trace(covariance) / num_features)}[covariance_type]
    return (np.full(num_components, 1.0 / num_components), x[:: len(x) // num_components][:num_components],
            covariances)


@pytest.mark.parametrize("covariance_type, num_points", [
    ("full", 2_500), ("full", 1_024), ("diag", 2_500), ("spherical", 2_500), ("tied", 2_500)])
def test_blocked_em_equals_plain_numpy_em(covariance_type, num_points):
    num_features, num_components, num_iters = 3, 4, 6
    x = clusters(num_points, num_features, num_components, seed=num_points)
    model = se.models.GaussianMixture(num_components, covariance_type=covariance_type, reg_covar=REG_COVAR)
    block_size = model._block_size(np.asarray(x))
    # The case is a real test of the blocking: several blocks (and a tail), or exactly one.
    assert num_points // block_size >= 2 or num_points == block_size

    start = start_for(x, num_components, covariance_type)
    result = se.fit(model, x, init=dict(zip(("weights", "means", "covariances"), start)), num_iters=num_iters)

    params, logliks = start, []
    for _ in range(num_iters):
        params, loglik = plain_em_step(x, params, covariance_type)
        logliks.append(loglik)
    np.testing.assert_allclose(result.trace.loglik[:num_iters], logliks, rtol=1e-12)
    for ours, theirs in zip(result.params, params):
        np.testing.assert_allclose(np.asarray(ours), theirs, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("on_accelerator, expected", [
    (False, {(200_000, 40): 256, (21_000, 9): 1024, (1_000_000, 3): 4096, (100, 3): 100, (10**6, 10**6): 64}),
    (True, {(200_000, 40): 65_536, (21_000, 9): 21_000, (10**7, 3): 2**20, (100, 3): 100, (10**6, 10**6): 64}),
])
def test_blocks_are_cache_sized_on_a_cpu_and_large_on_an_accelerator(on_accelerator, expected, monkeypatch):
    monkeypatch.setattr(devices, "on_accelerator", lambda: on_accelerator)
    assert {shape: _blocks.block_size_for(*shape) for shape in expected} == expected


def test_one_accelerator_sized_block_equals_plain_numpy_em(monkeypatch):
    """With an accelerator's block size the 3,000 points are one block; EM is the textbook EM."""
    monkeypatch.setattr(devices, "on_accelerator", lambda: True)
    x = clusters(3_000, 3, 4, seed=5)  # a shape no other test traces: the program is traced anew
    model = se.models.GaussianMixture(4, reg_covar=REG_COVAR)
    assert model._block_size(x) == len(x)
    start = start_for(x, 4, "full")
    result = se.fit(model, x, init=dict(zip(("weights", "means", "covariances"), start)), num_iters=4)
    params = start
    for _ in range(4):
        params, _ = plain_em_step(x, params, "full")
    for ours, theirs in zip(result.params, params):
        np.testing.assert_allclose(np.asarray(ours), theirs, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("num_points, block_size", [(7, 8), (8, 8), (9, 4), (16, 4), (17, 4)])
def test_block_passes_cover_every_point_once(num_points, block_size):
    """``sum_blocks`` and ``map_and_sum_blocks`` against a plain sum and a plain map."""
    values = np.arange(num_points, dtype=float)[:, None] * np.array([1.0, 2.0])  # [N, 2]

    def block(index, rows):
        return rows.T * 10.0, jnp.sum(rows, axis=0)

    total = _blocks.sum_blocks(lambda index, rows: jnp.sum(rows, axis=0), block_size, (values,), (0,))
    mapped, summed = _blocks.map_and_sum_blocks(block, block_size, (values,), (0,))
    np.testing.assert_allclose(total, values.sum(axis=0))
    np.testing.assert_allclose(summed, values.sum(axis=0))
    np.testing.assert_allclose(mapped, values.T * 10.0)



@pytest.mark.parametrize("covariance_type", ["full", "tied"])
def test_one_fused_draw_is_the_samplers_draw(covariance_type):
    """Stochastic EM's one-pass draw equals the stored-posterior sampler's draw for the same key."""
    import jax

    from stochem.completion import draw_stats

    x = clusters(2_500, 3, 4, seed=1)
    model = se.models.GaussianMixture(4, covariance_type=covariance_type)
    data = model.prepare_data(x)
    params = model.prepare_params(dict(zip(("weights", "means", "covariances"),
                                           start_for(x, 4, covariance_type))), data)
    key = jax.random.key(3)
    fused, fused_loglik = model.sampled_stats(key, params, data)
    draw, loglik = model.stats_sampler(params, data)
    for ours, theirs in zip(fused, draw(key)):
        np.testing.assert_array_equal(np.asarray(ours), np.asarray(theirs))
    np.testing.assert_allclose(fused_loglik, loglik, rtol=1e-13)
    np.testing.assert_allclose(fused_loglik, model.log_marginal(params, data), rtol=1e-13)
    # monte_carlo(1) takes the fused pass: draw 0 uses fold_in(key, 0).
    drawn = draw_stats(model, key, params, data, 1, 1)
    for ours, theirs in zip(drawn.per_draw, draw(jax.random.fold_in(key, 0))):
        np.testing.assert_array_equal(np.asarray(ours)[0], np.asarray(theirs))
    assert 0 < float(fused.counts.min()) and float(fused.counts.sum()) == len(x)


@pytest.mark.parametrize("size, largest", [(1, 3.0), (31, 3.0), (32, 5.0), (4_097, 64.0), (1_000, 1e6)])
def test_sum_of_logs_by_chunked_products_equals_the_plain_sum(size, largest):
    values = np.random.default_rng(size).uniform(1.0, largest, size)
    expected = np.sum(np.log(values))
    np.testing.assert_allclose(gaussian_mixture._sum_of_logs(jnp.asarray(values)), expected, rtol=1e-14)
    values[size // 2] = 0.0  # a point no component can explain
    assert gaussian_mixture._sum_of_logs(jnp.asarray(values)) == -np.inf

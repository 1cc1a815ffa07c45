"""What ``test_devices.py`` computes on one device (its own process) and on two (a child process).

Run as a script it is the child: ``JAX_NUM_CPU_DEVICES=2 python tests/devices_child.py OUT.npz``
writes every result of :func:`compare_across_devices` and :func:`two_device_only` to ``OUT.npz``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

jax.config.update("jax_enable_x64", True)

if __name__ == "__main__":  # the child: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import stochem as se  # noqa: E402
from stochem import devices  # noqa: E402

# Two equal shares of at least MIN_POINTS_PER_DEVICE points, and one point left over.
LARGE = 2 * devices.MIN_POINTS_PER_DEVICE + 1
SMALL = 300
NUM_DRAWS = 40
COUNTED_SAMPLES = 7  # S of the multinomial counts drawn over cut points


def clusters(num_points: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = np.array([[-3.0, 0.0], [0.0, 2.0], [3.0, -1.0]])
    labels = rng.integers(0, 3, num_points)
    return centres[labels] + rng.standard_normal((num_points, 2)) * np.array([1.0, 0.6])


def start(covariance_type: str):
    covariances = {"full": np.stack([np.eye(2)] * 3), "diag": np.ones((3, 2))}[covariance_type]
    return {"weights": np.full(3, 1 / 3), "means": np.array([[-1.0, 0.0], [0.0, 1.0], [1.0, 0.0]]),
            "covariances": covariances}


def compare_across_devices() -> dict:
    """Results that must not depend on the number of devices (up to rounding)."""
    large, small = clusters(LARGE), clusters(SMALL, seed=1)
    results = {}
    for covariance_type in ("full",):
        model = se.models.GaussianMixture(3, covariance_type=covariance_type)
        fitted = se.fit(model, large, init=start(covariance_type), num_iters=4)
        results[f"{covariance_type}_means"] = fitted.params.means
        results[f"{covariance_type}_loglik"] = fitted.trace.loglik
    model = se.models.GaussianMixture(3)
    params = model.prepare_params(start("full"), model.prepare_data(large))
    data = model.prepare_data(large)
    gradient = jax.grad(lambda means, data: model.log_marginal(params._replace(means=means), data))
    results["loglik_gradient"] = jax.jit(gradient)(params.means, data)
    shifted = jnp.stack([params.means, params.means + 0.5])
    counts = jax.vmap(lambda means, data: model.expected_stats(params._replace(means=means), data).counts,
                      in_axes=(0, None))
    results["vmapped_counts"] = jax.jit(counts)(shifted, data)
    seeds = [0, 1, 2, 3]  # an equal share of seeds per device
    results["seeds_exact_means"] = se.fit(model, small, key=seeds, num_iters=5).params.means
    results["seeds_sampled_means"] = se.fit(model, small, completion=se.monte_carlo(2), init=start("full"),
                                            key=seeds, num_iters=5).params.means
    return {name: np.asarray(value) for name, value in results.items()}


def two_device_only() -> dict:
    """Sampled completions over points cut between devices: the same draw by both routes, and many draws."""
    model = se.models.GaussianMixture(3)
    data = model.prepare_data(clusters(LARGE))
    params = model.prepare_params(start("full"), data)
    results = jax.jit(lambda params, data: _sampled_results(model, params, data, jax.random.key(7)))(params, data)
    return {"num_devices": np.asarray(jax.device_count()),
            "points_are_cut": np.asarray(devices.points_mesh(LARGE) is not None),
            **{name: np.asarray(value) for name, value in results.items()}}


def _sampled_results(model, params, data, key):
    fused, fused_loglik = model.sampled_stats(key, params, data)
    sampler, sampler_loglik = model.stats_sampler(params, data)
    # Two identical halves, one per device: had both devices the same random stream, every
    # point would be drawn twice alike and every count would be even.
    mirrored = jnp.concatenate([data[:devices.MIN_POINTS_PER_DEVICE]] * 2)
    mirrored_sampler, _ = model.stats_sampler(params, mirrored)
    return {
        "fused_counts": fused.counts, "sampler_counts": sampler(key).counts,
        "fused_second": fused.second_moments, "sampler_second": sampler(key).second_moments,
        "fused_loglik": fused_loglik, "sampler_loglik": sampler_loglik,
        "exact_loglik": model.log_marginal(params, data),
        "exact_counts": model.expected_stats(params, data).counts,
        "drawn_counts": jax.lax.map(lambda index: sampler(jax.random.fold_in(key, index)).counts,
                                    jnp.arange(NUM_DRAWS)),
        "mirrored_counts": jax.lax.map(lambda index: mirrored_sampler(jax.random.fold_in(key, index)).counts,
                                       jnp.arange(10)),
        **_counted_results(model, params, data, key),
    }


def _counted_results(model, params, data, key):
    """``NUM_DRAWS`` draws of S = ``COUNTED_SAMPLES`` labels per point as counts (the model's one-pass
    ``draw_counts``): the component counts, their reported per-draw variance ``S/(S−1) · spread``, how far
    the summed statistics are from those of the returned shares, and the shares' row sums."""
    def one(index):
        weights, stats, spread, loglik = model.draw_counts(jax.random.fold_in(key, index), params, data,
                                                           COUNTED_SAMPLES)
        gap = jax.tree_util.tree_map(lambda a, b: jnp.max(jnp.abs(a - b)), model.weighted_stats(data, weights), stats)
        row_sums = jnp.sum(weights, axis=1)
        return (stats.counts, spread.counts * COUNTED_SAMPLES / (COUNTED_SAMPLES - 1.0),
                jnp.max(jnp.stack(jax.tree_util.tree_leaves(gap))), jnp.stack([row_sums.min(), row_sums.max()]),
                loglik)

    counts, variances, gaps, row_sums, logliks = jax.lax.map(one, jnp.arange(NUM_DRAWS))
    posterior = model.posterior(params, data)
    return {"counted_counts": counts, "counted_variances": variances, "counted_gaps": gaps,
            "counted_row_sums": row_sums, "counted_logliks": logliks,
            "counted_exact_variances": jnp.sum(posterior * (1.0 - posterior), axis=0)}


if __name__ == "__main__":
    np.savez(sys.argv[1], **compare_across_devices(), **two_device_only())

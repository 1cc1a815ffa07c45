"""Many seeds in one compiled program: ``fit(..., key=list(range(64)))`` against one seed.

A 1-D Gaussian mixture (N = 10,000, K = 3): exact EM from each seed's own
k-means++ start, and stochastic EM (``monte_carlo(1)``) from a shared start.
Goal: 64 seeds cost at most 8x one seed. Times are warm (compile reported apart).

    python experiments/benchmarks/seeds_batch.py [--quick]
"""

from __future__ import annotations


import _common
import numpy as np

import stochem as se

NUM_POINTS, NUM_COMPONENTS, NUM_ITERS = 10_000, 3, 100


def one_dimensional_data(num_points, seed=0):
    rng = np.random.default_rng(seed)
    centres, scales = np.array([-4.0, 0.0, 5.0]), np.array([1.0, 0.7, 1.5])
    labels = rng.integers(0, 3, num_points)
    return centres[labels] + scales[labels] * rng.standard_normal(num_points)


def measure(fit, repeats):
    """``(compile seconds, warm seconds)`` of ``fit()``."""
    _, compile_seconds, warm = _common.compiled_and_warm(fit, repeats)
    return compile_seconds, warm


def main():
    args = _common.arguments(__doc__.splitlines()[0], num_seeds=(int, 64, "seeds in the batch"))
    num_points, num_iters = (2_000, 10) if args.quick else (NUM_POINTS, NUM_ITERS)
    num_seeds = 8 if args.quick else args.num_seeds
    repeats = 1 if args.quick else 5
    data = one_dimensional_data(num_points)
    model = se.models.GaussianMixture(NUM_COMPONENTS)
    shared_start = se.fit(model, data, num_iters=0, key=0).params
    _common.print_summary(f"Seeds in batch: 1-D GaussianMixture, N={num_points:,}, K={NUM_COMPONENTS}, "
                          f"{num_iters} iterations", _common.machine_summary())
    settings = [
        ("exact, k-means++ start per seed", dict(completion=se.exact())),
        ("monte_carlo(1), shared start", dict(completion=se.monte_carlo(1), init=shared_start)),
    ]
    rows, goals = [], []
    for name, options in settings:
        single_compile, single = measure(lambda: se.fit(model, data, num_iters=num_iters, key=0, **options),
                                         repeats)
        batch_compile, batch = measure(
            lambda: se.fit(model, data, num_iters=num_iters, key=list(range(num_seeds)), **options), repeats)
        goals.append({"goal": f"{num_seeds} seeds vmapped vs 1 seed, {name} (1-D GMM, N={num_points:,})",
                      "target": "<= 8x", "measured": f"{batch / single:.1f}x", "met": batch / single <= 8})
        rows.append([name, _common.milliseconds(single), _common.milliseconds(batch), f"{batch / single:.1f}x",
                     f"{num_seeds * single / batch:.1f}x", f"{single_compile:.2f}", f"{batch_compile:.2f}"])
    _common.print_table(["completion", "1 seed ms", f"{num_seeds} seeds ms", f"{num_seeds} seeds / 1 seed",
                         "vs one after another", "compile s (1)", f"compile s ({num_seeds})"], rows)
    _common.report_goals(args, goals)


if __name__ == "__main__":
    main()

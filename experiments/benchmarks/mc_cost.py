"""The cost of one Monte Carlo EM iteration against S, next to exact EM, on one Gaussian mixture.

``monte_carlo(S)`` draws S completions ``m_s ~ P(m | o; θ)`` per iteration. The
model's stats sampler computes the posterior once per E-step (with ℓ(θ)) and
each draw is then one light pass over the data (uniforms, one-hot labels,
their statistics), so S = 1 should cost about one exact iteration (goal:
at most 1.5x) and S draws about ``exact + S · draw``. Times are warm
(compile reported apart), per iteration, best of ``--repeats``.

    python experiments/benchmarks/mc_cost.py [--quick] [--repeats 3]
"""

from __future__ import annotations


import _common

import stochem as se

NUM_POINTS, NUM_FEATURES, NUM_COMPONENTS = 200_000, 8, 5
SAMPLE_COUNTS = (1, 10, 100, 1000)


def iterations_for(num_samples: int, quick: bool) -> int:
    """Enough iterations to time well, few enough that S = 1000 stays within a minute."""
    if quick:
        return 2
    return max(2, min(20, 2000 // (num_samples * 5)))


def time_fit(fit, num_iters: int, repeats: int):
    """``(compile seconds, warm seconds per iteration)``."""
    _, compile_seconds, warm = _common.compiled_and_warm(fit, repeats)
    return compile_seconds, warm / num_iters


def main():
    args = _common.arguments(__doc__.splitlines()[0], repeats=(int, 3, "warm runs (best is kept)"))
    num_points = 5_000 if args.quick else NUM_POINTS
    sample_counts = (1, 10) if args.quick else SAMPLE_COUNTS
    repeats = 1 if args.quick else args.repeats
    data = _common.gaussian_clusters(num_points, NUM_FEATURES, NUM_COMPONENTS, seed=num_points)
    model = se.models.GaussianMixture(NUM_COMPONENTS, covariance_type="full")
    start = se.fit(model, data, num_iters=0, key=0).params
    _common.print_summary(
        f"Monte Carlo completion cost vs S: GaussianMixture full, N={num_points:,}, D={NUM_FEATURES}, "
        f"K={NUM_COMPONENTS}", _common.machine_summary())

    exact_iters = iterations_for(1, args.quick)
    exact_compile, exact = time_fit(
        lambda: se.fit(model, data, init=start, num_iters=exact_iters), exact_iters, repeats)
    rows, ratios = [["exact", _common.milliseconds(exact), "1.00x", "", f"{exact_compile:.2f}"]], {}
    for num_samples in sample_counts:
        num_iters = iterations_for(num_samples, args.quick)
        compile_seconds, per_iteration = time_fit(
            lambda: se.fit(model, data, init=start, num_iters=num_iters,
                           completion=se.monte_carlo(num_samples), key=1),
            num_iters, repeats)
        per_draw = (per_iteration - exact) / num_samples
        ratios[num_samples] = per_iteration / exact
        rows.append([f"monte_carlo({num_samples})", _common.milliseconds(per_iteration),
                     f"{per_iteration / exact:.2f}x", _common.milliseconds(max(per_draw, 0.0)),
                     f"{compile_seconds:.2f}"])
    _common.print_table(["completion", "ms/iter", "vs exact", "extra ms per draw", "compile s"], rows)
    _common.report_goals(args, [
        {"goal": f"GMM monte_carlo(1) iteration vs exact (N={num_points:,}, D={NUM_FEATURES}, K={NUM_COMPONENTS})",
         "target": "<= 1.5x", "measured": f"{ratios[1]:.2f}x", "met": ratios[1] <= 1.5},
    ])


if __name__ == "__main__":
    main()

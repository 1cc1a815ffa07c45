"""The cost of one Monte Carlo EM iteration against S, next to exact EM, on Gaussian mixtures.

``monte_carlo(S)`` draws S completions ``m_s ~ P(m | o; θ)`` per observation
and iteration. A mixture draws each point's S labels as one multinomial count
vector (``stochem.multinomial``; the model's ``CountedDraws``), so an iteration
should cost about the same for any S: goal at most 3x an exact iteration for
every S up to 10^6, and at most 1.5x for S = 1. Before issue 13 the S labels
were drawn one by one ("explicit": S light passes over the data, each about
half an exact iteration); that path is what models without counts (HMMs,
MissingGaussian) still take, and it is timed here for comparison through a
completion that calls it directly (:class:`ExplicitMonteCarlo`, the former
``monte_carlo``).

Each row times exact EM and the sampled completion one right after the other
(warm, best of ``--repeats``, per iteration) and gives their ratio, so a load
that drifts during the run changes both. The sample count is a run-time value
of the counts program: one compilation serves every S (reported once).

    python experiments/benchmarks/mc_cost.py [--quick] [--repeats 3]
"""

from __future__ import annotations

import dataclasses
import time

import _common
import jax

import stochem as se
from stochem.base import CompletionTransform, completion_info
from stochem.completion.monte_carlo import sampling_diagnostics
from stochem.completion.sampling import draw_stats

# (N, D, K, counts S, explicit S)
CASES = (
    (21_000, 3, 3, (1, 10, 100, 1_000, 10_000, 100_000, 1_000_000), (1, 10, 100, 1_000)),
    (200_000, 8, 5, (1, 10, 100, 1_000, 1_000_000), (1, 10, 100)),
)
QUICK_CASES = ((5_000, 3, 3, (1, 10, 1_000_000), (1, 10)),)


@dataclasses.dataclass(frozen=True)
class ExplicitMonteCarlo:
    """``monte_carlo(S)`` as it was before counts: S explicit completions (``draw_stats``), S static."""

    num_samples: int

    def __call__(self, model) -> CompletionTransform:
        num_samples = self.num_samples

        def init(params, data):
            del params, data
            return ()

        def update(key, params, data, state):
            drawn = draw_stats(model, key, params, data, num_samples, num_samples)
            return drawn.mean(), state, completion_info(drawn.loglik, diagnostics=sampling_diagnostics(drawn))

        return CompletionTransform(init, update)


def iterations_for(seconds_per_iteration: float, quick: bool) -> int:
    """Enough iterations for about half a second of work per timing, between 2 and 40."""
    if quick:
        return 2
    return int(min(40, max(2, 0.5 / max(seconds_per_iteration, 1e-6))))


def per_iteration(fit, num_iters: int, repeats: int) -> float:
    """Best warm seconds per iteration of ``fit(num_iters)`` (compiled already)."""
    best, _ = _common.timed(_common.blocking(lambda: fit(num_iters)), repeats)
    return best / num_iters


def first_call(fit, num_iters: int) -> float:
    start = time.perf_counter()
    jax.block_until_ready(fit(num_iters))
    return time.perf_counter() - start


def run_case(num_points, num_features, num_components, counted, explicit, repeats, quick):
    data = _common.gaussian_clusters(num_points, num_features, num_components, seed=num_points)
    model = se.models.GaussianMixture(num_components, covariance_type="full")
    start = se.fit(model, data, num_iters=0, key=0).params

    def exact(num_iters):
        return se.fit(model, data, init=start, num_iters=num_iters)

    def sampled(completion):
        return lambda num_iters: se.fit(model, data, init=start, num_iters=num_iters, completion=completion, key=1)

    exact_compile = first_call(exact, 2) - 2 * per_iteration(exact, 2, repeats)
    exact_iters = iterations_for(per_iteration(exact, 2, 1), quick)
    rows, ratios, compile_seconds = [], {}, {}
    for kind, counts in (("counts", counted), ("explicit", explicit)):
        for index, num_samples in enumerate(counts):
            completion = se.monte_carlo(num_samples) if kind == "counts" else ExplicitMonteCarlo(num_samples)
            fit = sampled(completion)
            first = first_call(fit, 2)
            rough = per_iteration(fit, 2, 1)
            compile_text = f"{first - 2 * rough:.2f}" if kind == "explicit" or index == 0 else "(same program)"
            num_iters = iterations_for(rough, quick)
            exact_time = per_iteration(exact, exact_iters, repeats)
            sampled_time = per_iteration(fit, num_iters, repeats)
            ratio = sampled_time / exact_time
            ratios[(kind, num_samples)] = ratio
            if kind == "counts" and index == 0:
                compile_seconds["counts"] = first - 2 * rough
            rows.append([kind, f"{num_samples:,}", _common.milliseconds(exact_time),
                         _common.milliseconds(sampled_time), f"{ratio:.2f}x", compile_text])
    title = f"GaussianMixture full, N={num_points:,}, D={num_features}, K={num_components}"
    print(f"### Monte Carlo cost vs S: {title} (exact compile {exact_compile:.2f} s)\n")
    _common.print_table(["draws", "S", "exact ms/iter", "monte_carlo ms/iter", "vs exact", "compile s"], rows)
    return title, ratios


def main():
    args = _common.arguments(__doc__.splitlines()[0], repeats=(int, 3, "warm runs (best is kept)"))
    repeats = 1 if args.quick else args.repeats
    _common.print_summary("Monte Carlo completion cost vs S", _common.machine_summary())
    goals = []
    for case in (QUICK_CASES if args.quick else CASES):
        title, ratios = run_case(*case, repeats=repeats, quick=args.quick)
        counted = {s: r for (kind, s), r in ratios.items() if kind == "counts"}
        worst_s = max(counted, key=counted.get)
        goals.append({"goal": f"monte_carlo(1) iteration vs exact ({title})", "target": "<= 1.5x",
                      "measured": f"{counted[1]:.2f}x", "met": counted[1] <= 1.5})
        goals.append({"goal": f"monte_carlo(S) iteration vs exact, worst S <= {max(counted):,} ({title})",
                      "target": "<= 3x", "measured": f"{counted[worst_s]:.2f}x (S={worst_s:,})",
                      "met": counted[worst_s] <= 3.0})
    _common.report_goals(args, goals)


if __name__ == "__main__":
    main()

"""Online EM's minibatch rows: Floyd's subset draw against a permutation of all rows, per iteration.

Each online EM iteration completes ``B`` random rows. ``jax.random.choice(...,
replace=False)`` permutes all ``N`` rows to pick them, a cost that grows with
``N``; ``stochem.subsets.distinct_rows`` draws the subset in ``B`` steps (Floyd's
algorithm). Both are timed in this process on the same fits: the permutation
by swapping it into ``stochem.completion.online`` (and clearing the compiled
programs), then the library's draw. An iteration also evaluates ℓ on all the
rows (it goes into the trace), which grows with ``N`` either way.

Goal: at ``N = 10⁶`` (``--quick``: 20,000), ``B = 256``, an iteration costs at
most 0.5x the permutation's.

    python experiments/benchmarks/minibatch_rows.py [--quick]
"""

from __future__ import annotations

import _common
import jax

import stochem as se
from stochem import driver
from stochem.completion import online
from stochem.subsets import distinct_rows

BATCH_SIZE = 256
NUM_ITERS = 10


def permuted_rows(key, num_rows: int, size: int):
    """The rows as before: a permutation of all of them, cut to ``size``."""
    return jax.random.choice(key, num_rows, (size,), replace=False)


def seconds_per_iteration(draw_rows, points, start, repeats: int) -> float:
    """Best warm seconds per iteration of online EM on ``points`` with ``draw_rows`` choosing the rows."""
    online.distinct_rows = draw_rows
    jax.clear_caches()
    driver._compiled.cache_clear()
    model = se.models.GaussianMixture(3)

    def run():
        return se.fit(model, points, init=start, num_iters=NUM_ITERS, key=0,
                      completion=se.online_em(batch_size=BATCH_SIZE)).params

    try:
        _, _, warm = _common.compiled_and_warm(run, repeats)
    finally:
        online.distinct_rows = distinct_rows
    return warm / NUM_ITERS


def main():
    args = _common.arguments(__doc__.splitlines()[0])
    _common.print_summary("Online EM: minibatch rows by Floyd's algorithm vs a permutation",
                          _common.machine_summary())
    sizes = (2_000, 20_000) if args.quick else (2_000, 100_000, 1_000_000)
    repeats = 1 if args.quick else 2
    rows, goals = [], []
    for num_points in sizes:
        points = _common.gaussian_clusters(num_points, 2, 3, seed=num_points)
        start = se.fit(se.models.GaussianMixture(3), points[:2_000], num_iters=0, key=0).params
        before = seconds_per_iteration(permuted_rows, points, start, repeats)
        after = seconds_per_iteration(distinct_rows, points, start, repeats)
        rows.append([f"{num_points:,}", str(BATCH_SIZE), _common.milliseconds(before), _common.milliseconds(after),
                     f"{after / before:.3f}x"])
        if num_points == sizes[-1]:
            goals.append({"goal": f"online EM iteration, GMM N={num_points:,} D=2 K=3, B={BATCH_SIZE}: "
                                  "Floyd rows / permuted rows",
                          "target": "<= 0.5x", "measured": f"{after / before:.3f}x", "met": after / before <= 0.5})
    _common.print_table(["N", "B", "permutation: ms / iteration", "Floyd: ms / iteration", "Floyd / permutation"],
                        rows)
    _common.report_goals(args, goals)


if __name__ == "__main__":
    main()

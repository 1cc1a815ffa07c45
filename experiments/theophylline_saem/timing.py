"""Wall time of one theophylline fit by SAEM on statistics: first call (compilation) and warm calls.

    python experiments/theophylline_saem/timing.py

One seed, saemix's start, ``saem(group_metropolis(1), saem_step_size(burn_in=50))``,
200 iterations; prints the first call, the median of 5 warm calls, and the load.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import _stochastic_runs as runs  # noqa: E402

import jax  # noqa: E402

import stochem as se  # noqa: E402
from stochem.references import theophylline as th  # noqa: E402


def main():
    model = se.models.from_numpyro(th.one_compartment, *th.model_arguments())
    completion = se.saem(se.group_metropolis(1), se.saem_step_size(burn_in=50))
    times = []
    for repeat in range(6):
        start = time.perf_counter()
        result = se.fit(model, None, completion=completion, num_iters=200, key=repeat, init={})
        jax.block_until_ready(result.params)
        times.append(time.perf_counter() - start)
    print(f"first call {times[0]:.1f} s, warm median {statistics.median(times[1:]):.3f} s "
          f"(min {min(times[1:]):.3f}, max {max(times[1:]):.3f}); {runs.load_line()}")


if __name__ == "__main__":
    main()

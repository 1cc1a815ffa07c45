"""Peak memory of a 1-D Gaussian mixture on 10 million points, each fit in a fresh process.

Each measurement starts a new Python process that simulates the data, runs a
few iterations of ``fit`` (exact EM, or stochastic EM with ``monte_carlo(1)``,
or Monte Carlo EM with ``monte_carlo(S)``) and reports its peak resident set
size (``ru_maxrss`` of ``resource.getrusage``, the high-water mark of
physical memory of the whole process: Python, JAX, XLA's buffers and the
data). The process that only imports stochem and creates the data is
measured too, as the baseline. Goal: exact EM under 2 GB.

    python experiments/benchmarks/memory.py [--quick]
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import _common

NUM_POINTS, NUM_COMPONENTS, NUM_ITERS = 10_000_000, 3, 3

CHILD = textwrap.dedent("""
    import json, resource, sys, time
    sys.path.insert(0, {repository!r})
    import jax
    jax.config.update("jax_enable_x64", True)
    import numpy as np
    import stochem as se
    se.use_cpu_cores({cpu_devices})
    num_points, completion, num_iters = {num_points}, {completion!r}, {num_iters}
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, num_points)
    data = np.array([-4.0, 0.0, 5.0])[labels] + np.array([1.0, 0.7, 1.5])[labels] * rng.standard_normal(num_points)
    del labels

    def resident(field):  # "VmRSS" (now) or "VmHWM" (peak so far), bytes
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kilobytes on Linux

    before = resident("VmRSS")
    start = time.perf_counter()
    if completion != "none":
        init = {{"weights": [0.3, 0.3, 0.4], "means": [-3.0, 1.0, 4.0], "covariances": [1.0, 1.0, 1.0]}}
        options = {{}} if completion == "exact" else {{"completion": se.monte_carlo({num_samples})}}
        result = se.fit(se.models.GaussianMixture({num_components}), data, init=init, num_iters=num_iters,
                        **options)
        jax.block_until_ready(result.params)
    seconds = time.perf_counter() - start
    peak = max(resident("VmHWM"), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    print(json.dumps({{"peak_bytes": peak, "before_fit_bytes": before, "seconds": seconds}}))
""")


def peak_of(num_points: int, completion: str, num_iters: int, cpu_devices: int | None) -> dict:
    """Run one fit in a fresh interpreter; ``{"peak_bytes", "seconds"}`` (compile included)."""
    num_samples = int(completion[len("monte_carlo("):-1]) if completion.startswith("monte_carlo(") else 1
    code = CHILD.format(repository=str(_common.REPOSITORY), num_points=num_points, completion=completion,
                        num_iters=num_iters, num_components=NUM_COMPONENTS, num_samples=num_samples,
                       cpu_devices=cpu_devices)
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(output.stdout.strip().splitlines()[-1])


def main():
    args = _common.arguments(__doc__.splitlines()[0])
    num_points = 200_000 if args.quick else NUM_POINTS
    completions = ["none", "exact", "monte_carlo(1)"] if args.quick else [
        "none", "exact", "monte_carlo(1)", "monte_carlo(10)"]
    _common.print_summary(f"Peak memory: 1-D GaussianMixture, N={num_points:,}, K={NUM_COMPONENTS}, "
                          f"{NUM_ITERS} iterations", _common.machine_summary())
    rows, peaks = [], {}
    for completion in completions:
        measured = peak_of(num_points, completion, NUM_ITERS, args.cpu_devices)
        name = "(import, simulate the data; no fit)" if completion == "none" else completion
        rows.append([name, f"{measured['peak_bytes'] / 2**20:.0f}", f"{measured['before_fit_bytes'] / 2**20:.0f}",
                     f"{num_points * 8 / 2**20:.0f}", f"{measured['seconds']:.1f}"])
        peaks[completion] = measured["peak_bytes"]
    _common.print_table(["completion", "peak RSS MiB (whole process)", "RSS before fit MiB", "data MiB",
                         "fit s (incl. compile)"], rows)
    print("The peak includes Python, JAX and simulating the data (numpy temporaries); "
          "'RSS before fit' is what the process held just before calling fit.\n")
    _common.report_goals(args, [
        {"goal": f"1-D GMM, N={num_points:,}: peak RSS of exact EM", "target": "< 2 GiB",
         "measured": f"{peaks['exact'] / 2**30:.2f} GiB", "met": peaks["exact"] < 2**30 * 2},
    ])


if __name__ == "__main__":
    main()

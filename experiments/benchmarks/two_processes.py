"""One large Gaussian-mixture fit on one process against the same fit over two processes (one core each).

Question: how close do two processes (``jax.distributed`` on localhost, gloo
collectives, one CPU device and one core each, ``taskset``) come to twice
one process's throughput, and what does the all-reduce of the statistics cost
per iteration? Every process generates the same points and keeps its share.

Run: ``python experiments/benchmarks/two_processes.py [--quick] [--num-points N]``.
On a machine with fewer than two free cores (``uptime``) the wall-clock ratio
says more about the other load than about stochem; the CPU time each process
spends per iteration (``time.process_time``) is reported too, and its ratio is
what the wall-clock ratio approaches on two free cores.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

NUM_FEATURES, NUM_COMPONENTS, NUM_ITERS, REPEATS = 4, 5, 10, 3


def child(rank: int, num_processes: int, port: int, num_points: int) -> None:
    """One process of the fit: prints a JSON line with its timings (rank 0 only)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import jax

    jax.config.update("jax_enable_x64", True)
    import stochem as se

    if num_processes > 1:
        se.distributed.initialize(f"localhost:{port}", num_processes=num_processes, process_id=rank)
    import _common
    import numpy as np

    points = _common.gaussian_clusters(num_points, NUM_FEATURES, NUM_COMPONENTS, seed=0)
    model = se.models.GaussianMixture(NUM_COMPONENTS)
    init = se.fit(model, points[:20_000], num_iters=0).params
    share = num_points // num_processes
    mine = points[rank * share:(rank + 1) * share]
    # Both on the device before timing: the one-process fit must not copy its points in every call.
    data = se.distributed.shard_rows(mine) if num_processes > 1 else jax.device_put(mine)
    se.fit(model, data, init=init, num_iters=NUM_ITERS)  # compile
    times, cpu_times = [], []
    for _ in range(REPEATS):
        start, cpu_start = time.perf_counter(), time.process_time()
        np.asarray(se.fit(model, data, init=init, num_iters=NUM_ITERS).params.means)
        times.append(time.perf_counter() - start)
        cpu_times.append(time.process_time() - cpu_start)
    hlo = jax.jit(model.expected_stats_and_loglik).lower(init, data).compile().as_text()
    allreduce = float("nan")
    if num_processes > 1:  # an all-reduce of one iteration's statistics (K·D² + K·D + K numbers)
        from jax.sharding import NamedSharding, PartitionSpec

        size = NUM_COMPONENTS * (NUM_FEATURES**2 + NUM_FEATURES + 1)
        stats = se.distributed.shard_rows(np.ones((1, size)))
        total = jax.jit(lambda s: s.sum(0), out_shardings=NamedSharding(se.distributed.points_mesh(),
                                                                        PartitionSpec()))
        np.asarray(total(stats))
        start = time.perf_counter()
        for _ in range(50):
            np.asarray(total(stats))
        allreduce = (time.perf_counter() - start) / 50
    # Every process reports: its wall-clock and CPU seconds per iteration (the CPU time is what
    # the iteration costs this process, whatever else runs on its core), and the collectives of one
    # E-step in the compiled program (all-reduces of the statistics only; an all-gather would be data).
    print(json.dumps({"rank": rank, "seconds_per_iter": min(times) / (NUM_ITERS + 1),
                      "cpu_seconds_per_iter": min(cpu_times) / (NUM_ITERS + 1), "allreduce": allreduce,
                      "all_reduces": hlo.count(" all-reduce("), "all_gathers": hlo.count(" all-gather(")}),
          flush=True)


def run(num_processes: int, num_points: int, independent: bool = False) -> dict:
    """``num_processes`` processes pinned one per core; ``independent``: each its own one-process fit of
    ``num_points / num_processes`` points, side by side with no communication (the machine's ceiling)."""
    with socket.socket() as probe:
        probe.bind(("localhost", 0))
        port = probe.getsockname()[1]
    environment = {**os.environ, "JAX_PLATFORMS": "cpu", "JAX_NUM_CPU_DEVICES": "1"}
    cores = sorted(os.sched_getaffinity(0))
    arguments = ["0", "1", "0", str(num_points // num_processes)] if independent else None
    processes = [subprocess.Popen(["taskset", "-c", str(cores[rank % len(cores)]), sys.executable, __file__,
                                   "--child", *(arguments or (str(rank), str(num_processes), str(port),
                                                              str(num_points)))],
                                  env=environment, stdout=subprocess.PIPE, text=True)
                 for rank in range(num_processes)]
    outputs = [process.communicate()[0] for process in processes]
    if any(process.returncode for process in processes):
        raise RuntimeError(f"a child failed: {[p.returncode for p in processes]}")
    reports = [json.loads(output.strip().splitlines()[-1]) for output in outputs]
    # The pair is as slow as its slower process (every iteration waits for both).
    return {**reports[0], "seconds_per_iter": max(report["seconds_per_iter"] for report in reports),
            "cpu_seconds_per_iter": max(report["cpu_seconds_per_iter"] for report in reports),
            "cpu_seconds_per_iter_each": [report["cpu_seconds_per_iter"] for report in reports]}


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        child(*(int(value) for value in sys.argv[2:6]))
        return
    quick = "--quick" in sys.argv
    num_points = 200_000 if quick else int(sys.argv[sys.argv.index("--num-points") + 1]) \
        if "--num-points" in sys.argv else 2_000_000
    load_before = os.getloadavg()
    one, two = run(1, num_points), run(2, num_points)
    # Two one-process fits of half the points each, on the two cores at once: no collective at all,
    # so their ratio to one process is what this machine's shared caches and memory allow.
    apart = run(2, num_points, independent=True)
    ratio = one["seconds_per_iter"] / two["seconds_per_iter"]
    cpu_ratio = one["cpu_seconds_per_iter"] / two["cpu_seconds_per_iter"]
    print("## One process vs two (one core each), GaussianMixture K=5, D=4\n")
    print(f"- points: {num_points}; load average before: {load_before}, at end: {os.getloadavg()}\n")
    print("| processes | ms per iteration | points per second | CPU ms per iteration (each process) "
          "| all-reduce of the statistics (ms) | all-reduces / all-gathers in one E-step |")
    print("|---|---|---|---|---|---|")
    for count, result in ((1, one), (2, two)):
        each = ", ".join(f"{value * 1e3:.1f}" for value in result["cpu_seconds_per_iter_each"])
        print(f"| {count} | {result['seconds_per_iter'] * 1e3:.1f} | {num_points / result['seconds_per_iter']:.3g}"
              f" | {each} | {result['allreduce'] * 1e3:.2f} | {result['all_reduces']} / {result['all_gathers']} |")
    print(f"\nthroughput ratio (two / one, wall clock): {ratio:.2f}x (goal >= 1.7x)")
    print(f"CPU-time ratio (one process's CPU time per iteration / the busier of the two's): {cpu_ratio:.2f}x "
          "(what the wall-clock ratio approaches with two free cores)")
    ceiling = one["seconds_per_iter"] / apart["seconds_per_iter"]
    each = ", ".join(f"{value * 1e3:.1f}" for value in apart["cpu_seconds_per_iter_each"])
    print(f"two independent one-process fits of {num_points // 2} points each, side by side: "
          f"{apart['seconds_per_iter'] * 1e3:.1f} ms per iteration (CPU ms {each}); ratio to one process "
          f"{ceiling:.2f}x: the ceiling this machine sets, without any communication; the distributed fit "
          f"reaches {ratio / ceiling:.0%} of it")


if __name__ == "__main__":
    main()

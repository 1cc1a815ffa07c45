"""What the benchmark scripts share: set-up, timing, this machine's rates, tables.

Every script runs as ``python experiments/benchmarks/<name>.py`` from the
repository root (``--quick`` for a smoke run) and prints Markdown tables.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[2]
if str(REPOSITORY) not in sys.path:
    sys.path.insert(0, str(REPOSITORY))

import jax  # noqa: E402
import numpy as np  # noqa: E402

from stochem.devices import use_cpu_cores  # noqa: E402

jax.config.update("jax_enable_x64", True)


def arguments(description: str, **extra) -> argparse.Namespace:
    """``--quick`` (a smoke run: small sizes, one repeat) plus any script-specific options."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="small sizes and one repeat (a smoke test)")
    parser.add_argument("--goals-json", default=None, help="also write the goal checks to this JSON file")
    parser.add_argument("--cpu-devices", type=int, default=None,
                        help="JAX CPU devices for stochem (default: one per core; 1 = JAX's default)")
    for name, (kind, default, text) in extra.items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=kind, default=default, help=text)
    args = parser.parse_args()
    use_cpu_cores(args.cpu_devices)  # before any JAX computation
    return args


def timed(fn, repeats: int):
    """Run ``fn()`` (which must block until its result is ready) ``repeats`` times.

    Returns:
        ``(best, median)`` wall-clock seconds.
    """
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times), statistics.median(times)


def timed_within(fn, repeats: int, budget_seconds: float = 20.0) -> float:
    """Best wall-clock seconds of up to ``repeats`` runs of ``fn()``, stopping once ``budget_seconds`` are spent.

    For the reference libraries, whose one run can take tens of seconds: at
    least one run, more while they are cheap (the best of several is less
    disturbed by other work on a shared machine).
    """
    times, spent = [], 0.0
    while len(times) < max(repeats, 1) and (not times or spent < budget_seconds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
        spent += times[-1]
    return min(times)


def compiled_and_warm(fit, repeats: int):
    """Call ``fit()`` once cold, then ``repeats`` times warm.

    Returns:
        ``(result, compile seconds, best warm seconds)``; the compile time is
        the first call minus the best warm call (tracing and XLA compilation).
    """
    start = time.perf_counter()
    result = jax.block_until_ready(fit())
    first = time.perf_counter() - start
    warm, _ = timed(blocking(fit), repeats)
    return result, first - warm, warm


def blocking(fn):
    """``fn`` followed by ``jax.block_until_ready`` on its result."""
    return lambda: jax.block_until_ready(fn())


def matmul_rate(size: int = 2000, repeats: int = 5) -> float:
    """This machine's float64 matrix-multiply rate (numpy, all cores), in flop/s."""
    a = np.random.default_rng(0).random((size, size))
    best, _ = timed(lambda: a @ a, repeats)
    return 2.0 * size**3 / best


def copy_bandwidth(megabytes: int = 400, repeats: int = 5) -> float:
    """Memory bandwidth from a large numpy copy (bytes read plus bytes written per second)."""
    source = np.random.default_rng(0).random(megabytes * 2**20 // 8)
    target = np.empty_like(source)
    best, _ = timed(lambda: np.copyto(target, source), repeats)
    return 2.0 * source.nbytes / best


def measured_rates() -> dict:
    """``{"flops": float64 matmul flop/s, "bandwidth": copy bytes/s}`` on this machine, now."""
    return {"flops": matmul_rate(), "bandwidth": copy_bandwidth()}


def machine_summary(rates: dict | None = None) -> dict:
    """The machine, its load, and (if given) its measured matmul rate and bandwidth."""
    summary = {
        "cpu": _cpu_name(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "jax": jax.__version__,
        "JAX devices (stochem spreads seeds or points over them)": f"{jax.device_count()} {jax.default_backend()}",
        "load average (1 min) at start": round(os.getloadavg()[0], 2),
    }
    if rates is not None:
        summary["float64 matmul (numpy, 2000x2000)"] = f"{rates['flops'] / 1e9:.1f} GFlop/s"
        summary["copy bandwidth (numpy, 400 MB, read+write)"] = f"{rates['bandwidth'] / 1e9:.1f} GB/s"
    return summary


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def print_summary(title: str, summary: dict) -> None:
    print(f"## {title}\n")
    for key, value in summary.items():
        print(f"- {key}: {value}")
    print()


def print_table(columns, rows) -> None:
    """A Markdown table: ``columns`` names, ``rows`` sequences of already formatted cells."""
    print("| " + " | ".join(columns) + " |")
    print("|" + "|".join("---" for _ in columns) + "|")
    for row in rows:
        print("| " + " | ".join(str(cell) for cell in row) + " |")
    print(flush=True)


def milliseconds(seconds: float) -> str:
    return f"{seconds * 1e3:.1f}"


def gaussian_clusters(num_points: int, num_features: int, num_components: int, seed: int = 0):
    """Points from ``num_components`` Gaussian clusters with random centres and shapes, ``[N, D]``."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=3.0, size=(num_components, num_features))
    shapes = rng.normal(scale=0.5, size=(num_components, num_features, num_features)) + np.eye(num_features)
    labels = rng.integers(0, num_components, num_points)
    noise = rng.standard_normal((num_points, num_features))
    return centres[labels] + np.einsum("nde,ne->nd", shapes[labels], noise)


def report_goals(args: argparse.Namespace, goals) -> None:
    """Print the goal checks as a table and, with ``--goals-json``, write them for ``run_all.py``.

    Args:
        goals: dicts with ``goal`` (what is compared), ``target`` (e.g. ``">= 10x"``),
            ``measured`` (formatted) and ``met`` (bool).
    """
    goals = [dict(goal, met=bool(goal["met"])) for goal in goals]
    print("### Goals\n")
    print_table(["goal", "target", "measured", "met"],
                [[g["goal"], g["target"], g["measured"], "yes" if g["met"] else "NO"] for g in goals])
    if args.goals_json:
        path = Path(args.goals_json)
        temporary = path.with_suffix(path.suffix + ".tmp")
        temporary.write_text(json.dumps(goals, indent=1))
        temporary.replace(path)  # atomic: a reader never sees half a file
